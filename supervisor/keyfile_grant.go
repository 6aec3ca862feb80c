package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// grant turns the voter into the validator once the lock is held. It
// reads the watermark, then either promotes the running node in place
// (a HotPromoter that says so) or stops the voter node, prepares the
// validator role, which links the key and raises the sign state (S8), and
// starts the validator node. The fence covers the node from here until
// release.
func (m *keyFile) grant(ctx context.Context) (State, string) {
	s := m.s
	s.log.Info().Str("session_deadline", s.clock.Until(s.sess.Deadline()).Round(time.Millisecond).String()).Msg("lock acquired")
	// The fence lives until release, so it also covers the voter being
	// stopped or promoted here and a validator being stopped on shutdown or
	// step-down.
	f := s.startFence(s.sess)
	m.fence = f
	s.setLeading(s.sess)
	if ok, _ := f.guard(func() (*nodeProc, error) { return s.proc, nil }); !ok {
		return s.failPromotion(fmt.Sprintf("lease lost on acquisition: %v", s.sess.Err()))
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	wm, err := s.cfg.Elector.Watermark(rctx)
	cancel()
	if err != nil {
		// The voter holds no key: it keeps running; only the lock goes.
		s.release(false)
		return Registering, fmt.Sprintf("could not read the watermark: %v; lock released", err)
	}
	if hf, ok := s.cfg.Node.(HeadFence); ok {
		if st, reason, ok := m.awaitHead(ctx, hf, wm); !ok {
			return st, reason
		}
	}
	if hp, ok := s.cfg.Node.(HotPromoter); ok {
		hctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
		hot, err := hp.HotPromotion(hctx)
		cancel()
		switch {
		case err != nil:
			s.log.Warn().Err(err).Msg("cannot tell whether the node takes the key without a restart; restarting it")
		case hot:
			return m.promoteHot(ctx, f, hp, wm)
		}
	}
	return m.promoteRestart(ctx, f, wm)
}

// failPromotion undoes a promotion that did not complete: the node is
// stopped, then the lock released, which unlinks the validator key first
// (S2: the validator role may have been prepared).
func (s *Supervisor) failPromotion(reason string) (State, string) {
	if s.proc != nil {
		s.stopNode(reason)
	}
	s.release(true) // a validator that started may have signed (F1)
	return Startup, reason
}

// promoteRestart stops the voter, prepares the validator role and starts
// the validator node under the fence.
func (m *keyFile) promoteRestart(ctx context.Context, f *fence, wm []byte) (State, string) {
	s := m.s
	if !s.stopNode("promotion to validator") {
		// A voter holds no key: the lock can go; Startup waits for the reap.
		s.release(false)
		return Startup, "voter node not reaped before promotion"
	}
	if ctx.Err() != nil {
		return s.failPromotion("signal")
	}
	select {
	case <-s.sess.Done():
		return s.failPromotion(fmt.Sprintf("lease lost during promotion: %v", s.sess.Err()))
	default:
	}
	if err := s.cfg.Node.Prepare(ctx, RoleValidator, wm); err != nil {
		s.log.Error().Err(err).Msg("could not prepare the validator role")
		s.vfails++
		return s.failPromotion("validator role not prepared")
	}
	ok, err := f.guard(func() (*nodeProc, error) {
		if err := s.start(RoleValidator); err != nil {
			return nil, err
		}
		return s.proc, nil
	})
	switch {
	case err != nil:
		s.log.Error().Err(err).Msg("validator node did not start")
		s.vfails++
		return s.failPromotion("validator node start failed")
	case !ok:
		return s.failPromotion(fmt.Sprintf("lease lost during promotion: %v", s.sess.Err()))
	}
	s.cfg.Metrics.failover()
	return Validating, "lock acquired; validator node started"
}

// awaitHead waits, holding the lock, until the running voter node's head is
// at or above the published watermark (HeadFence), for at most MaxStall.
// If the node does not get there, the lease is lost, the node exits or ctx
// ends, the promotion is undone and ok is false.
func (m *keyFile) awaitHead(ctx context.Context, hf HeadFence, wm []byte) (st State, reason string, ok bool) {
	s := m.s
	start := s.clock.Now()
	tick := s.clock.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	logged := false
	for {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
		at, err := hf.AtWatermark(sctx, wm)
		cancel()
		switch {
		case err == nil && at:
			if logged {
				s.log.Info().Dur("waited", s.clock.Since(start)).Msg("node reached the published height")
			}
			return 0, "", true
		case errors.Is(err, ErrFatal):
			s.fatal = err
			st, reason = s.failPromotion(err.Error())
			return st, reason, false
		case err != nil:
			s.log.Warn().Err(err).Msg("could not compare the node's head with the published height")
		case !logged:
			s.log.Info().Str("watermark", string(wm)).Msg("node behind the height the previous leader published: waiting before signing")
			logged = true
		}
		if s.clock.Since(start) > s.cfg.MaxStall {
			st, reason = s.failPromotion(fmt.Sprintf("node still behind the published height %s after %s", wm, s.cfg.MaxStall))
			return st, reason, false
		}
		select {
		case <-ctx.Done():
			st, reason = s.failPromotion("signal")
			return st, reason, false
		case <-s.sess.Done():
			st, reason = s.failPromotion(fmt.Sprintf("lease lost while waiting for the published height: %v", s.sess.Err()))
			return st, reason, false
		case <-s.proc.Done():
			s.nodeExited()
			s.fails++
			st, reason = s.failPromotion("node exited while waiting for the published height")
			return st, reason, false
		case <-tick.Chan():
		}
	}
}

// errNodeGone: the node exited before it could be told to load the key.
var errNodeGone = errors.New("node process has exited")

// errLeaseLost: the lease was lost before the node was told to load the key.
var errLeaseLost = errors.New("lease lost before the key was loaded")

// promoteHot gives the validator key to the running voter node. From the
// first step on the node counts as a validator: whatever happens, it is
// killed and reaped before the lock is released (S3). The reload signal is
// sent under the fence's lock and only while the lease is held; the
// adapter's wait for confirmation ends as soon as the lease is lost or the
// node exits. A promotion the node does not confirm is a failed one: kill,
// release, back to Startup.
func (m *keyFile) promoteHot(ctx context.Context, f *fence, hp HotPromoter, wm []byte) (State, string) {
	s := m.s
	p := s.proc
	if p == nil || p.Reaped() {
		return s.failPromotion("node exited before promotion")
	}
	select {
	case <-s.sess.Done():
		return s.failPromotion(fmt.Sprintf("lease lost during promotion: %v", s.sess.Err()))
	default:
	}
	p.role = RoleValidator
	start := s.clock.Now()
	s.log.Info().Int("pid", p.PID()).Msg("hot promotion: loading the validator key into the running node")
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess := s.sess
	go func() {
		select {
		case <-sess.Done():
		case <-p.Done():
		case <-pctx.Done():
		}
		cancel()
	}()
	err := hp.PromoteRunning(pctx, wm, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.lost {
			return errLeaseLost
		}
		// To the direct child only, through its pidfd: never to a process
		// that reused its pid.
		if err := p.Signal(syscall.SIGHUP); err != nil {
			if errors.Is(err, os.ErrProcessDone) {
				return errNodeGone
			}
			return err
		}
		return nil
	})
	if err == nil {
		select {
		case <-s.sess.Done():
			err = fmt.Errorf("lease lost during promotion: %v", s.sess.Err())
		case <-p.Done():
			err = errNodeGone
		default:
		}
	}
	if err != nil {
		signal := ctx.Err() != nil
		ev := s.log.Error()
		if signal {
			ev = s.log.Info()
		}
		ev.Err(err).Int("pid", p.PID()).Dur("took", s.clock.Since(start)).Bool("signal", signal).Msg("hot promotion failed: killing the node")
		s.killNode("hot promotion failed")
		if !signal {
			s.vfails++
		}
		s.release(true) // the node may have signed with the key before it was killed (F1)
		return Startup, fmt.Sprintf("hot promotion failed: %v", err)
	}
	s.log.Info().Int("pid", p.PID()).Dur("took", s.clock.Since(start)).Msg("hot promotion confirmed by the node")
	s.cfg.Metrics.failover()
	return Validating, "lock acquired; validator key loaded without a restart"
}
