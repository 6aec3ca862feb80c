package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/valguard/valguard/supervisor/proctree"
)

// cgroupUsable and startInCgroup are proctree's; tests replace them.
var (
	cgroupUsable  = proctree.CgroupUsable
	startInCgroup = proctree.StartInCgroup
)

// nodeProc is a node the supervisor started: its process tree, the role
// it was started in (a voter found holding a key becomes a validator for
// the rest of its life, S3) and when it started, on the supervisor's
// clock.
type nodeProc struct {
	*proctree.Process
	role    Role
	started time.Time
}

// start starts the node in role and makes it s.proc.
func (s *Supervisor) start(role Role) error {
	cmd, err := s.cfg.Node.Command(role)
	if err != nil {
		return err
	}
	start := proctree.Start
	if w, ok := s.cfg.Node.(WrappedNode); ok && w.Wrapped() && role == RoleValidator {
		start = startInCgroup // its daemon must die with valguard (WrappedNode)
	}
	tree, err := start(cmd, s.cfg.Stdout, s.cfg.Stderr)
	if err != nil {
		return fmt.Errorf("start %s node %s: %w", role, cmd.Path, err)
	}
	p := &nodeProc{Process: tree, role: role, started: s.clock.Now()}
	if s.starts > 0 {
		s.cfg.Metrics.restart()
	}
	s.starts++
	s.proc = p
	if pids := p.Leftovers(); len(pids) > 0 {
		s.log.Warn().Ints("pids", pids).Msg("killed processes an earlier node of this home had left in its cgroup")
	}
	if err := p.FallbackReason(); err != nil && !s.fallbackLogged {
		s.fallbackLogged = true
		s.log.Warn().Err(err).Msg("no cgroup for the node: its process tree is followed by process group, environment tag and parent links " +
			"(a process that leaves its session and scrubs its environment is not caught); run valguard as root or with a delegated cgroup (systemd Delegate=yes)")
	}
	s.log.Info().Str("role", role.String()).Int("pid", p.PID()).Str("containment", p.Containment()).Str("cmd", cmd.String()).Msg("node started")
	return nil
}

// nodeExited logs a node whose direct child exited on its own and has been
// reaped, then kills and reaps whatever else of its process tree is left
// (a wrapper such as cosmovisor may have died with the real node still
// running, S10). If that fails, s.proc stays set.
func (s *Supervisor) nodeExited() {
	p := s.proc
	s.log.Error().Str("role", p.role.String()).Int("pid", p.PID()).AnErr("exit", p.ExitErr()).
		Dur("ran", s.clock.Since(p.started)).Msg("node exited")
	s.killNode("node exited")
}

// stopNode stops the running node: SIGTERM, bounded wait, SIGKILL, and the
// whole process tree reaped (S10). It reports whether that succeeded; if
// not, s.proc stays set, so that nothing treats the node as gone (S3).
func (s *Supervisor) stopNode(why string) bool {
	p := s.proc
	start := s.clock.Now()
	killed, err := p.Stop(s.cfg.StopTimeout, s.cfg.KillTimeout)
	if err != nil {
		s.notReaped(err, why)
		return false
	}
	s.log.Info().Str("role", p.role.String()).Int("pid", p.PID()).Bool("sigkill", killed).
		Dur("took", s.clock.Since(start)).Str("reason", why).Msg("node stopped")
	s.proc = nil
	return true
}

// killNode sends SIGKILL to the running node's process tree and waits for
// all of it to be reaped. It reports whether that succeeded; if not,
// s.proc stays set.
func (s *Supervisor) killNode(why string) bool {
	p := s.proc
	if err := p.Kill(s.cfg.KillTimeout); err != nil {
		s.notReaped(err, why)
		return false
	}
	s.proc = nil
	return true
}

// notReaped reports, loudly, a node whose process tree outlived SIGKILL
// and the reap bound.
func (s *Supervisor) notReaped(err error, why string) {
	s.cfg.Metrics.setUnreaped(true)
	s.log.Error().Err(err).Int("pid", s.proc.PID()).Str("role", s.proc.role.String()).Str("reason", why).
		Msg("node process tree not reaped after SIGKILL (uninterruptible sleep? a stuck disk?): " +
			"the lock will not be released while it may run")
}

// awaitReap keeps killing an unreaped node until its whole tree is gone,
// backing off up to MaxBackoff between attempts. It returns false if ctx
// ends first; the node is then still there.
func (s *Supervisor) awaitReap(ctx context.Context) bool {
	for attempt := 1; s.proc != nil; attempt++ {
		if !s.sleep(ctx, s.backoff(attempt)) {
			return false
		}
		p := s.proc
		if err := p.Kill(s.cfg.KillTimeout); err != nil {
			s.log.Error().Err(err).Int("pid", p.PID()).Int("attempt", attempt).Msg("node process tree still not reaped")
			continue
		}
		s.log.Warn().Int("pid", p.PID()).Int("attempts", attempt).Msg("node process tree finally reaped")
		s.proc = nil
	}
	s.cfg.Metrics.setUnreaped(false)
	return true
}

// forgetExited drops a node that could not be reaped in time but whose
// whole tree has gone since: it no longer holds anything. Only where no
// loop selects on s.proc.Done() next (shutdown, a failed promotion).
func (s *Supervisor) forgetExited() {
	if s.proc != nil && s.proc.Exited() {
		s.log.Warn().Int("pid", s.proc.PID()).Msg("node process tree reaped after all")
		s.proc = nil
		s.cfg.Metrics.setUnreaped(false)
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
