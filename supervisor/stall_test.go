package supervisor

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// signing makes the fake node's sign state change every few milliseconds
// (a node that signs each new round of a height that does not end) until
// the test ends.
func signing(t *testing.T, n *fakeNode) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			n.set(func(n *fakeNode) { n.watermark = []byte(fmt.Sprintf("h9r%d", round)) })
		}
	}()
}

// TestChainWideStall: a leader whose node is at the top (no other replica
// ahead) and takes part — it still signs new rounds, or it signed at the
// height it is stuck on and waits for the others, which is what CometBFT
// does with a third of the power gone — stays through a stall of the
// whole chain, in both sign modes, and says so (valguard_chain_stalled
// 1); one that is behind another replica, or whose node stopped taking
// part, steps down after MaxStall as before.
func TestChainWideStall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		signer bool
		ahead  int64 // how far the best other replica is above the node
		quiet  bool  // the node stopped signing / asking
		voted  int64 // the last signature's height relative to the node's (1: at the height it is stuck on)
		stays  bool
	}{
		{name: "key-file: chain stopped", stays: true},
		{name: "key-file: another replica ahead", ahead: 3},
		{name: "key-file: node stopped signing", quiet: true},
		{name: "key-file: voted at the stuck height, waits", quiet: true, voted: 1, stays: true},
		{name: "key-file: last vote below the stuck height", quiet: true, voted: 0},
		{name: "signer: chain stopped", signer: true, stays: true},
		{name: "signer: another replica ahead", signer: true, ahead: 3},
		{name: "signer: node stopped asking", signer: true, quiet: true},
		{name: "signer: voted at the stuck height, waits", signer: true, quiet: true, voted: 1, stays: true},
		{name: "signer: voted at the stuck height, another replica ahead", signer: true, quiet: true, voted: 1, ahead: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var best atomic.Int64
			r := newRig(t, func(c *Config) { c.BestHeight = best.Load })
			var fs *fakeSigner
			if tc.signer {
				fs = &fakeSigner{j: r.j}
				r.sup.cfg.Signer = fs
				r.sup.cfg.RecoveryAfter = time.Hour // the recovery restart is another test's
			}
			r.validating()
			// The chain stops at the node's height.
			r.node.set(func(n *fakeNode) { n.still = true })
			var h int64
			r.node.set(func(n *fakeNode) { h = n.status.Height })
			best.Store(h + tc.ahead)
			if tc.voted > 0 {
				if tc.signer {
					fs.mu.Lock()
					fs.signed = h + tc.voted
					fs.mu.Unlock()
				} else {
					r.node.set(func(n *fakeNode) { n.signed = h + tc.voted })
				}
			} else {
				r.node.set(func(n *fakeNode) { n.signed = h })
			}
			switch {
			case tc.quiet && tc.signer:
				fs.mu.Lock()
				fs.dropped = true
				fs.mu.Unlock()
			case !tc.quiet && !tc.signer:
				signing(t, r.node)
			}
			if !tc.stays {
				eventually(t, 5*time.Second, "step down", func() bool { return r.j.index("release") >= 0 })
				return
			}
			time.Sleep(4 * r.sup.cfg.MaxStall)
			if r.j.index("release") >= 0 || r.sup.State() != Validating {
				t.Fatalf("the leader stepped down in a stall of the whole chain (state %s):\n%s", r.sup.State(), strings.Join(r.j.list(), "\n"))
			}
			if got := testutil.ToFloat64(r.m.stalled); got != 1 {
				t.Fatalf("valguard_chain_stalled = %v, want 1", got)
			}
			// The chain moves again: the gauge goes back to 0.
			r.node.set(func(n *fakeNode) { n.still = false })
			eventually(t, 5*time.Second, "valguard_chain_stalled 0", func() bool { return testutil.ToFloat64(r.m.stalled) == 0 })
		})
	}
}
