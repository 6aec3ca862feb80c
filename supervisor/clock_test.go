package supervisor

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clockRig is a rig on a fake clock, with the production defaults for
// every duration the state machine decides by (PollInterval 1 s, MaxStall
// 30 s, RecoveryAfter 20 s, StepDownHoldoff 60 s), so its timing paths
// are tested at their real values in milliseconds.
//
// Gated, every status read of the state machine (one per poll) waits as it
// begins until the test lets it go on: at the start of the status read of
// poll k, everything the state machine decided at polls 1..k-1 is done,
// and the clock reads exactly the time of poll k.
type clockRig struct {
	*rig
	fc     *clockwork.FakeClock
	gated  atomic.Bool
	polled chan struct{} // a gated status read has begun
	resume chan struct{} // lets it go on
	done   chan struct{} // closed when the test ends: nothing waits any more
	held   bool          // a gated status read waits for resume
	// selects counts the state machine's loops beginning to wait: they
	// read their ticker's or timer's channel as they do (selectClock).
	selects atomic.Int64
}

// selectClock is a fake clock whose tickers and timers count, in selects,
// every read of their channel: the loops of the state machine read it as
// they begin to wait, so a count that grew says the loop is done with what
// it was doing.
type selectClock struct {
	*clockwork.FakeClock
	selects *atomic.Int64
}

func (c selectClock) NewTicker(d time.Duration) clockwork.Ticker {
	return countedTicker{c.FakeClock.NewTicker(d), c.selects}
}

func (c selectClock) NewTimer(d time.Duration) clockwork.Timer {
	return countedTimer{c.FakeClock.NewTimer(d), c.selects}
}

type countedTimer struct {
	clockwork.Timer
	selects *atomic.Int64
}

func (t countedTimer) Chan() <-chan time.Time {
	t.selects.Add(1)
	return t.Timer.Chan()
}

type countedTicker struct {
	clockwork.Ticker
	selects *atomic.Int64
}

func (t countedTicker) Chan() <-chan time.Time {
	t.selects.Add(1)
	return t.Ticker.Chan()
}

func newClockRig(t *testing.T, tune func(*Config)) *clockRig {
	t.Helper()
	fc := clockwork.NewFakeClock()
	c := &clockRig{fc: fc, polled: make(chan struct{}), resume: make(chan struct{}), done: make(chan struct{})}
	c.rig = newRig(t, func(cfg *Config) {
		cfg.Clock = selectClock{fc, &c.selects}
		cfg.PollInterval, cfg.PublishInterval = DefaultPollInterval, DefaultPollInterval
		cfg.MaxStall, cfg.StepDownHoldoff, cfg.RecoveryAfter = DefaultMaxStall, DefaultStepDownHoldoff, 0
		cfg.RestartBackoff, cfg.MaxBackoff = DefaultRestartBackoff, DefaultMaxBackoff
		cfg.StatusTimeout, cfg.CallTimeout = DefaultStatusTimeout, DefaultCallTimeout
		if tune != nil {
			tune(cfg)
		}
	})
	c.node.set(func(n *fakeNode) { n.onStatus = c.gateCall })
	return c
}

// gateCall is called as a status read begins: gated, it waits for the
// test (poll, let).
func (c *clockRig) gateCall() {
	if !c.gated.Load() {
		return
	}
	select {
	case c.polled <- struct{}{}:
	case <-c.done:
		return
	}
	select {
	case <-c.resume:
	case <-c.done:
	}
}

// run runs the supervisor; when the test ends, no status read waits.
func (c *clockRig) run() {
	stop := make(chan struct{})
	c.t.Cleanup(func() { close(stop) }) // after the rig's cleanup
	c.rig.run()
	// Before the rig's cleanup cancels Run: nothing waits for the test any
	// more, and the clock moves on by itself (a signer-mode shutdown waits
	// SignerGossipGrace on it).
	c.t.Cleanup(func() {
		close(c.done)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
					c.fc.Advance(time.Second)
				}
			}
		}()
	})
}

