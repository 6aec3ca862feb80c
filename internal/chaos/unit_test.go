package chaos

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbft/cometbft/libs/protoio"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

func TestStats(t *testing.T) {
	s := stats([]float64{5, 1, 3, 2, 4, 100, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})
	if s.Min != 1 || s.Max != 100 || s.Median != 10 || s.P95 != 19 {
		t.Fatalf("stats %+v", s)
	}
	if (stats(nil) != Stats{}) {
		t.Fatal("stats of nothing")
	}
}

func stateFile(t *testing.T, h int64, r int32, step int8, ts time.Time, block byte) []byte {
	t.Helper()
	v := cmtproto.CanonicalVote{Type: cmtproto.PrevoteType, Height: h, Round: int64(r), Timestamp: ts, ChainID: "c"}
	if block != 0 {
		v.BlockID = &cmtproto.CanonicalBlockID{Hash: bytes.Repeat([]byte{block}, 32)}
	}
	sb, err := protoio.MarshalDelimited(&v)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"height": "7", "round": r, "step": step, "signbytes": strings.ToUpper(hex.EncodeToString(sb))})
	return data
}

func TestStateDigestIgnoresTimestamp(t *testing.T) {
	now := time.Now()
	hrs, a, ok := stateDigest(stateFile(t, 7, 0, 2, now, 1))
	if !ok || hrs != [3]int64{7, 0, 2} {
		t.Fatalf("hrs %v ok %v", hrs, ok)
	}
	_, b, _ := stateDigest(stateFile(t, 7, 0, 2, now.Add(time.Second), 1))
	_, c, _ := stateDigest(stateFile(t, 7, 0, 2, now, 0))
	if a != b {
		t.Fatal("a timestamp-only difference changed the digest")
	}
	if a == c {
		t.Fatal("a nil vote and a block vote have one digest")
	}
	if _, _, ok := stateDigest([]byte(`{"height":"7","round":0,"step":0}`)); ok {
		t.Fatal("a state without sign bytes counted as a signature")
	}
}

func TestProxyModes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { n, _ := io.Copy(c, io.TeeReader(c, countWriter{&got})); _ = n; c.Close() }()
		}
	}()
	// The first target refuses: the proxy falls back to the second.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	p, err := NewProxy("127.0.0.1:0", []string{deadAddr, ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo := func(d time.Duration) (time.Duration, bool) {
		start := time.Now()
		_ = c.SetDeadline(time.Now().Add(d))
		if _, err := c.Write([]byte("x")); err != nil {
			return 0, false
		}
		buf := make([]byte, 1)
		_, err := c.Read(buf)
		return time.Since(start), err == nil
	}
	if _, ok := echo(time.Second); !ok {
		t.Fatal("pass: no echo")
	}
	p.Degrade(150*time.Millisecond, 0)
	if d, ok := echo(2 * time.Second); !ok || d < 300*time.Millisecond {
		t.Fatalf("delay: echo after %s (ok %v), want ≥ 300ms", d, ok)
	}
	p.OneWay()
	before := got.Load()
	if _, ok := echo(300 * time.Millisecond); ok {
		t.Fatal("one-way: an answer came back")
	}
	if got.Load() == before {
		t.Fatal("one-way: the request did not reach the server")
	}
	p.Blackhole()
	before = got.Load()
	_, _ = echo(300 * time.Millisecond)
	if got.Load() != before {
		t.Fatal("blackhole: the request reached the server")
	}
}

type countWriter struct{ n *atomic.Int64 }

