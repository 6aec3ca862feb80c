package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

// fence kills the node the moment the session is lost (S4). It runs in a
// goroutine of its own so that nothing the main loop does can delay it.
type fence struct {
	mu   sync.Mutex
	lost bool
	proc *process
	stop chan struct{}
}

func (s *Supervisor) startFence(sess Session) *fence {
	f := &fence{stop: make(chan struct{})}
	go func() {
		select {
		case <-sess.Done():
		case <-f.stop:
			return
		}
		f.mu.Lock()
		f.lost = true
		p := f.proc
		f.mu.Unlock()
		if p != nil && !p.Exited() {
			err := p.Kill(s.cfg.KillTimeout)
			ev := s.log.Error()
			if err != nil {
				ev = ev.AnErr("reap", err)
			}
			ev.Err(sess.Err()).Int("pid", p.PID()).Msg("lease lost: node killed")
		}
	}()
	return f
}

// guard makes p the process the fence kills; false if the lease is
// already lost (then the caller must not start a validator).
func (f *fence) guard(start func() (*process, error)) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost {
		return false, nil
	}
	p, err := start()
	if err == nil {
		f.proc = p
	}
	return true, err
}

func (f *fence) close() { close(f.stop) }

// promote turns the voter into the validator once the lock is held: read
// the watermark, stop the voter node, prepare the validator role (S8),
// start the validator node under the fence.
func (s *Supervisor) promote(ctx context.Context) (State, string) {
	s.log.Info().Str("session_deadline", time.Until(s.sess.Deadline()).Round(time.Millisecond).String()).Msg("lock acquired")
	// The fence lives until release, so it also covers the voter being
	// stopped here and a validator being stopped on shutdown or step-down.
	f := s.startFence(s.sess)
	s.fence = f
	f.guard(func() (*process, error) { return s.proc, nil })
	fail := func(reason string) (State, string) {
		if s.proc != nil {
			s.stopNode(reason)
		}
		s.release(false)
		return Startup, reason
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	wm, err := s.cfg.Elector.Watermark(rctx)
	cancel()
	if err != nil {
		return fail(fmt.Sprintf("could not read the watermark: %v", err))
	}
	s.stopNode("promotion to validator")
	if ctx.Err() != nil {
		return fail("signal")
	}
	select {
	case <-s.sess.Done():
		return fail(fmt.Sprintf("lease lost during promotion: %v", s.sess.Err()))
	default:
	}
	if err := s.cfg.Node.Prepare(ctx, RoleValidator, wm); err != nil {
		s.log.Error().Err(err).Msg("could not prepare the validator role")
		s.vfails++
		return fail("validator role not prepared")
	}
	ok, err := f.guard(func() (*process, error) {
		if err := s.start(RoleValidator); err != nil {
			return nil, err
		}
		return s.proc, nil
	})
	switch {
	case err != nil:
		s.log.Error().Err(err).Msg("validator node did not start")
		s.vfails++
		return fail("validator node start failed")
	case !ok:
		return fail(fmt.Sprintf("lease lost during promotion: %v", s.sess.Err()))
	}
	s.cfg.Metrics.failover()
	return Validating, "lock acquired; validator node started"
}

// validating watches the lease, the node and its progress.
func (s *Supervisor) validating(ctx context.Context) (State, string) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	publish := time.NewTicker(s.cfg.PublishInterval)
	defer publish.Stop()
	var published []byte
	lastHeight, progress := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return Shutdown, "signal"
		case <-s.sess.Done():
			// The fence is killing the node; wait for the reap it does.
			p := s.proc
			if err := p.Kill(s.cfg.KillTimeout); err != nil {
				s.log.Error().Err(err).Msg("node not reaped after the lease was lost")
			}
			s.proc = nil
			reason := fmt.Sprintf("lease lost: %v", s.sess.Err())
			s.release(false)
			return Startup, reason
		case <-s.proc.Done():
			s.nodeExited()
			s.vfails++
			s.release(true)
			return Startup, "validator node exited; lock released"
		case <-poll.C:
			st, err := s.status(ctx)
			if err == nil && st.Height > lastHeight && !st.CatchingUp {
				lastHeight, progress = st.Height, time.Now()
				s.vfails = 0
			}
			if stalled := time.Since(progress); stalled > s.cfg.MaxStall {
				return s.stepDown(fmt.Sprintf("no progress for %s at height %d (catching up: %v)", stalled.Round(time.Millisecond), lastHeight, st.CatchingUp))
			}
		case <-publish.C:
			wm, err := s.cfg.Node.Watermark()
			if err != nil || wm == nil || bytes.Equal(wm, published) {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
			if err := s.sess.Publish(pctx, wm); err != nil {
				s.log.Warn().Err(err).Msg("could not publish the watermark")
			} else {
				published = wm
			}
			cancel()
		}
	}
}

// stepDown stops a validator that is not keeping up, releases the lock so a
// healthy standby takes over, and holds this replica out of the election.
func (s *Supervisor) stepDown(reason string) (State, string) {
	s.log.Warn().Str("reason", reason).Dur("holdoff", s.cfg.StepDownHoldoff).Msg("stepping down")
	s.stopNode("step down")
	s.release(true)
	s.holdoff = time.Now().Add(s.cfg.StepDownHoldoff)
	return Startup, "stepped down: " + reason
}
