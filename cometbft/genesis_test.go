package cometbft

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