func (w countWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

func TestWatchdogKillsSilentUnit(t *testing.T) {
	killed := make(chan struct{}, 1)
	w, err := NewWatchdog(t.TempDir()+"/notify", 300*time.Millisecond, func() { killed <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c, err := net.Dial("unixgram", w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-killed:
		t.Fatal("killed before READY=1")
	case <-time.After(500 * time.Millisecond):
	}
	_, _ = c.Write([]byte("READY=1"))
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		_, _ = c.Write([]byte("WATCHDOG=1"))
	}
	select {
	case <-killed:
		t.Fatal("killed while fed")
	default:
	}
	select {
	case <-killed:
	case <-time.After(2 * time.Second):
		t.Fatal("not killed after the pings stopped")
	}
	if len(w.Kills()) != 1 {
		t.Fatalf("kills %v", w.Kills())
	}
}

func TestReportTable(t *testing.T) {
	fs := []*Fault{
		{Kind: "handover", FirstSigned: 10, ToSign: 1.5, Missed: 0},
		{Kind: "handover", FirstSigned: 20, ToSign: 30, Missed: 9, OverBound: true, NoFailover: true},
		{Kind: "kill-standby", FirstSigned: 30, ToSign: 1, Findings: []string{"evidence on chain: x"}},
	}
	r := NewReport(ModeSigner, 5, 3, 2, fs)
	if len(r.Kinds) != 2 || r.Kinds[0].Kind != "kill-standby" && r.Kinds[0].Kind != "handover" {
		t.Fatalf("kinds %+v", r.Kinds)
	}
	var b strings.Builder
	r.WriteTable(&b)
	for _, want := range []string{"handover", "kill-standby", "make chaos MODE=signer FAULTS=3 SEED=5"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
	md := r.Markdown()
	if !strings.Contains(md, "| handover | 2 | 0 | 0 / 0 / 9 / 9 |") || !strings.Contains(md, "| kill-standby | 1 | 1 |") {
		t.Fatalf("markdown:\n%s", md)
	}
}

// TestMergeReports: runs of one mode make one table with every fault and
// each run's replay line; a failed run fails the merge's result; runs of
// two modes are refused.
func TestMergeReports(t *testing.T) {
	a := NewReport(ModeRestart, 1, 2, 2, []*Fault{{Kind: "handover", FirstSigned: 10, ToSign: 1}, {Kind: "kill-standby", FirstSigned: 12, ToSign: 1}})
	a.Result = "pass"
	b := NewReport(ModeRestart, 2, 1, 3, []*Fault{{Kind: "handover", FirstSigned: 20, ToSign: 3, Missed: 2}})
	b.Result = "pass"
	m, err := MergeReports(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Injected != 3 || m.Faults != 3 || m.Result != "pass" || len(m.Runs) != 2 || m.Kinds[0].Kind != "handover" && m.Kinds[1].Kind != "handover" {
		t.Fatalf("merged: %+v", m)
	}
	if !strings.Contains(m.Runs[1], "CHAOS_ARGS='--replicas 3'") {
		t.Fatalf("run line of a 3-replica run: %q", m.Runs[1])
	}
	b.Result = "fault 1 (handover): replicas not back"
	if m, _ := MergeReports(a, b); m.Result == "pass" {
		t.Fatal("a merge with a failed run passed")
	}
	if _, err := MergeReports(a, NewReport(ModeSigner, 3, 1, 2, nil)); err == nil {
		t.Fatal("runs of two modes merged")
	}
}

// TestStandinChainFindsTwoProducers: the NEAR drill's chain reads the
// stand-ins' journals as they grow (a line cut in the middle of a write
// included) and reports a height two replicas produced, whenever the
// second write came.
func TestStandinChainFindsTwoProducers(t *testing.T) {
	dir := t.TempDir()
	j0, j1 := filepath.Join(dir, "journal-r0"), filepath.Join(dir, "journal-r1")
	c := newStandinChain(time.Now().Add(-10*time.Second), time.Second, nearAccount, []string{j0, j1})
	appendTo := func(path, s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	appendTo(j0, "3 "+nearAccount+" 100\n4 "+nearAccount+" 100\n5 pool.poolv1.")
	if ok, _ := c.signedAt(ctx, 4); !ok {
		t.Fatal("height 4 not seen as produced")
	}
	if ok, _ := c.signedAt(ctx, 5); ok {
		t.Fatal("a half-written line counted")
	}
	appendTo(j0, "near 100\n")
	appendTo(j1, "6 other.near 200\n")
	if f, err := c.findings(ctx, 1, 9); err != nil || len(f) != 0 {
		t.Fatalf("findings on a clean journal: %v, %v", f, err)
	}
	if s, _ := c.signed(ctx, 1, 9); len(s) != 3 || s[0] != 3 || s[2] != 5 {
		t.Fatalf("signed %v, want [3 4 5] (another account's line ignored)", s)
	}
	appendTo(j1, "4 "+nearAccount+" 200\n")
	f, err := c.findings(ctx, 5, 9) // height 4 was scanned before: still found
	if err != nil || len(f) != 1 || !strings.Contains(f[0], "height 4 produced 2 times") {
		t.Fatalf("findings after a second producer of height 4: %v, %v", f, err)
	}
	appendTo(j0, "7 pool.po8 pool.poolv1.near 100\n") // a torn write hiding height 8
	if f, _ := c.findings(ctx, 1, 9); len(f) != 2 || !strings.Contains(strings.Join(f, " "), "unreadable line") {
		t.Fatalf("findings after a torn line: %v", f)
	}
	if h, _ := c.height(ctx); h < 9 || h > 11 {
		t.Fatalf("height %d, want about 10 s after genesis at 1 s a block", h)
	}
}

// TestCompleteDropsTheCutFault: a run stopped by a signal counts the
// faults it checked; the one in progress at the stop is left out.
func TestCompleteDropsTheCutFault(t *testing.T) {
	r := NewReport(ModeNEAR, 9, 300, 3, []*Fault{
		{Kind: "handover", FirstSigned: 10, ToSign: 1},
		{Kind: "flapping-consul"},
	})
	r.Result = "fault 2 (flapping-consul): context canceled"
	c := r.Complete()
	if c.Injected != 1 || len(c.Kinds) != 1 || c.Kinds[0].Kind != "handover" || !strings.HasPrefix(c.Result, "stopped on purpose after 1") {
		t.Fatalf("complete: %d injected, kinds %+v, result %q", c.Injected, c.Kinds, c.Result)
	}
	if m, err := MergeReports(r, NewReport(ModeNEAR, 10, 1, 2, nil)); err != nil || m.Injected != 1 {
		t.Fatalf("merge with a stopped run: %+v, %v", m, err)
	}
	r.Result = "pass"
	r.FaultList = r.FaultList[:1]
	if r.Complete() != r {
		t.Fatal("a finished run was changed")
	}
}
