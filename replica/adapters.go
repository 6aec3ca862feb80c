package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/signer"
	"github.com/valguard/valguard/supervisor"
)

// elector adapts *election.Election to supervisor.Elector.
type elector struct{ e *election.Election }

func (e elector) NewSession(ctx context.Context) (supervisor.Session, error) {
	s, err := e.e.NewSession(ctx)
	if err != nil {
		return nil, err
	}
	return session{s}, nil
}

// session adapts *election.Session to supervisor.Session: a lock that
// names another validator's key ends the run rather than being retried.
type session struct{ *election.Session }

func (s session) Acquire(ctx context.Context) error {
	err := s.Session.Acquire(ctx)
	if errors.Is(err, election.ErrForeignLock) {
		return fmt.Errorf("%w: %w: check that every replica uses the same --validator-key, and what else writes to valguard/ in Consul", supervisor.ErrFatal, err)
	}
	return err
}

func (e elector) Watermark(ctx context.Context) ([]byte, error) { return e.e.Watermark(ctx) }

// seam adapts the signer to supervisor.Signer. With el set (--signers
// any) a grant writes through a RecordFence of el, bound to the lock key
// as it reads now; otherwise through the held session's fence.
type seam struct {
	s  *signer.Signer
	el *election.Election
	b  *grantBackoff // with el: spaces failed grants
}

func (g seam) Grant(ctx context.Context, sess supervisor.Session) (err error) {
	if g.b != nil {
		defer func() { g.b.done(err) }()
	}
	f, err := g.fencer(ctx, sess)
	if err != nil {
		return err
	}
	err = g.s.Grant(ctx, f)
	if errors.Is(err, signer.ErrBelowFloor) || errors.Is(err, signer.ErrChainID) {
		return fmt.Errorf("%w: %w", supervisor.ErrFatal, err)
	}
	return err
}

// fencer is what a grant under sess writes with.
func (g seam) fencer(ctx context.Context, sess supervisor.Session) (signer.Fencer, error) {
	if g.el != nil {
		rf, err := g.el.NewRecordFence(ctx)
		if err != nil {
			return nil, fmt.Errorf("signing not granted: %w", err)
		}
		return recordFencer{rf}, nil
	}
	es, ok := sess.(session)
	if !ok {
		return nil, fmt.Errorf("%w: session of type %T cannot fence", supervisor.ErrFatal, sess)
	}
	return fencer{es.Session}, nil
}

func (g seam) Revoke()                  { g.s.Revoke() }
func (g seam) Revoked() <-chan struct{} { return g.s.Revoked() }
func (g seam) LastRequest() time.Time   { return g.s.LastRequest() }

// SignedHeight is the height of the last signature fenced or seen: the
// supervisor's stall rule counts a leader whose node signed at the height
// it is stuck on as taking part.
func (g seam) SignedHeight() int64 { return g.s.Watermark().Height }

// fencer adapts *election.Session to signer.Fencer: election's unknown
// outcome is the signer's, which it resolves with a read.
type fencer struct{ s *election.Session }

func (f fencer) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	n, err := f.s.Fence(ctx, value, index)
	return n, fenceErr(err)
}

// fenceErr is an election write's error as the signer classifies it: an
// unknown outcome (resolved with a read) and a moved watermark (read back).
func fenceErr(err error) error {
	switch {
	case errors.Is(err, election.ErrFenceUnknown):
		return fmt.Errorf("%w: %w", signer.ErrOutcomeUnknown, err)
	case errors.Is(err, election.ErrWatermarkMoved):
		return fmt.Errorf("%w: %w", signer.ErrMoved, err)
	}
	return err
}

// store adapts *election.Election to signer.Store.
type store struct{ e *election.Election }

func (s store) Read(ctx context.Context) ([]byte, uint64, error) { return s.e.ReadWatermark(ctx) }
func (s store) Watch(ctx context.Context, index uint64) ([]byte, uint64, error) {
	return s.e.WatchWatermark(ctx, index)
}
