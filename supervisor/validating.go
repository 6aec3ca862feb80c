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
	proc *nodeProc
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
func (f *fence) guard(start func() (*nodeProc, error)) (bool, error) {
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

// validating watches the lease, the node and its progress.
func (s *Supervisor) validating(ctx context.Context) (State, string) {
	if s.cfg.Signer != nil {
		return s.validatingSigner(ctx)
	}
	poll := s.clock.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	publish := s.clock.NewTicker(s.cfg.PublishInterval)
	defer publish.Stop()
	var published []byte
	lastHeight, progress := int64(0), s.clock.Now()
	var stall stallWatch
	defer s.moved(&stall)
	for {
		select {
		case <-ctx.Done():
			return Shutdown, "signal"
		case <-s.sess.Done():
			// The fence is killing the node; wait for the reap it does.
			// The release carries the node's final sign state: Consul
			// may still hold the session (the local deadline comes
			// first), and a release that writes the clean-release marker
			// lets the standby in at once, so it must find every height
			// this node signed in the watermark, not only what the last
			// publish had (model finding F1).
			s.killNode("lease lost")
			reason := fmt.Sprintf("lease lost: %v", s.sess.Err())
			s.release(true)
			return Startup, reason
		case <-s.proc.Done():
			s.nodeExited()
			s.vfails++
			s.release(true)
			return Startup, "validator node exited; lock released"
		case <-s.operatorChanged():
			if h := s.hold(); h != "" {
				return s.stepDown("operator: "+h, 0)
			}
		case <-poll.Chan():
			if h := s.hold(); h != "" {
				return s.stepDown("operator: "+h, 0)
			}
			st, err := s.status(ctx)
			if err == nil && st.Height > lastHeight && !st.CatchingUp {
				lastHeight, progress = st.Height, s.clock.Now()
				s.vfails = 0
				s.moved(&stall)
			}
			if stalled := s.clock.Since(progress); stalled > s.cfg.MaxStall && !s.chainStalled(&stall, st, err, stall.since) {
				return s.stepDown(fmt.Sprintf("no progress for %s at height %d (catching up: %v)", stalled.Round(time.Millisecond), lastHeight, st.CatchingUp), s.cfg.StepDownHoldoff)
			}
		case <-publish.Chan():
			wm, err := s.cfg.Node.Watermark()
			if err == nil {
				stall.signState(wm, s.clock.Now()) // the stall rule's "still signs"
			}
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

// stepDown stops the validator node, releases the lock through the clean
// path that a shutdown takes (node reaped, final watermark published, then
// the lock released with the clean-release marker) so a standby takes
// over at once, and holds this replica out of the election for holdoff: a
// validator that is not keeping up, or (holdoff 0) one the operator asked
// to hand over, which the Operator itself then keeps out.
func (s *Supervisor) stepDown(reason string, holdoff time.Duration) (State, string) {
	s.log.Warn().Str("reason", reason).Dur("holdoff", holdoff).Msg("stepping down")
	s.stopNode("step down")
	s.release(true)
	s.holdoff = s.clock.Now().Add(holdoff)
	return Startup, "stepped down: " + reason
}
