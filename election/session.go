package election

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// retryInterval is the pause after a failed renew, a lock-delay refusal or
// a failed read before the next attempt.
const retryInterval = 500 * time.Millisecond

// Session is one Consul session of one replica. Its renew loop runs from
// NewSession until Close or Done. It is safe for concurrent use.
type Session struct {
	e  *Election
	id string

	// ctx is cancelled when done is closed; every call made on the
	// session's behalf hangs off it, so a lost session stops them at once.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	deadline time.Time   // local lease deadline
	gen      uint64      // bumped with every new deadline
	timer    *time.Timer // closes done at deadline
	held     bool        // this session took the lock key (stays set after done)
	signAt   time.Time   // the end of the unclean-takeover wait (zero: none)
	leader   bool        // an Acquire returned nil (stays set after done)
	value    []byte      // the lock value this session wrote
	err      error       // why done was closed
	done     chan struct{}

	closing   bool // Close began: Abandon does nothing
	abandoned bool // Abandon ran: Close releases nothing

	loopDone  chan struct{} // closed when the renew loop returned
	closeOnce sync.Once
	closeErr  error
}

func startSession(e *Election, id string, sent time.Time) *Session {
	s := &Session{e: e, id: id, done: make(chan struct{}), loopDone: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	s.setDeadlineLocked(sent.Add(e.cfg.TTL - e.cfg.StopMargin))
	s.mu.Unlock()
	go s.renewLoop(sent)
	return s
}

// ID is the Consul session ID.
func (s *Session) ID() string { return s.id }

// Done is closed no later than the local lease deadline (Deadline), and
// earlier when Consul no longer knows the session or another session (or
// none) holds the lock this one held; Err says which. Once closed it is
// never reopened.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is nil while Done is open, then one of ErrSessionExpired,
// ErrSessionInvalidated, ErrLockTaken, ErrClosed or ErrAbandoned.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Deadline is the current local lease deadline: the send time of the last
// successful renew (or of the create) + TTL − StopMargin. While the
// session holds the lock key, a renew counts only once a consistent read
// sent after it has shown the key still held by this session. It only
// moves forward, and stops moving once Done is closed.
func (s *Session) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadline
}

// Leader reports whether this session holds the lock as far as this
// replica knows and may act on it: an Acquire returned nil (so any
// unclean-takeover wait is over) and Done is still open.
func (s *Session) Leader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader && s.err == nil
}

// fail closes done with err unless it is already closed; it reports
// whether this call closed it.
func (s *Session) fail(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failLocked(err)
}

func (s *Session) failLocked(err error) bool {
	if s.err != nil {
		return false
	}
	s.err = err
	s.timer.Stop()
	close(s.done)
	s.cancel()
	return true
}

// setDeadlineLocked moves the deadline to d and re-arms the timer that
// closes done at it.
func (s *Session) setDeadlineLocked(d time.Time) {
	s.deadline = d
	s.gen++
	gen := s.gen
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(d.Sub(s.e.now()), func() { s.expire(gen) })
}

// expire closes done with ErrSessionExpired unless the deadline of
// generation gen was replaced in the meantime.
func (s *Session) expire(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen == s.gen {
		s.failLocked(ErrSessionExpired)
	}
}

// renewed records a successful renew sent at sent for a session whose TTL
// on the server is ttl. It reports false when
// the session is already finished, or when the old deadline has passed
// (the timer is about to fire): a late answer never reopens a lease.
func (s *Session) renewed(sent time.Time, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	if !s.e.now().Before(s.deadline) {
		s.failLocked(ErrSessionExpired)
		return false
	}
	if d := sent.Add(ttl - s.e.cfg.StopMargin); d.After(s.deadline) {
		s.setDeadlineLocked(d)
	}
	return true
}

// leaseCtx derives a context for one Consul call made while the session
// matters: it ends after min(CallTimeout, time left to the deadline), or
// when parent ends, or when done is closed. It fails when done is already
// closed or no time is left.
func (s *Session) leaseCtx(parent context.Context) (context.Context, context.CancelFunc, error) {
	s.mu.Lock()
	err, left := s.err, s.deadline.Sub(s.e.now())
	s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if left <= 0 {
		return nil, nil, ErrSessionExpired
	}
	ctx, cancel := context.WithTimeout(parent, min(s.e.cfg.CallTimeout, left))
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }, nil
}

// renewLoop renews the session every RenewInterval (counted from the send
// time of the last successful renew) and retries failed renews every
// retryInterval, until done is closed. Expiry itself is the timer's job:
// the loop never has to be on time for Done to be.
func (s *Session) renewLoop(created time.Time) {
	defer close(s.loopDone)
	cfg := s.e.cfg
	next := created.Add(cfg.RenewInterval)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		t.Reset(next.Sub(s.e.now()))
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		sent := s.e.now()
		ctx, cancel, err := s.leaseCtx(s.ctx)
		if err != nil {
			// Done already, or no time left: the timer is firing.
			s.fail(ErrSessionExpired)
			return
		}
		entry, _, err := cfg.Client.Session().Renew(s.id, (&api.WriteOptions{}).WithContext(ctx))
		cancel()
		switch {
		case err != nil:
			if s.ctx.Err() != nil {
				return
			}
			s.e.consulError(fmt.Errorf("renew session %s: %w", s.id, err), s.ctx)
			next = s.e.now().Add(min(retryInterval, cfg.RenewInterval))
			continue
		case entry == nil:
			s.fail(ErrSessionInvalidated)
			return
		}
		// A holder's renew counts only once the lock key is seen still held
		// after it was sent: a key deleted under a leader whose renews
		// succeed must still end the lease within TTL − StopMargin of the
		// delete, even when the reads fail (see the package doc).
		if s.holds() {
			switch s.checkLock() {
			case lockLost:
				s.fail(ErrLockTaken)
				return
			case lockUnknown:
				if s.ctx.Err() != nil {
					return
				}
				next = s.e.now().Add(min(retryInterval, cfg.RenewInterval))
				continue
			}
		}
		if !s.renewed(sent, serverTTL(entry, cfg.TTL)) {
			return
		}
		if cfg.OnRenew != nil {
			cfg.OnRenew()
		}
		next = sent.Add(cfg.RenewInterval)
	}
}

// holds reports whether this session took the lock key and Done is open.
func (s *Session) holds() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held && s.err == nil
}

// lockCheck is what a consistent read of the lock key showed.
type lockCheck int

const (
	lockHeld    lockCheck = iota // held by this session
	lockLost                     // held by another session, by none, or gone
	lockUnknown                  // the read failed
)

// checkLock reads the lock key with a consistent read. A failed read
// decides nothing, but the renew it follows then does not count.
func (s *Session) checkLock() lockCheck {
	ctx, cancel, err := s.leaseCtx(s.ctx)
	if err != nil {
		return lockUnknown
	}
	defer cancel()
	pair, err := s.e.get(ctx, s.e.lockKey)
	if err != nil {
		s.e.consulError(err, s.ctx)
		return lockUnknown
	}
	if pair == nil || pair.Session != s.id {
		return lockLost
	}
	return lockHeld
}

// serverTTL is the session TTL the server reports in entry, if it is
// shorter than ours (it never should be: the deadline then follows it).
func serverTTL(entry *api.SessionEntry, ours time.Duration) time.Duration {
	if d, err := time.ParseDuration(entry.TTL); err == nil && d > 0 && d < ours {
		return d
	}
	return ours
}
