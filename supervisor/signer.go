package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// In signer mode (Config.Signer set) the node always runs in the voter
// role and is never restarted on a role change: leading is granting the
// Signer, and every release revokes it first (S3′, in release).

// promoteSigner grants signing under the held lock.
func (s *Supervisor) promoteSigner(ctx context.Context) (State, string) {
	s.log.Info().Str("session_deadline", time.Until(s.sess.Deadline()).Round(time.Millisecond).String()).Msg("lock acquired")
	gctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	err := s.cfg.Signer.Grant(gctx, s.sess)
	cancel()
	switch {
	case errors.Is(err, ErrFatal):
		s.fatal = err
		s.release(false)
		return Startup, err.Error()
	case err != nil:
		s.release(false)
		return Registering, fmt.Sprintf("signing not granted: %v; lock released", err)
	}
	s.cfg.Metrics.failover()
	return Validating, "lock acquired; signing granted, node not restarted"
}

// validatingSigner watches the lease, the signer, the node and its
// progress while this replica signs.
func (s *Supervisor) validatingSigner(ctx context.Context) (State, string) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	lastHeight, progress := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return Shutdown, "signal"
		case <-s.sess.Done():
			reason := fmt.Sprintf("lease lost: %v", s.sess.Err())
			s.release(false)
			return Syncing, reason
		case <-s.cfg.Signer.Revoked():
			s.release(false)
			return Syncing, "a fence failed: signing stopped, lock released"
		case <-s.nodeDone():
			s.release(false)
			s.nodeExited()
			s.fails++
			return Startup, "node exited; lock released"
		case <-poll.C:
			st, err := s.status(ctx)
			if err == nil && st.Height > lastHeight && !st.CatchingUp {
				lastHeight, progress = st.Height, time.Now()
			}
			if stalled := time.Since(progress); stalled > s.cfg.MaxStall {
				reason := fmt.Sprintf("no progress for %s at height %d (catching up: %v)", stalled.Round(time.Millisecond), lastHeight, st.CatchingUp)
				s.log.Warn().Str("reason", reason).Dur("holdoff", s.cfg.StepDownHoldoff).Msg("stepping down")
				s.release(false)
				s.holdoff = time.Now().Add(s.cfg.StepDownHoldoff)
				return Syncing, "stepped down: " + reason
			}
		}
	}
}

// nodeDone is the running node's Done channel; nil, which never fires in
// a select, for a node valguard does not run (Config.Unsupervised).
func (s *Supervisor) nodeDone() <-chan struct{} {
	if s.proc == nil {
		return nil
	}
	return s.proc.Done()
}
