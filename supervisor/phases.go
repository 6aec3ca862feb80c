package supervisor

import (
	"context"
	"errors"
	"fmt"
)

// startup prepares the voter role (S2, S7), starts the node and waits for
// its status to answer.
func (s *Supervisor) startup(ctx context.Context) (State, string, error) {
	if s.proc != nil && !s.awaitReap(ctx) {
		return Shutdown, "signal", nil
	}
	if s.fatal != nil {
		return Shutdown, "", s.fatal
	}
	if s.fails >= s.cfg.MaxStartFailures {
		return Shutdown, "", fmt.Errorf("%w: the node failed %d times in a row; see its output above, fix it, then restart valguard", ErrCrashLoop, s.fails)
	}
	if s.vfails >= s.cfg.MaxStartFailures {
		return Shutdown, "", fmt.Errorf("%w: the validator node failed %d times in a row; see its output above, fix it, then restart valguard", ErrCrashLoop, s.vfails)
	}
	if n := max(s.fails, s.vfails); n > 0 {
		d := s.backoff(n)
		s.log.Warn().Int("failures", n).Dur("backoff", d).Msg("waiting before the next node start")
		if !s.sleep(ctx, d) {
			return Shutdown, "signal", nil
		}
	}
	if ctx.Err() != nil {
		return Shutdown, "signal", nil
	}
	if !s.cfg.Unsupervised {
		if err := s.cfg.Node.Prepare(ctx, RoleVoter, nil); err != nil {
			return Shutdown, "", fmt.Errorf("prepare the node home for the voter role: %w", err)
		}
		if err := s.start(RoleVoter); err != nil {
			s.fails++
			s.log.Error().Err(err).Msg("node did not start")
			return Startup, "node start failed", nil
		}
	}
	tick := s.clock.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return Shutdown, "signal", nil
		case <-s.nodeDone():
			s.nodeExited()
			s.fails++
			return Startup, "node exited before its status answered", nil
		case <-tick.Chan():
			_, err := s.status(ctx)
			if s.fatal != nil {
				return Startup, "fatal error", nil
			}
			if err == nil {
				return Syncing, "node status answers", nil
			}
		}
	}
}

// syncing waits for the node to be synced, for any step-down hold-off to
// end and for the Operator to let this replica take part; meanwhile it
// logs the node's progress every ProgressInterval.
func (s *Supervisor) syncing(ctx context.Context) (State, string) {
	tick := s.clock.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	logged, heldFor, lagLogged := false, "", false
	var meter progressMeter
	var last Status
	var stuck stuckWatch
	synced := false
	for {
		select {
		case <-ctx.Done():
			return Shutdown, "signal"
		case <-s.nodeDone():
			s.nodeExited()
			s.fails++
			return Startup, "node exited"
		case <-s.operatorChanged():
			// Re-checked below with the last status.
		case <-tick.Chan():
			st, err := s.status(ctx)
			if s.fatal != nil {
				return Startup, "fatal error"
			}
			synced = err == nil && st.Synced
			if err == nil {
				last = st
				if !st.Synced {
					s.sampleProgress(&meter, st.Height, s.clock.Now())
				}
				if why := s.nodeStuck(&stuck, st); why != "" {
					return s.restartStuck(why, st.Height)
				}
			}
		}
		if !synced {
			continue
		}
		s.fails = 0
		if wait := s.clock.Until(s.holdoff); wait > 0 {
			if !logged {
				s.log.Info().Dur("left", wait).Msg("synced; staying out of the election after stepping down")
				logged = true
			}
			continue
		}
		if h := s.hold(); h != "" {
			if h != heldFor {
				s.log.Info().Str("hold", h).Msg("synced; staying out of the election on the operator's request")
				heldFor = h
			}
			continue
		}
		if l := s.lagging(last.Height); l != "" {
			if !lagLogged {
				s.log.Info().Str("lag", l).Msg("synced; staying out of the election until the node catches up")
				lagLogged = true
			}
			continue
		}
		return Registering, fmt.Sprintf("node synced at height %d", last.Height)
	}
}

// registering creates a session, retrying with back-off while the lock
// service is unreachable; the replica stays out of the election meanwhile.
func (s *Supervisor) registering(ctx context.Context) (State, string) {
	tick := s.clock.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for attempt := 1; ; attempt++ {
		if h := s.hold(); h != "" {
			return Syncing, "out of the election: " + h
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		sess, err := s.cfg.Elector.NewSession(cctx)
		cancel()
		if err == nil {
			s.setSession(sess)
			return Voting, "session created"
		}
		wait := s.backoff(attempt)
		retry := s.clock.NewTimer(wait)
		s.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg("could not create a session; staying out of the election")
	waiting:
		for {
			select {
			case <-ctx.Done():
				retry.Stop()
				return Shutdown, "signal"
			case <-s.nodeDone():
				retry.Stop()
				s.nodeExited()
				s.fails++
				return Startup, "node exited"
			case <-tick.Chan():
				if st, err := s.status(ctx); err != nil || !st.Synced {
					retry.Stop()
					return Syncing, "node no longer synced"
				}
			case <-s.operatorChanged():
				if h := s.hold(); h != "" {
					retry.Stop()
					return Syncing, "out of the election: " + h
				}
			case <-retry.Chan():
				break waiting
			}
		}
	}
}

// voting waits for the lock while watching the node; on acquiring it,
// promotes the node to the validator role.
func (s *Supervisor) voting(ctx context.Context) (State, string) {
	actx, cancel := context.WithCancel(ctx)
	acquired := make(chan error, 1)
	go func() { acquired <- s.sess.Acquire(actx) }()
	// leave stops the acquisition; a lock acquired meanwhile is released
	// by the session close, with only a voter running.
	leave := func(st State, reason string) (State, string) {
		cancel()
		<-acquired
		s.release(false)
		return st, reason
	}
	tick := s.clock.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	height := s.Snapshot().Node.Height // the node's, as last read
	for {
		select {
		case err := <-acquired:
			cancel()
			if errors.Is(err, ErrFatal) {
				s.fatal = err
				s.release(false)
				return Startup, err.Error()
			}
			if err != nil {
				s.release(false)
				return Registering, fmt.Sprintf("session lost: %v", err)
			}
			// A hold that arrived with the take (not yet signalled, or
			// lost to the select) is honoured before anything signs:
			// only a voter runs, so the release is a plain one.
			if h := s.hold(); h != "" {
				s.release(false)
				return Syncing, "out of the election: " + h
			}
			if l := s.lagging(height); l != "" {
				s.release(false)
				return Syncing, "out of the election: " + l
			}
			return s.mode.grant(ctx)
		case <-ctx.Done():
			return leave(Shutdown, "signal")
		case <-s.nodeDone():
			s.nodeExited()
			s.fails++
			return leave(Startup, "node exited")
		case <-s.operatorChanged():
			if h := s.hold(); h != "" {
				return leave(Syncing, "out of the election: "+h)
			}
		case <-tick.Chan():
			st, err := s.status(ctx)
			if err != nil || !st.Synced {
				return leave(Syncing, "node no longer synced")
			}
			height = st.Height
			if h := s.hold(); h != "" {
				return leave(Syncing, "out of the election: "+h)
			}
			if l := s.lagging(height); l != "" {
				return leave(Syncing, "out of the election: "+l)
			}
		}
	}
}
