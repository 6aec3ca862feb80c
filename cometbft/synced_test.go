package cometbft

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/p2p"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"

	"github.com/valguard/valguard/supervisor"
)

// TestSynced: the adapter's verdict. A node with no block yet that is not
// catching up is synced only with evidence of a launch (the genesis time
// ahead or within LaunchWindow): without it, it may be a node whose home
// was wiped on a running chain, which CometBFT reports at height 0, not
// catching up, when its validator holds a third of the power.
func TestSynced(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		st     supervisor.Status
		age    time.Duration
		launch bool
		want   bool
	}{
		{"fresh block", supervisor.Status{Height: 9, BlockTime: now}, time.Minute, false, true},
		{"fresh block at a launch", supervisor.Status{Height: 9, BlockTime: now}, time.Minute, true, true},
		{"old block", supervisor.Status{Height: 9, BlockTime: now.Add(-2 * time.Minute)}, time.Minute, false, false},
		{"old block at a launch", supervisor.Status{Height: 9, BlockTime: now.Add(-2 * time.Minute)}, time.Minute, true, false},
		{"old block, any age", supervisor.Status{Height: 9, BlockTime: now.Add(-2 * time.Minute)}, -1, false, true},
		{"catching up", supervisor.Status{Height: 9, BlockTime: now, CatchingUp: true}, time.Minute, false, false},
		{"launch: no block yet", supervisor.Status{}, time.Minute, true, true},
		{"launch: no block yet, any age", supervisor.Status{}, -1, true, true},
		{"no block, no launch (a wiped home)", supervisor.Status{}, time.Minute, false, false},
		{"no block, no launch, any age", supervisor.Status{}, -1, false, false},
		{"block sync at height 0", supervisor.Status{CatchingUp: true}, time.Minute, false, false},
		{"block sync at height 0 at a launch", supervisor.Status{CatchingUp: true}, time.Minute, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := synced(tc.st, tc.age, tc.launch); got != tc.want {
				t.Fatalf("synced(%+v, %s, %v) = %v", tc.st, tc.age, tc.launch, got)
			}
		})
	}
}

// statusRPC answers the JSON-RPC status call as CometBFT does: no block
// yet, not catching up, validator addr on chain network.
func statusRPC(t *testing.T, addr []byte, network string) *rpchttp.HTTP {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(body, &req)
		res := ctypes.ResultStatus{
			NodeInfo:      p2p.DefaultNodeInfo{Network: network},
			SyncInfo:      ctypes.SyncInfo{LatestBlockHeight: 0, CatchingUp: false},
			ValidatorInfo: ctypes.ValidatorInfo{Address: addr, PubKey: ed25519.GenPrivKey().PubKey()},
		}
		result, err := cmtjson.Marshal(&res)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, result)
	}))
	t.Cleanup(srv.Close)
	rpc, err := rpchttp.New(srv.URL, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	return rpc
}

// TestStatusWithNoBlockYet: Node.Status counts a node with no block yet
// as synced only when the genesis file's genesis_time is ahead or within
// LaunchWindow; the genesis time is read once and kept. Remote (no
// genesis file) never counts it as synced.
func TestStatusWithNoBlockYet(t *testing.T) {
	now := time.Now().UTC()
	stamp := func(d time.Duration) string {
		return fmt.Sprintf(`{"genesis_time":%q,"chain_id":"launch-1","initial_height":"1","app_state":{}}`, now.Add(d).Format(time.RFC3339Nano))
	}
	for _, tc := range []struct {
		name    string
		genesis string // "" : no genesis file
		want    bool
	}{
		{"genesis now", stamp(0), true},
		{"genesis ahead", stamp(10 * time.Minute), true},
		{"genesis within the window", stamp(-LaunchWindow + 5*time.Minute), true},
		{"genesis past the window (a wiped home on a running chain)", stamp(-LaunchWindow - time.Minute), false},
		{"genesis years ago", `{"genesis_time":"2019-12-11T16:11:34.115Z","chain_id":"old-1"}`, false},
		{"restart at initial height 5000000, genesis now", fmt.Sprintf(`{"genesis_time":%q,"chain_id":"re-2","initial_height":"5000000"}`, now.Format(time.RFC3339Nano)), true},
		{"restart at initial height 5000000, old genesis", `{"genesis_time":"2019-12-11T16:11:34.115Z","chain_id":"re-2","initial_height":"5000000"}`, false},
		{"no genesis_time", `{"chain_id":"launch-1","app_state":{}}`, false},
		{"unreadable genesis_time", `{"genesis_time":42,"chain_id":"launch-1"}`, false},
		{"no genesis file", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, key := home(t, "")
			n := newNode(t, h, key)
			gen := filepath.Join(h, "config", "genesis.json")
			if tc.genesis != "" {
				write(t, gen, tc.genesis)
			}
			raw, err := hex.DecodeString(n.Address())
			if err != nil {
				t.Fatal(err)
			}
			n.rpc = statusRPC(t, raw, "launch-1")
			// The key-file mode never leads from height 0 (its raise needs
			// a committed height): not synced, whatever the genesis.
			if st, err := n.Status(context.Background()); err != nil || st.Synced {
				t.Fatalf("key-file mode at height 0: %+v, %v; want not synced", st, err)
			}
			n.cfg.SignMode = SignSigner
			st, err := n.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Height != 0 || st.CatchingUp || st.Synced != tc.want {
				t.Fatalf("Status = %+v, want synced %v", st, tc.want)
			}
			// Kept: a genesis file changed or added later is not read again.
			if tc.want {
				write(t, gen, stamp(-10*LaunchWindow))
			} else {
				write(t, gen, stamp(0))
			}
			if st, err := n.Status(context.Background()); err != nil || st.Synced != tc.want {
				t.Fatalf("second Status = %+v, %v; want synced %v (the genesis time read once)", st, err, tc.want)
			}
		})
	}
	t.Run("remote", func(t *testing.T) {
		_, key := home(t, "")
		r, err := NewRemote(RemoteConfig{RPC: "http://127.0.0.1:1", ValidatorKey: key, ChainID: "launch-1", SignerAddr: "unix:///tmp/unused.sock"})
		if err != nil {
			t.Fatal(err)
		}
		r.rpc = statusRPC(t, mustHex(t, r.Address()), "launch-1")
		st, err := r.Status(context.Background())
		if err != nil || st.Synced || st.Height != 0 {
			t.Fatalf("Remote.Status = %+v, %v; want height 0, not synced", st, err)
		}
	})
}
