package supervisor

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestChainWideStall: a leader whose node is at the top (no other replica
// ahead) and takes part — it still signs new rounds, or it signed at the
// height it is stuck on and waits for the others, which is what CometBFT
// does with a third of the power gone — stays through a stall of the
// whole chain, in both sign modes, and says so (valguard_chain_stalled
// 1); one that is behind another replica, or whose node stopped taking
// part, steps down after MaxStall as before. On a fake clock at the
// default MaxStall (clock_test.go): staying is checked at every poll for
// four MaxStalls, stepping down within two.
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
			c := newClockRig(t, func(cfg *Config) { cfg.BestHeight = best.Load })
			var fs *fakeSigner
			tickers := 2 // poll and publish
			if tc.signer {
				fs = &fakeSigner{j: c.j, now: c.fc.Now}
				useSigner(c.sup, fs)
				c.sup.cfg.RecoveryAfter = time.Hour // the recovery restart is another test's
				tickers = 1
			}
			c.validating(tickers)
			// The chain stops at the node's height.
			c.node.set(func(n *fakeNode) { n.still = true })
			var h int64
			c.node.set(func(n *fakeNode) { h = n.status.Height })
			best.Store(h + tc.ahead)
			if tc.voted > 0 {
				if tc.signer {
					fs.mu.Lock()
					fs.signed = h + tc.voted
					fs.mu.Unlock()
				} else {
					c.node.set(func(n *fakeNode) { n.signed = h + tc.voted })
				}
			} else {
				c.node.set(func(n *fakeNode) { n.signed = h })
			}
			if tc.quiet && tc.signer {
				fs.mu.Lock()
				fs.dropped = true
				fs.mu.Unlock()
			}
			// A key-file node that signs signs a new round at every poll.
			round := 0
			poll := func() time.Time {
				if !tc.quiet && !tc.signer {
					round++
					c.node.set(func(n *fakeNode) { n.watermark = fmt.Appendf(nil, "h9r%d", round) })
				}
				return c.poll()
			}
			start := c.fc.Now()
			if !tc.stays {
				for !c.released() {
					if at := poll(); at.Sub(start) > 2*c.sup.cfg.MaxStall {
						t.Fatalf("still leading %s into the stall (MaxStall %s):\n%s", at.Sub(start), c.sup.cfg.MaxStall, strings.Join(c.j.list(), "\n"))
					}
				}
				return
			}
			for c.fc.Since(start) < 4*c.sup.cfg.MaxStall {
				poll()
				if c.released() || c.sup.State() != Validating {
					t.Fatalf("the leader stepped down in a stall of the whole chain (state %s):\n%s", c.sup.State(), strings.Join(c.j.list(), "\n"))
				}
			}
			if got := testutil.ToFloat64(c.m.stalled); got != 1 {
				t.Fatalf("valguard_chain_stalled = %v, want 1", got)
			}
			// The chain moves again: the gauge goes back to 0.
			c.node.set(func(n *fakeNode) { n.still = false })
			for moved := c.fc.Now(); testutil.ToFloat64(c.m.stalled) != 0; {
				if at := poll(); at.Sub(moved) > 5*c.sup.cfg.PollInterval {
					t.Fatalf("valguard_chain_stalled still 1 %s after the chain moved", at.Sub(moved))
				}
			}
		})
	}
}
