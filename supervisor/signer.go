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
	s.log.Info().Str("session_deadline", s.clock.Until(s.sess.Deadline()).Round(time.Millisecond).String()).Msg("lock acquired")
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
	s.granted = true
	s.cfg.Metrics.failover()
	return Validating, "lock acquired; signing granted, node not restarted"
}

// validatingSigner watches the lease, the signer, the node and its
// progress while this replica signs.
func (s *Supervisor) validatingSigner(ctx context.Context) (State, string) {
	poll := s.clock.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	lastHeight, progress := int64(0), s.clock.Now()
	recovered := false // the node was restarted in this stall
	var stall stallWatch
	defer s.moved(&stall)
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
		case <-s.operatorChanged():
			if h := s.hold(); h != "" {
				return s.stepDownSigner("operator: "+h, 0)
			}
		case <-poll.Chan():
			if h := s.hold(); h != "" {
				return s.stepDownSigner("operator: "+h, 0)
			}
			st, err := s.status(ctx)
			if err == nil && st.Height > lastHeight && !st.CatchingUp {
				lastHeight, progress, recovered = st.Height, s.clock.Now(), false
				s.moved(&stall)
			}
			if !recovered && s.needsRecovery(progress) {
				recovered = true
				if st, reason, ok := s.recoveryRestart(lastHeight); !ok {
					return st, reason
				}
				progress = s.clock.Now() // the restarted node gets the time to catch up
				continue
			}
			if stalled := s.clock.Since(progress); stalled > s.cfg.MaxStall && !s.chainStalled(&stall, st, err, s.cfg.Signer.LastRequest()) {
				return s.stepDownSigner(fmt.Sprintf("no progress for %s at height %d (catching up: %v)", stalled.Round(time.Millisecond), lastHeight, st.CatchingUp), s.cfg.StepDownHoldoff)
			}
		}
	}
}

// stepDownSigner releases the lock (signing revoked first, under the
// signing mutex: S3′), keeps the node running and holds this replica out
// of the election for holdoff.
func (s *Supervisor) stepDownSigner(reason string, holdoff time.Duration) (State, string) {
	s.log.Warn().Str("reason", reason).Dur("holdoff", holdoff).Msg("stepping down")
	s.release(false)
	s.holdoff = s.clock.Now().Add(holdoff)
	return Syncing, "stepped down: " + reason
}

// needsRecovery reports a stall of the leader's node (no new height since
// progress) during which the node also asked for no signature, both for
// RecoveryAfter: it has dropped the step the chain waits for.
func (s *Supervisor) needsRecovery(progress time.Time) bool {
	if s.cfg.Unsupervised || s.clock.Since(progress) <= s.cfg.RecoveryAfter {
		return false
	}
	last := s.cfg.Signer.LastRequest()
	return last.IsZero() || s.clock.Since(last) > s.cfg.RecoveryAfter
}

// recoveryRestart restarts the leader's node, which holds no key, keeping
// the lock and the grant: its WAL replay asks again for the step it
// dropped. ok is false when the node could not be restarted; the lock is
// then released.
func (s *Supervisor) recoveryRestart(height int64) (State, string, bool) {
	s.log.Warn().Int64("height", height).Dur("stalled_for", s.cfg.RecoveryAfter).
		Msg("chain stalled while the node asks for no signature (a dropped step): restarting the node, keeping the lock")
	s.cfg.Metrics.recovery()
	if !s.stopNode("recovery restart") {
		s.release(false)
		return Startup, "node not reaped for a recovery restart; lock released", false
	}
	// Prepared as for any start: a node that stopped may leave its signer
	// socket behind, and the next one cannot listen on it (CometBFT exits:
	// "bind: address already in use").
	pctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	err := s.cfg.Node.Prepare(pctx, RoleVoter, nil)
	cancel()
	if err != nil {
		s.release(false)
		return Startup, fmt.Sprintf("node home not prepared for a recovery restart: %v; lock released", err), false
	}
	if err := s.start(RoleVoter); err != nil {
		s.fails++
		s.release(false)
		return Startup, fmt.Sprintf("node did not start again after a recovery restart: %v; lock released", err), false
	}
	return 0, "", true
}
