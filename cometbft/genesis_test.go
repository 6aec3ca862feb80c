package cometbft

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/types"

	"github.com/valguard/valguard/supervisor"
)

func TestChainID(t *testing.T) {
	cases := []struct {
		name, genesis, want, bad string
	}{
		{"cometbft layout", `{"genesis_time":"2026-01-01T00:00:00Z","chain_id":"test-chain-Ab12","initial_height":"1","app_state":{}}`, "test-chain-Ab12", ""},
		{"after nested values", `{"app_state":{"a":[1,{"chain_id":"inner"}],"b":"x"},"consensus":{"params":null},"chain_id":"outer"}`, "outer", ""},
		{"missing", `{"genesis_time":"2026-01-01T00:00:00Z","app_state":{"chain_id":"inner"}}`, "", "no chain_id"},
		{"empty", `{"chain_id":""}`, "", "chain_id is empty"},
		{"a number", `{"chain_id":7}`, "", "not a string"},
		{"too long", fmt.Sprintf(`{"chain_id":%q}`, strings.Repeat("c", types.MaxChainIDLen+1)), "", "CometBFT allows 50"},
		{"not an object", `["chain_id","x"]`, "", "not a JSON object"},
		{"truncated", `{"genesis_time":"2026`, "", "genesis file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, key := home(t, "")
			n := newNode(t, h, key)
			write(t, filepath.Join(h, "config", "genesis.json"), tc.genesis)
			got, err := n.ChainID()
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ChainID = %q, %v; want an error containing %q", got, err, tc.bad)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ChainID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("genesis_file in config.toml", func(t *testing.T) {
		dir := t.TempDir()
		gen := filepath.Join(dir, "elsewhere.json")
		write(t, gen, `{"chain_id":"moved"}`)
		h, key := home(t, fmt.Sprintf("genesis_file = %q\n", gen)+freeAddrsConfig(t))
		n := newNode(t, h, key)
		if got, err := n.ChainID(); err != nil || got != "moved" {
			t.Fatalf("ChainID = %q, %v; want moved", got, err)
		}
	})
	t.Run("no genesis file", func(t *testing.T) {
		h, key := home(t, "")
		n := newNode(t, h, key)
		if _, err := n.ChainID(); err == nil || !strings.Contains(err.Error(), "genesis file") {
			t.Fatalf("ChainID = %v, want an error naming the genesis file", err)
		}
	})
}

