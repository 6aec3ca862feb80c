package operator

import (
	"context"
	"time"

	"github.com/jonboulle/clockwork"
)

// The protocol reads the time from, and waits on, a clockwork.Clock
// (Validator.Clock): the real one in production, a fake one in tests, so
// that every wait and timeout passes without waiting. Its waits are
// sleep's, its timeouts withTimeout's.

// sleep waits d on clk, or until ctx ends: then it returns ctx.Err().
// A wait that reaches ctx's deadline returns ctx's error, whichever of
// the two fired first: the wait and the end of a timeout that fall due
// at the same time of a fake clock give the same outcome on every run.
func sleep(ctx context.Context, clk clockwork.Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.Chan():
		if end, ok := ctx.Deadline(); ok && !clk.Now().Before(end) {
			<-ctx.Done() // at its deadline: ended, or ending as its timer runs
		}
	}
	return ctx.Err()
}

// withTimeout is ctx ended d from now on clk; context.Cause of it is then
// context.DeadlineExceeded, as for context.WithTimeout, which the real
// clock uses. On a clock moved by hand (a clockwork.FakeClock, or one
// that embeds it) the timeout is the clock's AfterFunc, and the context's
// Deadline is that time of the clock.
func withTimeout(ctx context.Context, clk clockwork.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, fake := clk.(interface{ Advance(time.Duration) }); !fake {
		return context.WithTimeout(ctx, d)
	}
	end := clk.Now().Add(d)
	cctx, cancel := context.WithCancelCause(ctx)
	t := clk.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return clockCtx{cctx, end}, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

// clockCtx is a context that ends at end on a fake clock: its Deadline
// is the earlier of end and its parent's.
type clockCtx struct {
	context.Context
	end time.Time
}

func (c clockCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.end) {
		return d, true
	}
	return c.end, true
}
