package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

// keyFile is the key-file sign mode: the validator key is a file that is
// linked into the leader's node home (package keylink, through the chain
// adapter's Prepare), and the node is restarted, or hot-reloaded, as the
// validator. Granting is that promotion under the fence; giving it up is
// the validator node killed and its whole tree reaped by the caller (S3,
// S10), then, in the release, the fence disarmed (revoke) and the key
// unlinked (S2, beforeClose) before the lock goes.
//
// It stays in package supervisor, unlike the signer mode's key holder
// (package signer behind [Signer]): its grant and revoke are the node
// process's restart and reap, which the supervisor owns.
type keyFile struct {
	s     *Supervisor
	fence *fence // kills the node on lease loss, from the grant to the release
}

// revoke, at the start of every release, disarms the fence: the caller has
// stopped the validator node, or release finds it not reaped and abandons
// the lock.
func (m *keyFile) revoke() {
	if m.fence != nil {
		m.fence.close()
		m.fence = nil
	}
}

// beforeClose unlinks the validator key before the lock goes (S2). A node
// still set here is a voter, or a validator whose tree exited after its
// reap timed out: the next Startup unlinks after the reap.
func (m *keyFile) beforeClose() {
	if m.s.proc == nil {
		m.s.unlinkKey("before releasing the lock")
	}
}

// shutdown stops the node first, then releases the lock (S3), then
// unlinks the key; a node left unreaped keeps the key linked (it may be
// running with it) and the lock abandoned.
func (m *keyFile) shutdown() {
	if m.s.stopAndRelease() {
		m.s.unlinkKey("after stopping")
	}
}

// signedHeightFrom is the node: its sign state says what it signed.
func (m *keyFile) signedHeightFrom() any { return m.s.cfg.Node }

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

// watch watches the lease, the validator node and its progress, and
// publishes the node's sign-state watermark as it changes.
func (m *keyFile) watch(ctx context.Context) (State, string) {
	s := m.s
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
				return m.stepDown("operator: "+h, 0)
			}
		case <-poll.Chan():
			if h := s.hold(); h != "" {
				return m.stepDown("operator: "+h, 0)
			}
			st, err := s.status(ctx)
			if err == nil && st.Height > lastHeight && !st.CatchingUp {
				lastHeight, progress = st.Height, s.clock.Now()
				s.vfails = 0
				s.moved(&stall)
			}
			if stalled := s.clock.Since(progress); stalled > s.cfg.MaxStall && !s.chainStalled(&stall, st, err, stall.since) {
				return m.stepDown(fmt.Sprintf("no progress for %s at height %d (catching up: %v)", stalled.Round(time.Millisecond), lastHeight, st.CatchingUp), s.cfg.StepDownHoldoff)
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
func (m *keyFile) stepDown(reason string, holdoff time.Duration) (State, string) {
	s := m.s
	s.log.Warn().Str("reason", reason).Dur("holdoff", holdoff).Msg("stepping down")
	s.stopNode("step down")
	s.release(true)
	s.holdoff = s.clock.Now().Add(holdoff)
	return Startup, "stepped down: " + reason
}