// A genesis file of a real chain's size (here 200 MB of app_state) is not
// read whole: chain_id before app_state costs nothing, and after it the
// scan holds one token at a time.
func TestChainIDOfABigGenesis(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	h, key := home(t, "")
	n := newNode(t, h, key)
	path := filepath.Join(h, "config", "genesis.json")
	writeBig := func(before bool, size int) {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		fmt.Fprint(w, `{"genesis_time":"2026-01-01T00:00:00Z",`)
		if before {
			fmt.Fprint(w, `"chain_id":"big-1",`)
		}
		fmt.Fprint(w, `"app_state":{"accounts":[`)
		entry := `{"address":"cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq","coins":[{"denom":"stake","amount":"1000000"}]}`
		for i := 0; w.Size() > 0 && i < size/len(entry); i++ {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(entry)
		}
		fmt.Fprint(w, `]}`)
		if !before {
			fmt.Fprint(w, `,"chain_id":"big-1"`)
		}
		fmt.Fprint(w, `}`)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// chain_id after app_state is a layout no known tool writes: it is
	// read, slowly, from a smaller file.
	for _, before := range []bool{true, false} {
		size := 200 << 20
		if !before {
			size = 20 << 20
		}
		writeBig(before, size)
		fi, _ := os.Stat(path)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		start := time.Now()
		id, err := n.ChainID()
		took := time.Since(start)
		runtime.ReadMemStats(&m1)
		if err != nil || id != "big-1" {
			t.Fatalf("ChainID = %q, %v", id, err)
		}
		t.Logf("genesis %d MB, chain_id before app_state: %v: %v, %d MB allocated in all", fi.Size()>>20, before, took.Round(time.Millisecond), (m1.TotalAlloc-m0.TotalAlloc)>>20)
		// With chain_id at the top only the head of the file is read: a
		// whole-file read would allocate its 200 MB.
		if alloc := (m1.TotalAlloc - m0.TotalAlloc) >> 20; before && alloc > 16 {
			t.Errorf("ChainID allocated %d MB with chain_id at the top; it reads more than the head of the file", alloc)
		}
	}
}

// A watermark the signer wrote (priv_validator_state.json plus chain_id,
// signature and sign bytes) is read by the restart mode: a replica that
// switches from the signer mode back to the restart mode raises its sign
// state above it (S8), and CompareWatermarks orders it.
func TestSignerWatermarkInRestartMode(t *testing.T) {
	signerWM := `{"chain_id":"c","height":"150","round":2,"step":2,"signature":"3q2+7w==","signbytes":"0A0B0C"}`
	h, key := home(t, "")
	n := newNode(t, h, key)
	n.seen.Store(100)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, []byte(signerWM)); err != nil {
		t.Fatal(err)
	}
	if st, _ := readState(n.p.state); st != (SignState{150, 2, 2}) {
		t.Fatalf("sign state %+v, want the signer's watermark 150/2/2", st)
	}
	// The same below the observed height: the observed height wins.
	n.seen.Store(200)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, []byte(signerWM)); err != nil {
		t.Fatal(err)
	}
	if st, _ := readState(n.p.state); st != (SignState{201, math.MaxInt32, 3}) {
		t.Fatalf("sign state %+v, want 201 blocked", st)
	}
	restartWM, _ := json.Marshal(SignState{Height: 150, Round: 2, Step: 1})
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{signerWM, string(restartWM), 1},
		{string(restartWM), signerWM, -1},
		{signerWM, `{"height":"150","round":2,"step":2}`, 0},
		{signerWM, `{"chain_id":"c","height":"151","round":0,"step":1,"signature":"AA==","signbytes":"00"}`, -1},
	} {
		if got, err := CompareWatermarks([]byte(tc.a), []byte(tc.b)); err != nil || got != tc.want {
			t.Errorf("CompareWatermarks(%s, %s) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
}

// accounts is an app_state of n accounts (n < 0: without end), made as it
// is read; read counts the bytes taken from it.
type accounts struct {
	n, i int
	buf  []byte
	read int64
}

const account = `{"address":"cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq","coins":[{"denom":"stake","amount":"1000000"}]}`

func (a *accounts) Read(p []byte) (int, error) {
	for len(a.buf) == 0 {
		switch {
		case a.i == 0:
			a.buf = []byte(`{"accounts":[` + account)
		case a.n < 0 || a.i < a.n:
			a.buf = []byte("," + account)
		case a.i == a.n:
			a.buf = []byte(`]}`)
		default:
			return 0, io.EOF
		}
		a.i++
	}
	k := copy(p, a.buf)
	a.buf = a.buf[k:]
	a.read += int64(k)
	return k, nil
}

func TestGenesisTime(t *testing.T) {
	want := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name, genesis, bad string
		want               time.Time
	}{
		{"cometbft layout", `{"genesis_time":"2026-03-01T12:00:00.123456789Z","chain_id":"c-1","initial_height":"1","app_state":{}}`, "", want},
		{"without fraction, other zone", `{"genesis_time":"2026-03-01T13:00:00+01:00"}`, "", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		{"far past", `{"genesis_time":"2019-12-11T16:11:34.115Z","chain_id":"cosmoshub-4"}`, "", time.Date(2019, 12, 11, 16, 11, 34, 115e6, time.UTC)},
		{"future", `{"genesis_time":"2099-01-01T00:00:00Z"}`, "", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"initial_height before it", `{"initial_height":"5000000","consensus_params":{"block":{"max_bytes":"1"}},"genesis_time":"2026-03-01T12:00:00.123456789Z"}`, "", want},
		{"after nested values", `{"app_state":{"a":[1,{"genesis_time":"2000-01-01T00:00:00Z"}],"b":"x"},"genesis_time":"2026-03-01T12:00:00.123456789Z"}`, "", want},
		{"missing", `{"chain_id":"c-1","app_state":{"genesis_time":"2026-03-01T12:00:00Z"}}`, "", time.Time{}},
		{"a number", `{"genesis_time":1767225600}`, "not a string", time.Time{}},
		{"null", `{"genesis_time":null}`, "not a string", time.Time{}},
		{"an object", `{"genesis_time":{"seconds":1}}`, "not a string", time.Time{}},
		{"not a time", `{"genesis_time":"tomorrow"}`, "cannot parse", time.Time{}},
		{"the zero time", `{"genesis_time":"0001-01-01T00:00:00Z"}`, "zero time", time.Time{}},
		{"not an object", `["genesis_time","2026-03-01T12:00:00Z"]`, "not a JSON object", time.Time{}},
		{"truncated", `{"chain_id":"c-1","genesis_time":"2026`, "unexpected EOF", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readGenesisTime(strings.NewReader(tc.genesis))
			if tc.want.IsZero() {
				bad := tc.bad
				if bad == "" {
					bad = "no genesis_time"
				}
				if err == nil || !strings.Contains(err.Error(), bad) {
					t.Fatalf("readGenesisTime = %v, %v; want an error containing %q", got, err, bad)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("readGenesisTime = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	// genesis_time before a large app_state: the scan stops at it (here
	// the app_state has no end).
	t.Run("before a large app_state", func(t *testing.T) {
		app := &accounts{n: -1}
		r := io.MultiReader(strings.NewReader(`{"genesis_time":"2026-03-01T12:00:00.123456789Z","chain_id":"c-1","app_state":`), app)
		got, err := readGenesisTime(bufio.NewReaderSize(r, 64<<10))
		if err != nil || !got.Equal(want) {
			t.Fatalf("readGenesisTime = %v, %v", got, err)
		}
		if app.read > 64<<10 {
			t.Fatalf("%d bytes of app_state read; want at most the reader's buffer", app.read)
		}
	})
	// genesis_time after a large app_state (no known tool writes it so):
	// the app_state is skipped token by token, nothing of it kept.
	t.Run("after a large app_state", func(t *testing.T) {
		app := &accounts{n: 100_000} // 10 MB
		r := io.MultiReader(strings.NewReader(`{"chain_id":"c-1","app_state":`), app, strings.NewReader(`,"genesis_time":"2026-03-01T12:00:00.123456789Z"}`))
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		got, err := readGenesisTime(bufio.NewReaderSize(r, 64<<10))
		runtime.ReadMemStats(&m1)
		if err != nil || !got.Equal(want) {
			t.Fatalf("readGenesisTime = %v, %v", got, err)
		}
		if app.read < 10<<20 {
			t.Fatalf("only %d bytes of app_state read", app.read)
		}
		// Decoded whole, the app_state would be held at once; token by
		// token only the decoder's buffer is (the tokens themselves are
		// garbage at once, so the heap stays small).
		if inuse := int64(m1.HeapInuse) - int64(m0.HeapInuse); inuse > 8<<20 {
			t.Errorf("heap grew by %d MB reading a 10 MB app_state", inuse>>20)
		}
	})
}

// TestLaunching: a chain is at its launch while its genesis time is ahead
// or less than LaunchWindow ago.
func TestLaunching(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		genesis time.Time
		want    bool
	}{
		{"far future", now.Add(1000 * time.Hour), true},
		{"future", now.Add(time.Minute), true},
		{"now", now, true},
		{"within the window", now.Add(-LaunchWindow + time.Second), true},
		{"at the window's end", now.Add(-LaunchWindow), false},
		{"past the window", now.Add(-LaunchWindow - time.Minute), false},
		{"far past", time.Date(2019, 12, 11, 16, 11, 34, 0, time.UTC), false},
		{"zero", time.Time{}, false},
	} {
		if got := launching(tc.genesis, now); got != tc.want {
			t.Errorf("%s: launching(%v, now) = %v", tc.name, tc.genesis, got)
		}
	}
}
