package supervisor

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLaggingStandbyStaysOut: a synced standby more than MaxLag blocks
// below the best height a replica reports stays out of the election (no
// session, no take), leaves it when it falls behind while voting, and
// takes part once within MaxLag.
func TestLaggingStandbyStaysOut(t *testing.T) {
	var ahead atomic.Int64 // how far the best replica is above this node
	ahead.Store(20)
	var r *rig
	r = newRig(t, func(c *Config) {
		c.MaxLag = 5
		c.BestHeight = func() int64 {
			var h int64
			r.node.set(func(n *fakeNode) { h = n.status.Height })
			return h + ahead.Load()
		}
	})
	r.run()
	r.waitState(Syncing)
	time.Sleep(300 * time.Millisecond)
	if st := r.sup.State(); st != Syncing || r.sessions() != 0 {
		t.Fatalf("a standby 20 blocks behind went on to %s with %d sessions", st, r.sessions())
	}
	ahead.Store(5) // within MaxLag
	r.waitState(Voting)
	ahead.Store(6)
	r.waitState(Syncing)
	if !strings.Contains(r.sup.Snapshot().Reason, "blocks behind the best height") {
		t.Fatalf("left the election for %q", r.sup.Snapshot().Reason)
	}
	if r.j.index("start:validator") >= 0 {
		t.Fatalf("a lagging standby was promoted:\n%s", strings.Join(r.j.list(), "\n"))
	}
}

// TestTakeDelay: a standby waits takeDelayPerBlock for each block its node
// is below the best height, nothing at the best height or without one.
func TestTakeDelay(t *testing.T) {
	var best atomic.Int64
	r := newRig(t, func(c *Config) { c.BestHeight = best.Load })
	r.sup.snap.update(func(sn *Snapshot) { sn.Node.Height = 100 })
	for _, tc := range []struct {
		best int64
		want time.Duration
	}{{0, 0}, {90, 0}, {100, 0}, {103, 3 * takeDelayPerBlock}} {
		best.Store(tc.best)
		if got := r.sup.TakeDelay(); got != tc.want {
			t.Errorf("best %d: TakeDelay %s, want %s", tc.best, got, tc.want)
		}
	}
}

// TestTakeDelayWithoutABlock: a standby whose node has no block yet is the
// least fresh of all when a replica reports a height.
func TestTakeDelayWithoutABlock(t *testing.T) {
	var best atomic.Int64
	r := newRig(t, func(c *Config) { c.BestHeight = best.Load })
	if got := r.sup.TakeDelay(); got != 0 {
		t.Fatalf("nothing known anywhere: TakeDelay %s, want 0", got)
	}
	best.Store(5)
	if got := r.sup.TakeDelay(); got != 100*takeDelayPerBlock {
		t.Fatalf("no block, best 5: TakeDelay %s, want %s", got, 100*takeDelayPerBlock)
	}
}
