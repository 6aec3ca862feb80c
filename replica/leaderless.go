package replica

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/roster"
	"github.com/valguard/valguard/signer"
	"github.com/valguard/valguard/supervisor"
)

// leaderlessElector is the supervisor's Elector under --signers any: no
// lock is taken, so a "session" is local and "acquired" at once; the
// supervisor's states still say whether this replica signs (Validating:
// granted) and its operator holds and stall rules still apply. The sign
// record, written through election.RecordFence, is the only arbiter
// (S11).
type leaderlessElector struct {
	e *election.Election
	b *grantBackoff
}

func (l leaderlessElector) NewSession(context.Context) (supervisor.Session, error) {
	return &leaderlessSession{done: make(chan struct{}), b: l.b}, nil
}

// grantBackoff spaces the leaderless grants after failed ones: a grant
// that fails (a lock of another policy held, the unclean-takeover wait,
// the chain's height unknown) sends the supervisor back to Registering,
// and the next "acquire", which takes no lock, would otherwise grant again
// at once, in a loop of Consul reads and log lines.
type grantBackoff struct {
	mu    sync.Mutex
	fails int
}

// maxGrantBackoff bounds the wait between two failed grants.
const maxGrantBackoff = 30 * time.Second

func (b *grantBackoff) done(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.fails++
	} else {
		b.fails = 0
	}
}

// wait is the pause before the next grant: 0 after a success, then 500 ms
// doubled per further failure, at most maxGrantBackoff.
func (b *grantBackoff) wait() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails == 0 {
		return 0
	}
	d := 500 * time.Millisecond
	for i := 1; i < b.fails && d < maxGrantBackoff; i++ {
		d *= 2
	}
	return min(d, maxGrantBackoff)
}

func (l leaderlessElector) Watermark(ctx context.Context) ([]byte, error) { return l.e.Watermark(ctx) }

// leaderlessSession is a session without a lease or a lock: Acquire
// returns once the grant back-off has passed.
type leaderlessSession struct {
	once sync.Once
	done chan struct{}
	b    *grantBackoff
}

func (s *leaderlessSession) Acquire(ctx context.Context) error {
	if d := s.b.wait(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return ctx.Err()
}
func (s *leaderlessSession) Done() <-chan struct{} { return s.done }
func (s *leaderlessSession) Err() error            { return election.ErrClosed }
func (s *leaderlessSession) Deadline() time.Time   { return time.Time{} }
func (s *leaderlessSession) Publish(context.Context, []byte) error {
	return nil
}
func (s *leaderlessSession) Close(context.Context, []byte) error {
	s.once.Do(func() { close(s.done) })
	return nil
}
func (s *leaderlessSession) Abandon() { s.once.Do(func() { close(s.done) }) }

// recordFencer adapts *election.RecordFence to signer.Fencer.
type recordFencer struct{ f *election.RecordFence }

func (r recordFencer) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	n, err := r.f.CheckAndSet(ctx, value, index)
	return n, fenceErr(err)
}

// policyOf is the signer policy a roster report names: a signer-mode
// report without one is of a version before --signers (the leader
// policy); a key-file report has none.
func policyOf(r roster.Report) string {
	switch {
	case r.SignMode != "signer":
		return ""
	case r.Signers == "":
		return signer.PolicyLeader
	}
	return r.Signers
}

// checkPolicies refuses to start a replica whose policy differs from one
// of a live replica of the same validator: one validator runs one policy
// (a leaderless replica beside a lock holder would stop at its first
// write anyway, election.RecordFence, and a lock holder beside leaderless
// replicas would stop theirs). mode is "signer" or "restart", policy the
// signer policy ("" in restart mode). A roster that cannot be read decides
// nothing here: the sign record's lock check still holds.
func checkPolicies(ctx context.Context, ro *roster.Roster, self, mode, policy string) error {
	entries, err := ro.Reports(ctx)
	if err != nil {
		return nil
	}
	mine := describePolicy(mode, policy)
	for _, e := range entries {
		if !e.Alive || e.Replica == self || e.Unreadable != "" {
			continue
		}
		theirs := describePolicy(e.SignMode, policyOf(e.Report))
		if (policy == signer.PolicyAny) != (policyOf(e.Report) == signer.PolicyAny) {
			return fmt.Errorf("replica %s of this validator runs %s, and this one would run %s: one validator runs one policy; "+
				"stop every replica of the other policy first (valguard status lists them), or start this one with the same flags", e.Replica, theirs, mine)
		}
	}
	return nil
}

func describePolicy(mode, policy string) string {
	if mode != "signer" {
		return "the key-file mode (--sign-mode " + mode + ")"
	}
	return "--sign-mode signer --signers " + policy
}
