package operator

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/valguard/valguard/roster"
)

// Validator is one validator as the operator commands work with it: its
// store, the clock, where messages go, and how the chain is read.
type Validator struct {
	// ID is the validator's lock id.
	ID    string
	Store Store
	// Clock is what the protocol reads the time from and waits on (its
	// polls and timeouts); nil: the real clock (clockwork.NewRealClock).
	Clock clockwork.Clock
	// Out takes what the commands print; Err the warnings that go to
	// standard error. Both default to io.Discard.
	Out, Err io.Writer
	// Chain opens a chain watch over rpcs for the validator's address;
	// nil: CometBFT RPC (NewChainWatch).
	Chain func(rpcs []string, address string) Chain
	// Hint adds the likely fix to a Consul error; nil: none.
	Hint func(error) error
	// Host names this host in the requests and drain marks it writes.
	Host string
	// CallTimeout is the Consul call timeout: the request is removed on
	// the way out within twice it.
	CallTimeout time.Duration
}

func (v *Validator) clock() clockwork.Clock {
	if v.Clock == nil {
		return clockwork.NewRealClock()
	}
	return v.Clock
}

func (v *Validator) out() io.Writer {
	if v.Out == nil {
		return io.Discard
	}
	return v.Out
}

func (v *Validator) errOut() io.Writer {
	if v.Err == nil {
		return io.Discard
	}
	return v.Err
}

func (v *Validator) hint(err error) error {
	if v.Hint == nil || err == nil {
		return err
	}
	return v.Hint(err)
}

func (v *Validator) chain(rpcs []string) Chain {
	if v.Chain == nil {
		return NewChainWatch(rpcs, v.ID)
	}
	return v.Chain(rpcs, v.ID)
}

func (v *Validator) since(t time.Time) time.Duration { return v.clock().Now().Sub(t) }

// Look is one consistent look at the roster: the lock holder, every
// replica's report, the drain marks and the hand-over request.
func (v *Validator) Look(ctx context.Context) (*View, error) {
	w := &View{At: v.clock().Now()}
	var err error
	if w.Leader, err = v.Store.Leader(ctx); err != nil {
		return nil, v.hint(fmt.Errorf("read %s: %w", v.Store.LockKey(), err))
	}
	if w.Entries, err = v.Store.Reports(ctx); err != nil {
		return nil, v.hint(err)
	}
	if w.Drains, err = v.Store.Drains(ctx); err != nil {
		return nil, v.hint(err)
	}
	if w.Handover, w.hoIndex, err = v.Store.Handover(ctx); err != nil {
		return nil, v.hint(err)
	}
	w.findBest()
	return w, nil
}

// CheckWindow refuses a hand-over window that is not positive or is
// longer than the replicas accept without warning of clock skew.
func CheckWindow(w time.Duration) error {
	if w <= 0 || w > roster.MaxWindowAhead {
		return fmt.Errorf("--window %s: must be above 0 and at most %s", w, roster.MaxWindowAhead)
	}
	return nil
}
