package operator

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// stepClock is a clockwork.FakeClock that the protocol's waits move: each
// timer the protocol makes (sleep's) is handed to a driver, which runs the
// test's actions that fall due within the timer's duration (At), then
// advances the clock by that duration, firing the timer and every timeout
// due by then. Time moves in no other way, so each step of a test happens
// at the same time of the clock on every run, and the protocol, waiting,
// does not run while an action does.
type stepClock struct {
	*clockwork.FakeClock
	waits chan time.Duration
	done  chan struct{}
	mu    sync.Mutex
	at    []action
}

// action is f, to run once the clock reaches at.
type action struct {
	at time.Time
	f  func()
}

// newStepClock is a stepClock at epoch, driven until the test ends.
func newStepClock(t *testing.T) *stepClock {
	c := &stepClock{FakeClock: clockwork.NewFakeClockAt(epoch), waits: make(chan time.Duration), done: make(chan struct{})}
	t.Cleanup(func() { close(c.done) })
	go c.drive()
	return c
}

// NewTimer is the fake clock's timer, handed to the driver.
func (c *stepClock) NewTimer(d time.Duration) clockwork.Timer {
	t := c.FakeClock.NewTimer(d)
	select {
	case c.waits <- d:
	case <-c.done:
	}
	return t
}

func (c *stepClock) drive() {
	for {
		select {
		case d := <-c.waits:
			c.runDue(c.Now().Add(d))
			c.Advance(d)
		case <-c.done:
			return
		}
	}
}

// At runs f once the clock reaches d after the epoch: while the protocol
// waits on the timer that takes the clock there.
func (c *stepClock) At(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = append(c.at, action{epoch.Add(d), f})
}

// runDue runs, in time order, the actions due by end.
func (c *stepClock) runDue(end time.Time) {
	c.mu.Lock()
	var due, later []action
	for _, a := range c.at {
		if a.at.After(end) {
			later = append(later, a)
		} else {
			due = append(due, a)
		}
	}
	c.at = later
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, a := range due {
		a.f()
	}
}

// TestSleepAndTimeout: withTimeout ends its context at its time of a
// fake clock and not before, with the cause context.DeadlineExceeded; a
// sleep that reaches the deadline returns the context's error even when
// its own timer fires at the same time; a cancel is context.Canceled; on
// the real clock withTimeout is context.WithTimeout.
func TestSleepAndTimeout(t *testing.T) {
	clk := clockwork.NewFakeClock()
	ctx, cancel := withTimeout(t.Context(), clk, time.Second)
	defer cancel()
	if end, ok := ctx.Deadline(); !ok || !end.Equal(clk.Now().Add(time.Second)) {
		t.Fatalf("deadline %v %v, want a second from now on the clock", end, ok)
	}
	wait := func(d time.Duration) error {
		t.Helper()
		errc := make(chan error, 1)
		go func() { errc <- sleep(ctx, clk, d) }()
		bctx, bcancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer bcancel()
		if err := clk.BlockUntilContext(bctx, 2); err != nil { // the timeout and the sleep
			t.Fatalf("the sleep of %s does not wait on the clock: %v", d, err)
		}
		clk.Advance(d)
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("the sleep of %s did not end when the clock moved by it", d)
			return nil
		}
	}
	if err := wait(900 * time.Millisecond); err != nil {
		t.Fatalf("ended before its timeout: %v", err)
	}
	if err := wait(100 * time.Millisecond); err == nil || context.Cause(ctx) != context.DeadlineExceeded {
		t.Fatalf("not ended at its timeout: sleep %v, cause %v", err, context.Cause(ctx))
	}
	if err := sleep(ctx, clk, time.Second); err == nil {
		t.Fatal("a sleep on an ended context did not end at once")
	}

	ctx, cancel = withTimeout(t.Context(), clk, time.Second)
	cancel()
	if context.Cause(ctx) != context.Canceled {
		t.Fatalf("cancelled: cause %v", context.Cause(ctx))
	}
	ctx, cancel = withTimeout(t.Context(), clockwork.NewRealClock(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	if context.Cause(ctx) != context.DeadlineExceeded || ctx.Err() != context.DeadlineExceeded {
		t.Fatalf("real clock: cause %v, err %v", context.Cause(ctx), ctx.Err())
	}
}