// drive advances the clock a poll interval at a time, ungated, until cond
// holds (within 5 s of real time). It advances again only once the state
// machine waits again, so that the clock moves as fast as the state
// machine takes its ticks and no faster: a slow start of a node does not
// let the clock run past a deadline the test is about to check.
func (c *clockRig) drive(what string, cond func() bool) {
	c.t.Helper()
	c.let()
	c.gated.Store(false)
	end := time.Now().Add(5 * time.Second)
	for !cond() {
		n := c.selects.Load()
		c.fc.Advance(c.sup.cfg.PollInterval)
		for c.selects.Load() <= n && !cond() {
			if time.Now().After(end) {
				c.t.Fatalf("not within 5 s (clock driven): %s; events:\n%s", what, strings.Join(c.j.list(), "\n"))
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// let lets a waiting status read go on and returns once the state
// machine has acted on it and waits again (on whichever state's ticker):
// it read the clock at the time of the poll.
func (c *clockRig) let() {
	c.t.Helper()
	if !c.held {
		return
	}
	n := c.selects.Load()
	c.resume <- struct{}{}
	c.held = false
	for end := time.Now().Add(5 * time.Second); c.selects.Load() <= n; time.Sleep(20 * time.Microsecond) {
		if time.Now().After(end) {
			c.t.Fatalf("the state machine did not wait again within 5 s (state %s)", c.sup.State())
		}
	}
}

// gate makes status reads wait, once the state machine waits on timers
// tickers and timers (those of the state it is in: observe the state
// first).
func (c *clockRig) gate(timers int) {
	c.t.Helper()
	c.gated.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.fc.BlockUntilContext(ctx, timers); err != nil {
		c.t.Fatalf("the state machine does not wait on %d timers: %v", timers, err)
	}
}

// await returns once a gated status read has begun (not driven by the
// clock: the first of a loop).
func (c *clockRig) await() {
	c.t.Helper()
	select {
	case <-c.polled:
		c.held = true
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no status read within 5 s (state %s); events:\n%s", c.sup.State(), strings.Join(c.j.list(), "\n"))
	}
}

// poll lets the waiting status read go on, advances the clock one poll
// interval and returns once the next status read has begun (gated): the
// decisions of every earlier poll are done. It returns the time of the
// poll.
func (c *clockRig) poll() time.Time {
	c.t.Helper()
	c.let()
	c.fc.Advance(c.sup.cfg.PollInterval)
	select {
	case <-c.polled:
		c.held = true
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no status read within 5 s of a poll (state %s); events:\n%s", c.sup.State(), strings.Join(c.j.list(), "\n"))
	}
	return c.fc.Now()
}

// validating brings the rig to Validating, its tickers running and its
// status reads gated, at no poll yet.
func (c *clockRig) validating(tickers int) {
	c.t.Helper()
	c.run()
	c.drive("Voting", func() bool { return c.sup.State() == Voting })
	c.el.grant <- struct{}{}
	eventually(c.t, 5*time.Second, "Validating", func() bool { return c.sup.State() == Validating })
	c.gate(tickers)
}

// released reports whether the journal shows a release.
func (c *clockRig) released() bool { return c.j.index("release") >= 0 }

// The stall rule and the step-down hold-off at their defaults: a leader
// whose node's height stays put steps down at the first poll more than
// MaxStall (30 s) after the last poll that saw a new height, not one poll
// earlier, and stays out of the election until StepDownHoldoff (60 s) has
// passed since, to the poll.
func TestStallAndHoldoffOnTheClock(t *testing.T) {
	c := newClockRig(t, nil)
	c.validating(2) // poll and publish
	c.node.set(func(n *fakeNode) { n.still = true })
	first := c.poll() // a height above none: the last progress
	for {
		at := c.poll()
		if c.released() || c.sup.State() != Validating {
			t.Fatalf("stepped down by the poll before %s, %s after the last progress (MaxStall %s):\n%s",
				at.Format(time.TimeOnly), at.Sub(first), c.sup.cfg.MaxStall, strings.Join(c.j.list(), "\n"))
		}
		if at.Sub(first) > c.sup.cfg.MaxStall {
			break // this poll's decision steps down
		}
	}
	steppedAt := c.fc.Now()
	c.let()
	eventually(t, 5*time.Second, "the step down", func() bool { return c.j.index("release final=") >= 0 })
	eventually(t, 5*time.Second, "Startup", func() bool { return c.sup.State() == Startup })
	if want := fmt.Sprintf("no progress for %s", steppedAt.Sub(first)); !strings.Contains(c.sup.Snapshot().Reason, want) {
		t.Fatalf("stepped down for %q, want %q", c.sup.Snapshot().Reason, want)
	}

	// The hold-off: synced at once, in the election only 60 s after.
	c.node.set(func(n *fakeNode) { n.still = false })
	c.drive("Syncing", func() bool { return c.sup.State() == Syncing })
	c.gate(1)
	holdoff := steppedAt.Add(c.sup.cfg.StepDownHoldoff)
	prev := c.poll()
	for ; prev.Before(holdoff); prev = c.poll() {
		if c.sessions() != 1 {
			t.Fatalf("took part %s after stepping down, before the hold-off of %s", prev.Sub(steppedAt), c.sup.cfg.StepDownHoldoff)
		}
	}
	if !prev.Equal(holdoff) {
		t.Fatalf("polls at %s, the hold-off ends at %s: the test is off its grid", prev, holdoff)
	}
	c.let() // the poll at the end of the hold-off
	eventually(t, 5*time.Second, "a session once the hold-off is over", func() bool { return c.sessions() == 2 })
}

// The chain-wide stall at its default MaxStall: a key-file leader whose
// node still signs and that no replica is ahead of stays through ten
// times MaxStall, and says so; once its node stops signing it steps down
// within MaxStall and a poll.
func TestChainWideStallOnTheClock(t *testing.T) {
	var best atomic.Int64
	c := newClockRig(t, func(cfg *Config) { cfg.BestHeight = best.Load })
	c.validating(2)
	c.node.set(func(n *fakeNode) { n.still = true })
	var h int64
	c.node.set(func(n *fakeNode) { h = n.status.Height; n.signed = h })
	best.Store(h)
	first := c.poll()
	for round := 0; c.fc.Since(first) < 10*c.sup.cfg.MaxStall; round++ {
		// A new round signed at each poll: the sign state changes.
		c.node.set(func(n *fakeNode) { n.watermark = fmt.Appendf(nil, "h%dr%d", h+1, round) })
		c.poll()
		if c.released() {
			t.Fatalf("stepped down %s into a stall of the whole chain:\n%s", c.fc.Since(first), strings.Join(c.j.list(), "\n"))
		}
	}
	if got := testutil.ToFloat64(c.m.stalled); got != 1 {
		t.Fatalf("valguard_chain_stalled = %v, want 1", got)
	}
	// The node stops signing: its last sign-state change ages past MaxStall.
	quiet := c.fc.Now()
	for {
		at := c.poll()
		if c.released() {
			break
		}
		if at.Sub(quiet) > c.sup.cfg.MaxStall+2*c.sup.cfg.PollInterval {
			t.Fatalf("still leading %s after its node stopped signing (MaxStall %s)", at.Sub(quiet), c.sup.cfg.MaxStall)
		}
	}
	if at := c.fc.Now(); at.Sub(quiet) <= c.sup.cfg.MaxStall-c.sup.cfg.PollInterval {
		t.Fatalf("stepped down %s after its node stopped signing, before MaxStall", at.Sub(quiet))
	}
}

// gatedFence is a fencedNode whose head comparisons are the clockRig's
// gated status reads: one per poll of the wait for the published height.
type gatedFence struct {
	*fencedNode
	c *clockRig
}

func (f gatedFence) AtWatermark(ctx context.Context, wm []byte) (bool, error) {
	f.c.gateCall()
	return f.fencedNode.AtWatermark(ctx, wm)
}

// The wait for the published height (HeadFence) at its default bound,
// MaxStall: a new leader whose node stays below the height the previous
// leader published gives the lock back at the first comparison more than
// MaxStall after it took the lock, not one before, never having prepared
// the validator role.
func TestPromotionGivesUpBelowThePublishedHeightOnTheClock(t *testing.T) {
	c := newClockRig(t, nil)
	c.node.set(func(n *fakeNode) { n.onStatus = nil }) // only the comparisons are gated
	f := &fencedNode{fakeNode: c.node}
	f.head.Store(10)
	c.sup.cfg.Node = gatedFence{f, c}
	c.el.watermark = []byte("50")
	c.run()
	c.drive("Voting", func() bool { return c.sup.State() == Voting })
	first := c.el.current()
	c.gated.Store(true)
	taken := c.fc.Now()
	c.el.grant <- struct{}{}
	c.await() // the comparison as the lock is taken
	for {
		at := c.poll()
		if first.isClosed() {
			t.Fatalf("gave the lock back by the comparison before %s (MaxStall %s)", at.Sub(taken), c.sup.cfg.MaxStall)
		}
		if at.Sub(taken) > c.sup.cfg.MaxStall {
			break // this comparison gives up
		}
	}
	c.let()
	eventually(t, 5*time.Second, "lock given back", first.isClosed)
	if n := c.node.starts(RoleValidator); n != 0 {
		t.Fatalf("validator started below the published height (%d)", n)
	}
	if i := c.j.index("prepare:validator"); i >= 0 {
		t.Fatalf("validator role prepared below the published height:\n%s", strings.Join(c.j.list(), "\n"))
	}
	c.before("fence:at=false", "release final= reaped=true")
}
