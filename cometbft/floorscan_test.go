package cometbft

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/p2p"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"
	"github.com/cometbft/cometbft/types"
)

// fakeChain answers status and commit as a CometBFT node's JSON-RPC does,
// single and batched, for a chain whose stored heights are
// earliest..latest.
type fakeChain struct {
	addr types.Address // the validator whose signatures signed lists

	mu       sync.Mutex
	chainID  string
	earliest int64
	latest   int64
	signed   map[int64]int32 // height → round of a commit carrying addr's vote
	broken   map[int64]bool  // heights whose commit the node fails to read
	// pruneTo: a commit asked for at or below it raises earliest above it
	// first, as if the node pruned it a moment before.
	pruneTo  int64
	maxBatch int           // [rpc] max_request_batch_size; 0 is no limit
	delay    time.Duration // per HTTP request, as a round trip
	reads    []int64       // the heights of the commits asked for
	requests int           // HTTP requests
	url      string        // the node's RPC address
}

func newFakeChain(t *testing.T, earliest, latest int64) (*fakeChain, *rpchttp.HTTP) {
	t.Helper()
	f := &fakeChain{addr: ed25519.GenPrivKey().PubKey().Address(), chainID: "fake",
		earliest: earliest, latest: latest, signed: map[int64]int32{}, broken: map[int64]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	c, err := rpchttp.New(srv.URL, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeChain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests++
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	var out any
	if strings.HasPrefix(strings.TrimSpace(string(body)), "[") {
		var reqs []rpctypes.RPCRequest
		if err := json.Unmarshal(body, &reqs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if f.maxBatch > 0 && len(reqs) > f.maxBatch {
			out = rpctypes.RPCInvalidRequestError(nil, fmt.Errorf("batch request exceeds maximum (%d) allowed number of requests", f.maxBatch))
		} else {
			var res []rpctypes.RPCResponse
			for _, req := range reqs {
				res = append(res, f.answer(req))
			}
			out = res
		}
	} else {
		var req rpctypes.RPCRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out = f.answer(req)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (f *fakeChain) answer(req rpctypes.RPCRequest) rpctypes.RPCResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch req.Method {
	case "status":
		return rpctypes.NewRPCSuccessResponse(req.ID, &ctypes.ResultStatus{
			NodeInfo: p2p.DefaultNodeInfo{Network: f.chainID},
			SyncInfo: ctypes.SyncInfo{EarliestBlockHeight: f.earliest, LatestBlockHeight: f.latest, LatestBlockTime: time.Now()},
			ValidatorInfo: ctypes.ValidatorInfo{
				Address: f.addr, PubKey: ed25519.GenPrivKey().PubKey(),
			},
		})
	case "commit":
		var p map[string]json.RawMessage
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return rpctypes.RPCInvalidParamsError(req.ID, err)
		}
		h, err := strconv.ParseInt(strings.Trim(string(p["height"]), `"`), 10, 64)
		if err != nil {
			return rpctypes.RPCInvalidParamsError(req.ID, err)
		}
		f.reads = append(f.reads, h)
		if h <= f.pruneTo && f.earliest <= f.pruneTo {
			f.earliest = f.pruneTo + 1
		}
		switch {
		case h > f.latest:
			return rpctypes.RPCInternalError(req.ID, fmt.Errorf("height %d must be less than or equal to the current blockchain height %d", h, f.latest))
		case h < f.earliest:
			return rpctypes.RPCInternalError(req.ID, fmt.Errorf("height %d is not available, lowest height is %d", h, f.earliest))
		case f.broken[h]:
			return rpctypes.RPCInternalError(req.ID, errors.New("leveldb: corrupted"))
		}
		other := ed25519.GenPrivKey().PubKey().Address()
		sigs := []types.CommitSig{{BlockIDFlag: types.BlockIDFlagCommit, ValidatorAddress: other, Timestamp: time.Now(), Signature: make([]byte, 64)}}
		round, ok := f.signed[h]
		if ok {
			sigs = append(sigs, types.CommitSig{BlockIDFlag: types.BlockIDFlagCommit, ValidatorAddress: f.addr, Timestamp: time.Now(), Signature: make([]byte, 64)})
		} else {
			sigs = append(sigs, types.CommitSig{BlockIDFlag: types.BlockIDFlagAbsent})
		}
		header := types.Header{ChainID: f.chainID, Height: h}
		return rpctypes.NewRPCSuccessResponse(req.ID, ctypes.NewResultCommit(&header,
			&types.Commit{Height: h, Round: round, Signatures: sigs}, h < f.latest))
	}
	return rpctypes.RPCMethodNotFoundError(req.ID)
}

// set changes the chain under the lock.
func (f *fakeChain) set(change func(f *fakeChain)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// took returns and forgets the heights read and the requests made.
func (f *fakeChain) took() (reads []int64, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reads, requests = f.reads, f.requests
	f.reads, f.requests = nil, 0
	return reads, requests
}

// distinct is how many different heights reads holds, and its lowest.
func distinct(reads []int64) (n int, lowest int64) {
	seen := map[int64]bool{}
	for _, h := range reads {
		if !seen[h] {
			seen[h] = true
			n++
		}
		if lowest == 0 || h < lowest {
			lowest = h
		}
	}
	return n, lowest
}

func TestLastSignedOnAFakeNode(t *testing.T) {
	cases := []struct {
		name              string
		earliest, latest  int64
		window            int64
		signed            map[int64]int32
		broken            []int64
		pruneTo, maxBatch int64
		want              int64
		wantRound         int32
		wantErr           string // in the error; "" is none
		lowestRead        int64  // the lowest height read; 0 is not checked
	}{
		{name: "none signed, pruned: down to the earliest height", earliest: 50, latest: 100, window: 1000, lowestRead: 50},
		{name: "signed only below the earliest height", earliest: 50, latest: 100, window: 1000, signed: map[int64]int32{40: 0}, lowestRead: 50},
		{name: "the highest signed, with its round", earliest: 50, latest: 100, window: 1000, signed: map[int64]int32{60: 0, 90: 2}, want: 90, wantRound: 2, lowestRead: 61},
		{name: "the latest signed", earliest: 1, latest: 100, window: 1000, signed: map[int64]int32{100: 1}, want: 100, wantRound: 1},
		{name: "the window ends above the signature", earliest: 1, latest: 100, window: 10, signed: map[int64]int32{85: 0}, lowestRead: 91},
		{name: "the window reaches the signature", earliest: 1, latest: 100, window: 20, signed: map[int64]int32{85: 0}, want: 85},
		{name: "an unreadable commit above the earliest height", earliest: 50, latest: 100, window: 1000, broken: []int64{70}, wantErr: "commit at height 70"},
		{name: "an unreadable commit below the signature is not read", earliest: 50, latest: 100, window: 1000, broken: []int64{70}, signed: map[int64]int32{80: 0}, want: 80},
		{name: "an unreadable latest commit", earliest: 50, latest: 100, window: 1000, broken: []int64{100}, signed: map[int64]int32{99: 0}, wantErr: "commit at height 100"},
		{name: "pruned during the scan", earliest: 50, latest: 100, window: 1000, pruneTo: 64, signed: map[int64]int32{55: 0}},
		{name: "pruned during the scan, signed above", earliest: 50, latest: 100, window: 1000, pruneTo: 64, signed: map[int64]int32{66: 3}, want: 66, wantRound: 3},
		{name: "batches refused", earliest: 1, latest: 100, window: 1000, maxBatch: 1, signed: map[int64]int32{45: 0}, want: 45},
		{name: "a batch limit of 3", earliest: 1, latest: 100, window: 1000, maxBatch: 3, signed: map[int64]int32{5: 0}, want: 5},
		{name: "no blocks yet", earliest: 0, latest: 0, window: 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, rpc := newFakeChain(t, tc.earliest, tc.latest)
			f.set(func(f *fakeChain) {
				for h, r := range tc.signed {
					f.signed[h] = r
				}
				for _, h := range tc.broken {
					f.broken[h] = true
				}
				f.pruneTo, f.maxBatch = tc.pruneTo, int(tc.maxBatch)
			})
			h, r, err := newFloorScan(rpc, f.addr.String()).lastSigned(t.Context(), tc.window)
			reads, requests := f.took()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LastSigned = %d, %v; want an error with %q", h, err, tc.wantErr)
				}
				return
			}
			if err != nil || h != tc.want || r != tc.wantRound {
				t.Fatalf("LastSigned = %d/%d, %v; want %d/%d", h, r, err, tc.want, tc.wantRound)
			}
			n, lowest := distinct(reads)
			if tc.lowestRead != 0 && lowest != tc.lowestRead {
				t.Fatalf("lowest height read %d, want %d", lowest, tc.lowestRead)
			}
			t.Logf("%d heights read (%d reads) in %d requests", n, len(reads), requests)
		})
	}
}

// The cache: a floor found stays, whatever the node prunes after; a later
// scan reads only the heights above the last one read (and the latest
// again, whose commit was not canonical yet); a scan that found nothing
// is not repeated.
func TestLastSignedCache(t *testing.T) {
	ctx := t.Context()
	f, rpc := newFakeChain(t, 50, 100)
	s := newFloorScan(rpc, f.addr.String())
	f.set(func(f *fakeChain) { f.signed[90] = 1 })
	if h, r, err := s.lastSigned(ctx, 1000); err != nil || h != 90 || r != 1 {
		t.Fatalf("LastSigned = %d/%d, %v; want 90/1", h, r, err)
	}
	f.took()

	// Heights 101..200 come, the node keeps 150..200, none signed.
	f.set(func(f *fakeChain) { f.earliest, f.latest = 150, 200 })
	if h, r, err := s.lastSigned(ctx, 1000); err != nil || h != 90 || r != 1 {
		t.Fatalf("LastSigned after pruning the signature = %d/%d, %v; want 90/1", h, r, err)
	}
	if n, lowest := distinct(first(f.took())); n != 51 || lowest != 150 {
		t.Fatalf("read %d heights down to %d, want the 51 of 150..200", n, lowest)
	}
	// Nothing new: only the latest is read again.
	if h, _, err := s.lastSigned(ctx, 1000); err != nil || h != 90 {
		t.Fatalf("LastSigned = %d, %v; want 90", h, err)
	}
	if reads, _ := f.took(); len(reads) != 1 || reads[0] != 200 {
		t.Fatalf("read %v, want only the latest height 200", reads)
	}
	// A later signature raises the floor.
	f.set(func(f *fakeChain) { f.latest = 230; f.signed[210] = 0 })
	if h, r, err := s.lastSigned(ctx, 1000); err != nil || h != 210 || r != 0 {
		t.Fatalf("LastSigned = %d/%d, %v; want 210/0", h, r, err)
	}
	// The window of a later call does not hide a floor found before.
	if h, _, err := s.lastSigned(ctx, 1); err != nil || h != 210 {
		t.Fatalf("LastSigned over 1 height = %d, %v; want 210", h, err)
	}

	// Another validator on the same node has its own cache; one that
	// never signed scans once.
	g := newFloorScan(rpc, ed25519.GenPrivKey().PubKey().Address().String())
	f.took()
	if h, _, err := g.lastSigned(ctx, 1000); err != nil || h != 0 {
		t.Fatalf("LastSigned of another validator = %d, %v; want 0", h, err)
	}
	if n, _ := distinct(first(f.took())); n != 81 {
		t.Fatalf("read %d heights, want the 81 of 150..230", n)
	}
	if h, _, err := g.lastSigned(ctx, 1000); err != nil || h != 0 {
		t.Fatalf("LastSigned of another validator again = %d, %v; want 0", h, err)
	}
	if reads, _ := f.took(); len(reads) != 1 {
		t.Fatalf("read %v again, want the latest height only", reads)
	}

	// The node is now of another chain: nothing is kept.
	f.set(func(f *fakeChain) { f.chainID = "other"; f.signed = map[int64]int32{} })
	if h, _, err := s.lastSigned(ctx, 1000); err != nil || h != 0 {
		t.Fatalf("LastSigned on another chain = %d, %v; want 0", h, err)
	}
}

func first(reads []int64, _ int) []int64 { return reads }

// The cache is the Remote's: a floor it found stays through its
// LastSigned after the node pruned the signature away, while a new Remote
// of the same node and key, knowing nothing, finds none.
func TestRemoteKeepsItsFloor(t *testing.T) {
	ctx := t.Context()
	f, _ := newFakeChain(t, 50, 100)
	keyPath := filepath.Join(t.TempDir(), "priv_validator_key.json")
	writeKey(t, keyPath)
	remote := func() *Remote {
		t.Helper()
		r, err := NewRemote(RemoteConfig{RPC: f.url, ValidatorKey: keyPath, ChainID: "fake", SignerAddr: "unix:///run/unused.sock"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := remote()
	addr, err := hex.DecodeString(r.Address())
	if err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeChain) { f.addr = addr; f.signed[90] = 1 })
	if h, rd, err := r.LastSigned(ctx, 1000); err != nil || h != 90 || rd != 1 {
		t.Fatalf("LastSigned = %d/%d, %v; want 90/1", h, rd, err)
	}
	f.set(func(f *fakeChain) { f.earliest, f.latest = 150, 200 })
	if h, rd, err := r.LastSigned(ctx, 1000); err != nil || h != 90 || rd != 1 {
		t.Fatalf("LastSigned after the node pruned the signature = %d/%d, %v; want 90/1", h, rd, err)
	}
	if h, _, err := remote().LastSigned(ctx, 1000); err != nil || h != 0 {
		t.Fatalf("a new Remote's LastSigned after the node pruned the signature = %d, %v; want 0", h, err)
	}
	if _, _, err := r.LastSigned(ctx, 0); err == nil {
		t.Fatal("a window of 0 heights accepted")
	}
}

// A node too slow for one scan's time: each call fails with
// ErrFloorIncomplete and keeps what it read, so the scans complete over a
// few calls, and never with a floor from a partial scan.
func TestLastSignedOutOfTime(t *testing.T) {
	f, rpc := newFakeChain(t, 1, 400)
	s := newFloorScan(rpc, f.addr.String())
	f.set(func(f *fakeChain) { f.delay = 25 * time.Millisecond; f.signed[3] = 0 })
	calls := 0
	for {
		calls++
		if calls > 50 {
			t.Fatal("no complete scan in 50 calls")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond) // 100 ms to scan
		h, _, err := s.lastSigned(ctx, 1000)
		timedOut := ctx.Err() != nil
		cancel()
		if errors.Is(err, ErrFloorIncomplete) || (err != nil && timedOut) {
			// Out of time in the scan, or (on a loaded machine) already
			// in the node's status before it: no floor either way.
			if h != 0 {
				t.Fatalf("an incomplete scan returned %d (%v)", h, err)
			}
			continue
		}
		if err != nil || h != 3 {
			t.Fatalf("LastSigned = %d, %v; want 3", h, err)
		}
		break
	}
	reads, requests := f.took()
	n, _ := distinct(reads)
	t.Logf("400 heights at 25 ms a request: %d calls, %d reads of %d heights, %d requests", calls, len(reads), n, requests)
	if calls < 2 {
		t.Fatal("the scan finished in one call: the test shows nothing")
	}
}

// How long a first scan of 100 heights, none signed, takes from a node
// 20 ms away (reported, not asserted beyond FloorScanTime): one request
// per height in a row would take 2 s.
func TestLastSignedScanTimeAtARoundTrip(t *testing.T) {
	f, rpc := newFakeChain(t, 1, 5000)
	f.set(func(f *fakeChain) { f.delay = 20 * time.Millisecond })
	start := time.Now()
	if h, _, err := newFloorScan(rpc, f.addr.String()).lastSigned(t.Context(), 100); err != nil || h != 0 {
		t.Fatalf("LastSigned = %d, %v; want 0", h, err)
	}
	reads, requests := f.took()
	t.Logf("100 heights at 20 ms a request: %v (%d reads, %d requests)", time.Since(start).Round(time.Millisecond), len(reads), requests)
}
