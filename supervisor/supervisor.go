package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"
)

// SignerGossipGrace is how long, in signer mode, a leader that shuts down
// keeps its node running after it revoked signing and released the lock:
// the votes the node was given last reach its peers only by its gossip,
// and the standby's node cannot cast them (a prevote or precommit fenced
// for other data than the standby's node wants is refused to it, and with
// a third of the power or more the height would halt on the lost vote
// until this node replays its WAL). The standby leads meanwhile, so the
// grace costs no failover time.
const SignerGossipGrace = time.Second

// ErrCrashLoop is returned by Run when the node failed to start, or the
// validator node failed, MaxStartFailures times in a row.
var ErrCrashLoop = errors.New("node keeps failing")

// ErrFatal is wrapped by Elector, Session or Node errors that must end Run
// rather than be retried (e.g. a lock that names another validator's key).
var ErrFatal = errors.New("fatal")

// ErrUnexpectedKey is what a Node's Status wraps when a node started as a
// voter reports a validator key loaded that valguard did not link (S1,
// S7). The supervisor kills and reaps that node and Run returns the error.
var ErrUnexpectedKey = errors.New("voter node reports a validator key loaded")

// Supervisor runs one replica; see the package doc.
type Supervisor struct {
	cfg   Config
	log   zerolog.Logger
	clock clockwork.Clock // cfg.Clock
	state atomic.Int32

	mode    signMode  // who may sign while this replica leads (mode.go)
	proc    *nodeProc // the running node, nil when none
	sess    Session   // the held session, nil when none
	starts  int       // node starts so far
	fails   int       // consecutive voter start failures
	vfails  int       // consecutive validator failures
	holdoff time.Time
	fatal   error // ends Run at the next Startup

	stuckRestarts int   // stuck-node restarts with no height above stuckAt since (stuck.go)
	stuckAt       int64 // the node's height at the last stuck-node restart

	fallbackLogged bool // the reason for no cgroup was logged

	snap snapshot // what Snapshot reports

	leaseMu sync.Mutex
	lease   Session // s.sess, for other goroutines
}

// New checks cfg and returns a Supervisor.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Node == nil || cfg.Elector == nil {
		return nil, errors.New("supervisor: Node and Elector are required")
	}
	if cfg.MaxLag < 0 {
		return nil, errors.New("supervisor: MaxLag must not be negative")
	}
	if cfg.PollInterval < 0 || cfg.StopTimeout < 0 || cfg.KillTimeout < 0 || cfg.MaxStall < 0 || cfg.StepDownHoldoff < 0 {
		return nil, errors.New("supervisor: durations must not be negative")
	}
	if cfg.RecoveryAfter < 0 || (cfg.RecoveryAfter > 0 && cfg.MaxStall > 0 && cfg.RecoveryAfter >= cfg.MaxStall) {
		return nil, errors.New("supervisor: RecoveryAfter must be below MaxStall")
	}
	if cfg.ProgressInterval < 0 {
		return nil, errors.New("supervisor: ProgressInterval must not be negative")
	}
	if cfg.Unsupervised && cfg.Signer == nil {
		return nil, errors.New("supervisor: a node valguard does not run can only be signed for: Unsupervised needs a Signer")
	}
	if w, ok := cfg.Node.(WrappedNode); ok && w.Wrapped() && cfg.Signer == nil {
		if err := cgroupUsable(); err != nil {
			return nil, fmt.Errorf("the node runs through a wrapper (cosmovisor), and in the key-file mode its daemon, which loads the key, "+
				"must die with valguard: only a cgroup of its own ensures that, and none can be used here (%v); "+
				"run valguard as root or with a delegated cgroup (systemd Delegate=yes), or use the signer mode, in which no node holds the key", err)
		}
	}
	cfg.setDefaults()
	s := &Supervisor{cfg: cfg, log: cfg.Log, clock: cfg.Clock}
	s.mode = newSignMode(s)
	return s, nil
}

// setSession makes sess the held session (nil: none) for s.sess and the
// metrics.
func (s *Supervisor) setSession(sess Session) {
	s.sess = sess
	s.cfg.Metrics.setSession(sess)
}

// setLeading makes sess the session LeaseDeadline reports: from the lock's
// acquisition (the fence) until release begins; nil otherwise.
func (s *Supervisor) setLeading(sess Session) {
	s.leaseMu.Lock()
	s.lease = sess
	s.leaseMu.Unlock()
}

// LeaseDeadline is the local lease deadline of the session under which
// this replica may run a validator — from the moment it holds the lock
// until its release begins — and whether there is one; safe to call from
// any goroutine. A watchdog fed only while the deadline is further away
// than its own timeout kills a frozen leader before the deadline; a
// standby, which holds no key, is not reported, nor a session without a
// lease (the leaderless signer policy's: its safety is the sign record's
// check-and-set, not a deadline).
func (s *Supervisor) LeaseDeadline() (time.Time, bool) {
	s.leaseMu.Lock()
	sess := s.lease
	s.leaseMu.Unlock()
	if sess == nil {
		return time.Time{}, false
	}
	d := sess.Deadline()
	return d, !d.IsZero()
}

// State is the current state; safe to call from any goroutine.
func (s *Supervisor) State() State { return State(s.state.Load()) }

