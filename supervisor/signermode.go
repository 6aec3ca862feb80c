package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// signerMode is the signer mode (Config.Signer set): valguard holds the
// key and signs for the node (package signer), which always runs in the
// voter role and is never restarted on a role change. Granting is
// Signer.Grant under the held lock; revoking is Signer.Revoke, which
// returns only once nothing can sign, at the start of every release (S3′).
type signerMode struct {
	s       *Supervisor
	signer  Signer
	granted bool // signing granted and not yet revoked
}

// revoke, at the start of every release, stops signing (S3′).
func (m *signerMode) revoke() {
	m.signer.Revoke()
	m.granted = false
}

// beforeClose: no key file to unlink.
func (m *signerMode) beforeClose() {}

// shutdown releases the lock first (signing revoked, S3′), so that a
// standby takes over without waiting for the node to stop, and lets the
// node run on for SignerGossipGrace so that its last votes reach its
// peers; then it stops the node.
func (m *signerMode) shutdown() {
	s := m.s
	if s.sess != nil {
		signed := m.granted
		s.release(false)
		if signed && s.proc != nil && !s.proc.Exited() {
			s.log.Info().Dur("grace", SignerGossipGrace).Msg("signing revoked and lock released; the node gossips its last votes before it stops")
			s.clock.Sleep(SignerGossipGrace)
		}
	}
	s.stopAndRelease()
}

// signedHeightFrom is the Signer: it made the signatures.
func (m *signerMode) signedHeightFrom() any { return m.signer }

// grant grants signing under the held lock.
func (m *signerMode) grant(ctx context.Context) (State, string) {
	s := m.s
	// A session without a lease (the leaderless policy) took no lock.
	leased := !s.sess.Deadline().IsZero()
	if leased {
		s.log.Info().Str("session_deadline", s.clock.Until(s.sess.Deadline()).Round(time.Millisecond).String()).Msg("lock acquired")
	}
	gctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	err := m.signer.Grant(gctx, s.sess)
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
	m.granted = true
	if !leased {
		return Validating, "signing granted (every replica signs), node not restarted"
	}
	s.cfg.Metrics.failover()
	return Validating, "lock acquired; signing granted, node not restarted"
}

// watch watches the lease, the signer, the node and its progress while
// this replica signs.
func (m *signerMode) watch(ctx context.Context) (State, string) {
	s := m.s
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
		case <-m.signer.Revoked():
			s.release(false)
			return Syncing, "a fence failed: signing stopped, lock released"
		case <-s.nodeDone():
			s.release(false)
			s.nodeExited()
			s.fails++
			return Startup, "node exited; lock released"
		case <-s.operatorChanged():
			if h := s.hold(); h != "" {
				return m.stepDown("operator: "+h, 0)
			}
		case <-poll.Chan():
			if h := s.hold(); h != "" {
				return m.stepDown("operator: "+h, 0)
			}
			st, err := s.status(ctx)
			if err == nil && st.Height > lastHeight && !st.CatchingUp {
				lastHeight, progress, recovered = st.Height, s.clock.Now(), false
				s.moved(&stall)
			}
			if !recovered && m.needsRecovery(progress) {
				recovered = true
				if st, reason, ok := m.recoveryRestart(lastHeight); !ok {
					return st, reason
				}
				progress = s.clock.Now() // the restarted node gets the time to catch up
				continue
			}
			if stalled := s.clock.Since(progress); stalled > s.cfg.MaxStall && !s.chainStalled(&stall, st, err, m.signer.LastRequest()) {
				return m.stepDown(fmt.Sprintf("no progress for %s at height %d (catching up: %v)", stalled.Round(time.Millisecond), lastHeight, st.CatchingUp), s.cfg.StepDownHoldoff)
			}
		}
	}
}

// stepDown releases the lock (signing revoked first, under the
// signing mutex: S3′), keeps the node running and holds this replica out
// of the election for holdoff.
func (m *signerMode) stepDown(reason string, holdoff time.Duration) (State, string) {
	s := m.s
	s.log.Warn().Str("reason", reason).Dur("holdoff", holdoff).Msg("stepping down")
	s.release(false)
	s.holdoff = s.clock.Now().Add(holdoff)
	return Syncing, "stepped down: " + reason
}

// needsRecovery reports a stall of the leader's node (no new height since
// progress) during which the node also asked for no signature, both for
// RecoveryAfter: it has dropped the step the chain waits for.
func (m *signerMode) needsRecovery(progress time.Time) bool {
	s := m.s
	if s.cfg.Unsupervised || s.clock.Since(progress) <= s.cfg.RecoveryAfter {
		return false
	}
	last := m.signer.LastRequest()
	return last.IsZero() || s.clock.Since(last) > s.cfg.RecoveryAfter
}

// recoveryRestart restarts the leader's node, which holds no key, keeping
// the lock and the grant: its WAL replay asks again for the step it
// dropped. ok is false when the node could not be restarted; the lock is
// then released.
func (m *signerMode) recoveryRestart(height int64) (State, string, bool) {
	s := m.s
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
