package operator

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only by Sleep (and Advance): a
// Sleep moves it at once and runs the timers that fall due, so that the
// protocol's waits and timeouts pass without waiting.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	// at are actions run once time reaches them (a replica freezing,
	// an operator interrupting).
	at []fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool
}

var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// At runs f once the clock reaches d after the epoch.
func (c *fakeClock) At(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = append(c.at, fakeTimer{at: epoch.Add(d), f: f})
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return ctx.Err()
}

// Advance moves the clock by d and runs what fell due, in time order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	for i := range c.at {
		if t := &c.at[i]; !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t.done })
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

func TestWithTimeout(t *testing.T) {
	clk := newFakeClock()
	ctx, cancel := withTimeout(t.Context(), clk, time.Second)
	defer cancel()
	if clk.Sleep(ctx, 900*time.Millisecond) != nil {
		t.Fatal("ended before its timeout")
	}
	if clk.Sleep(ctx, 100*time.Millisecond) == nil || context.Cause(ctx) != context.DeadlineExceeded {
		t.Fatalf("not ended at its timeout: %v", context.Cause(ctx))
	}
	ctx, cancel = withTimeout(t.Context(), clk, time.Second)
	cancel()
	if context.Cause(ctx) != context.Canceled {
		t.Fatalf("cancelled: cause %v", context.Cause(ctx))
	}
	ctx, cancel = withTimeout(t.Context(), WallClock, time.Millisecond)
	defer cancel()
	<-ctx.Done()
	if context.Cause(ctx) != context.DeadlineExceeded {
		t.Fatalf("wall clock: cause %v", context.Cause(ctx))
	}
}
