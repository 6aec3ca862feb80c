package operator

import (
	"context"
	"time"
)

// Clock is the time the protocol reads and waits on. Tests use a fake
// one, so that every wait and timeout passes at once.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx ends: then it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
	// AfterFunc calls f after d unless stop is called first.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// WallClock is the real clock (monotonic for durations).
var WallClock Clock = wallClock{}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (wallClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// withTimeout is ctx ended d from now on clk; context.Cause of it is then
// context.DeadlineExceeded, as for context.WithTimeout (which the wall
// clock uses).
func withTimeout(ctx context.Context, clk Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := clk.(wallClock); ok {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := clk.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}
