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
// takes part once within MaxLag. On a fake clock (clock_test.go): out for
// a minute of polls.
func TestLaggingStandbyStaysOut(t *testing.T) {
	var ahead atomic.Int64 // how far the best replica is above this node
	ahead.Store(20)
	var c *clockRig
	c = newClockRig(t, func(cfg *Config) {
		cfg.MaxLag = 5
		cfg.BestHeight = func() int64 {
			var h int64
			c.node.set(func(n *fakeNode) { h = n.status.Height })
			return h + ahead.Load()
		}
	})
	c.run()
	c.drive("Syncing", func() bool { return c.sup.State() == Syncing })
	c.gate(1)
	for range 60 {
		c.poll()
		if st := c.sup.State(); st != Syncing || c.sessions() != 0 {
			t.Fatalf("a standby 20 blocks behind went on to %s with %d sessions", st, c.sessions())
		}
	}
	ahead.Store(5) // within MaxLag
	c.drive("Voting", func() bool { return c.sup.State() == Voting })
	ahead.Store(6)
	c.drive("Syncing", func() bool { return c.sup.State() == Syncing })
	if !strings.Contains(c.sup.Snapshot().Reason, "blocks behind the best height") {
		t.Fatalf("left the election for %q", c.sup.Snapshot().Reason)
	}
	if c.j.index("start:validator") >= 0 {
		t.Fatalf("a lagging standby was promoted:\n%s", strings.Join(c.j.list(), "\n"))
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
