package supervisor

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStuckStandbyNodeRestarted: a standby (Syncing) whose node's height
// stands still while a replica reports a higher one has its node
// restarted in the voter role after MaxStall, again after twice as long
// if it comes back stuck at the same height, and after MaxStall again
// once it moved in between. Not restarted: a node at the top (the chain
// stands), a node at height 0 (a state sync under way). On a fake clock
// at the default MaxStall (30 s).
func TestStuckStandbyNodeRestarted(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ahead    int64 // how far the best replica is above the node
		height   int64 // the node's frozen height
		catching bool  // the node says it is catching up
		restarts bool
	}{
		{name: "the chain moves on without it", ahead: 20, height: 7, restarts: true},
		{name: "the chain stands", ahead: 0, height: 7},
		{name: "height 0: a state sync under way", ahead: 20, height: 0},
		{name: "catching up", ahead: 20, height: 7, catching: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ahead atomic.Int64
			ahead.Store(tc.ahead)
			c := frozenStandby(t, &ahead, Status{Height: tc.height, CatchingUp: tc.catching})
			c.gate(1)
			entered := c.poll()
			var at []time.Duration // restart times since entered
			before := time.Time{}
			for range 160 {
				now := c.poll()
				if n := c.node.starts(RoleVoter) - 1; n > len(at) {
					at = append(at, before.Sub(entered))
				}
				before = now
				if len(at) == 2 {
					break
				}
			}
			if !tc.restarts {
				if len(at) > 0 {
					t.Fatalf("node restarted %s after entering Syncing:\n%s", at[0], strings.Join(c.j.list(), "\n"))
				}
				return
			}
			if len(at) != 2 {
				t.Fatalf("%d restarts in 160 s of a stuck node (want 2):\n%s", len(at), strings.Join(c.j.list(), "\n"))
			}
			t.Logf("restarts at %v after the node stood still", at)
			ms := c.sup.cfg.MaxStall
			if at[0] < ms || at[0] > ms+3*time.Second {
				t.Errorf("first restart %s after the node stood still, want MaxStall (%s) to MaxStall+3 s", at[0], ms)
			}
			if gap := at[1] - at[0]; gap < 2*ms || gap > 2*ms+5*time.Second {
				t.Errorf("second restart %s after the first, want 2×MaxStall (%s) to 2×MaxStall+5 s", gap, 2*ms)
			}
			if got := testutil.ToFloat64(c.sup.cfg.Metrics.stuck); got != 2 {
				t.Errorf("valguard_stuck_node_restarts_total %v, want 2", got)
			}
			if c.j.index("start:validator") >= 0 {
				t.Fatalf("a stuck standby's node was started as the validator:\n%s", strings.Join(c.j.list(), "\n"))
			}
			// The node moves, then stops again: the next restart comes
			// after MaxStall, not 4×MaxStall.
			c.node.set(func(n *fakeNode) { n.still = false })
			c.poll()
			c.poll()
			c.node.set(func(n *fakeNode) { n.still = true })
			moved := c.poll()
			for range 60 {
				now := c.poll()
				if c.node.starts(RoleVoter) == 4 {
					if d := now.Sub(moved); d < ms || d > ms+4*time.Second {
						t.Errorf("restart %s after the node stopped again, want about MaxStall (%s)", d, ms)
					}
					return
				}
			}
			t.Fatalf("no restart within 60 s after the node moved and stopped again:\n%s", strings.Join(c.j.list(), "\n"))
		})
	}
}

// TestWholeChainStallEndsWithoutRestart: after the whole chain stood for
// longer than MaxStall, another replica's node shows the next height a
// few polls before this one does: no restart (the node was not behind
// for MaxStall). Behind for MaxStall after that, it is restarted.
func TestWholeChainStallEndsWithoutRestart(t *testing.T) {
	var ahead atomic.Int64
	c := frozenStandby(t, &ahead, Status{Height: 7})
	c.gate(1)
	for range 120 { // the whole chain stands for 2 minutes
		c.poll()
	}
	behindAt := c.fc.Now() // the poll held now reads the best height first
	ahead.Store(1)         // another replica's node has the next block first
	for range 3 {
		c.poll()
	}
	c.poll()
	if n := c.node.starts(RoleVoter); n != 1 {
		t.Fatalf("the node was restarted (%d starts) when the chain moved on after a whole-chain stall:\n%s", n, strings.Join(c.j.list(), "\n"))
	}
	// Still behind, MaxStall later: stuck.
	for range 40 {
		now := c.poll()
		if c.node.starts(RoleVoter) == 2 {
			if d := now.Sub(behindAt); d < c.sup.cfg.MaxStall {
				t.Fatalf("restarted %s after falling behind, before MaxStall", d)
			}
			return
		}
	}
	t.Fatalf("not restarted 40 s after falling behind:\n%s", strings.Join(c.j.list(), "\n"))
}

// frozenStandby is a clock rig run to Syncing whose node stands at st
// (its height never moves, its last block grows old, so it is not synced
// and the replica stays in Syncing), with the best reported height ahead
// blocks above it.
func frozenStandby(t *testing.T, ahead *atomic.Int64, st Status) *clockRig {
	t.Helper()
	var c *clockRig
	c = newClockRig(t, func(cfg *Config) {
		cfg.BestHeight = func() int64 {
			var h int64
			c.node.set(func(n *fakeNode) { h = n.status.Height })
			return h + ahead.Load()
		}
	})
	c.node.set(func(n *fakeNode) {
		n.still = true
		n.status = st
	})
	c.run()
	c.drive("Syncing", func() bool { return c.sup.State() == Syncing })
	return c
}