func (s *Supervisor) enter(st State, reason string) {
	old := s.State()
	s.state.Store(int32(st))
	s.cfg.Metrics.SetState(st)
	s.snap.update(func(sn *Snapshot) {
		sn.State, sn.Since, sn.Reason = st, s.clock.Now(), reason
		if st != Syncing {
			sn.Progress = nil
		}
	})
	s.log.Info().Str("state", st.String()).Str("from", old.String()).Str("reason", reason).Msg("state change")
}

// Run runs the replica until ctx is cancelled (then it stops the node,
// releases the lock and returns nil) or a fatal error: a node home that
// cannot be prepared (e.g. the validator key as a regular file, S2) or a
// crash loop.
func (s *Supervisor) Run(ctx context.Context) error {
	// S2: unlinked at every start-up, whatever was found there.
	if !s.cfg.Unsupervised {
		if err := s.cfg.Node.Prepare(ctx, RoleVoter, nil); err != nil {
			return fmt.Errorf("prepare the node home for the voter role: %w", err)
		}
	}
	st, reason := Startup, "valguard started"
	for {
		s.enter(st, reason)
		var err error
		switch st {
		case Startup:
			st, reason, err = s.startup(ctx)
		case Syncing:
			st, reason = s.syncing(ctx)
		case Registering:
			st, reason = s.registering(ctx)
		case Voting:
			st, reason = s.voting(ctx)
		case Validating:
			st, reason = s.mode.watch(ctx)
		case Shutdown:
			s.shutdown()
			return nil
		}
		if err != nil {
			s.enter(Shutdown, err.Error())
			s.shutdown()
			return err
		}
	}
}

// shutdown stops the node and releases the lock as the sign mode
// requires (signMode.shutdown).
func (s *Supervisor) shutdown() { s.mode.shutdown() }

// stopAndRelease stops the node first, then releases the lock (S3). A
// validator node that cannot be reaped keeps the lock unreleased: the
// session is abandoned to expire in Consul. It reports whether no node is
// left running.
func (s *Supervisor) stopAndRelease() bool {
	validator := s.proc != nil && s.proc.role == RoleValidator
	if s.proc != nil {
		s.stopNode("shutdown")
	}
	if s.sess != nil {
		s.release(validator)
	}
	s.forgetExited()
	if s.proc != nil {
		s.log.Error().Int("pid", s.proc.PID()).Str("role", s.proc.role.String()).
			Msg("exiting with the node's process tree not reaped: it may still run; check it by hand")
		return false
	}
	return true
}

// unlinkKey prepares the voter role, which unlinks the validator key; it
// must be called only while no node runs.
func (s *Supervisor) unlinkKey(when string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	defer cancel()
	if err := s.cfg.Node.Prepare(ctx, RoleVoter, nil); err != nil {
		s.log.Error().Err(err).Msg("could not unlink the validator key " + when)
	}
}

// release closes the session; withWatermark publishes the final watermark
// of the validator node, which must have been reaped already (S3). In the
// key-file mode the validator key is unlinked before the lock goes, when
// no node runs (S2); in signer mode signing is revoked first (S3′). If a
// node that may hold the key has not been reaped, nothing is released: the
// session is abandoned, Consul expires it after its TTL and the lock-delay
// fences the lock after that.
func (s *Supervisor) release(withWatermark bool) {
	s.setLeading(nil)
	s.mode.revoke()
	if s.proc != nil && s.proc.role == RoleValidator && !s.proc.Exited() {
		s.sess.Abandon()
		s.log.Error().Int("pid", s.proc.PID()).Time("session_deadline", s.sess.Deadline()).
			Msg("lock NOT released: the validator node is not reaped; the session is left to expire in consul (TTL, then lock-delay)")
		s.cfg.Metrics.abandon()
		s.setSession(nil)
		return
	}
	var final []byte
	if withWatermark {
		if wm, err := s.cfg.Node.Watermark(); err != nil {
			s.log.Error().Err(err).Msg("could not read the final sign-state watermark")
		} else {
			final = wm
		}
	}
	s.mode.beforeClose()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	defer cancel()
	if err := s.sess.Close(ctx, final); err != nil {
		s.log.Warn().Err(err).Msg("session close failed; consul will expire it after its TTL")
	} else {
		s.log.Info().Bool("watermark", final != nil).Msg("lock released and session destroyed")
	}
	s.setSession(nil)
}

// status reads the node's status within StatusTimeout.
func (s *Supervisor) status(ctx context.Context) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
	defer cancel()
	st, err := s.cfg.Node.Status(ctx)
	if err == nil {
		s.cfg.Metrics.nodeStatus(st)
		s.snap.update(func(sn *Snapshot) { sn.Node, sn.NodeAt = st, s.clock.Now() })
	}
	if errors.Is(err, ErrUnexpectedKey) && s.proc != nil && s.proc.role == RoleVoter && s.fatal == nil {
		s.fatal = err
		s.log.Error().Err(err).Int("pid", s.proc.PID()).Msg("a voter holds a validator key: killing it and stopping")
		// It holds a key: from here on it is treated as a validator (S3).
		s.proc.role = RoleValidator
		if kerr := s.proc.Kill(s.cfg.KillTimeout); kerr != nil {
			s.notReaped(kerr, "voter holds a validator key")
		}
	}
	return st, err
}

// backoff is the wait before attempt n (n ≥ 1) of something that failed.
func (s *Supervisor) backoff(n int) time.Duration {
	d := s.cfg.RestartBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

// sleep waits d or until ctx is done; false when ctx is done.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration) bool {
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}
