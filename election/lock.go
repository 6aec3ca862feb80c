package election

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

// maxWait caps the wait time of the blocking queries in Acquire. They also
// wait at most one TTL, so a standby's view of the key is refreshed at
// least that often even if a change notification is lost.
const maxWait = time.Minute

// MaxTakeDelay caps Config.TakeDelay.
const MaxTakeDelay = time.Second

// fencedRetrySlack is added to the lock-delay before a Fenced election
// retries a refused take, so that the retry lands after the delay ends.
const fencedRetrySlack = 5 * time.Millisecond

// Acquire blocks until this session holds the lock and may act on it
// (nil), ctx ends (ctx.Err()) or the session is lost (its Err()). It waits
// with Consul blocking queries on the lock key and tries to take the key
// whenever no session holds it. After an invalidation Consul refuses the
// key for the lock-delay; Acquire then retries every 500 ms until it gets
// it (with Config.Fenced: every min(LockDelay + 5 ms, 500 ms)). The lock
// value is this replica's LeaderInfo with Since = now.
//
// Acquire refuses, with an error wrapping ErrForeignLock, a lock key whose
// value (held or free) names a public key other than Config.PublicKey.
//
// When the key it took was not left by a fresh clean release (see
// "A lock key that vanishes" in the package doc), Acquire calls
// Config.OnUncleanTakeover and returns only max(LockDelay, TTL) after it
// first saw the key free in the state it took (see freeSighting), holding
// the lock and renewing the session meanwhile; Done or ctx end that wait
// with the usual error. After a session expiry most of that wait has
// passed while Consul's lock-delay refused the take. A later Acquire on the same session
// resumes the same wait, it does not restart it.
//
// With Config.Fenced there is no such wait when the key was left by a
// Fenced holder, or was absent while the watermark key is absent or was
// written by a Fenced replica (Config.WrittenFenced; one consistent read
// after the take): Acquire returns as soon as the take succeeded, and
// OnUncleanTakeover is not called. A key a key-file replica left, or an
// absent key over a watermark a key-file replica wrote (or that could not
// be read), gets the wait, counted from the take for an absent key.
//
// A take whose outcome is unknown (no answer within the call timeout, a
// connection reset after the request was sent, an error answer) is
// followed at once by a consistent read of the lock key: held by this
// session means the take was applied, and Acquire goes on exactly as after
// an answered take (the same checks of what it replaced; the local lease
// deadline still counts from the send time of the last renew, S4 in
// docs/design.md). Held by another session, free or unreadable: the take counts
// as failed and is retried as usual. Success is never assumed without
// that read.
//
// Not guaranteed: when ctx ends or the session is lost while a take is in
// flight, Consul may still grant it; Close (or the session's expiry, with
// lock-delay) releases it.
func (s *Session) Acquire(ctx context.Context) error {
	var index uint64
	var free freeSighting
	delayed := false // TakeDelay was waited for since the key was last seen held
	for {
		if err := s.Err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if held, signAt := s.heldSince(); held {
			return s.lead(ctx, signAt)
		}
		pair, next, err := s.watch(ctx, index)
		if err != nil {
			// Unseen meanwhile: whatever happened to the key, a sighting
			// after this starts anew.
			free = freeSighting{}
			if err := s.pause(ctx, retryInterval); err != nil {
				return err
			}
			index = 0
			continue
		}
		if next == 0 {
			free = freeSighting{} // the index went backwards (a restore)
		}
		index = next
		if err := s.e.foreign(pair); err != nil {
			return err
		}
		free.saw(pair, next, s.e.now())
		if pair != nil && pair.Session != "" {
			delayed = false
		}
		switch {
		case pair != nil && pair.Session == s.id:
			// An earlier take whose answer was lost: what it replaced is
			// unknown, so it counts as unclean.
			s.tookLock(pair.Value, "a take whose answer was lost", s.e.now(), false)
		case pair == nil || pair.Session == "":
			if w := s.takeDelay(&delayed); w > 0 {
				if err := s.pause(ctx, w); err != nil {
					return err
				}
				index = 0 // read again at once: take it if still free as seen
				continue
			}
			ok, takeErr := s.take(ctx, pair, free.since)
			if ok {
				continue // the loop head waits if need be and reports leadership
			}
			// Refused (lock-delay, or another replica was quicker) or
			// failed (reported by take); the loop head sees a lost session.
			if err := s.pause(ctx, s.retryAfterTake(takeErr)); err != nil {
				return err
			}
			index = 0
		}
	}
}

// takeDelay is Config.TakeDelay (capped at MaxTakeDelay) the first time
// the lock key is seen free since it was last seen held; 0 after.
func (s *Session) takeDelay(delayed *bool) time.Duration {
	f := s.e.cfg.TakeDelay
	if f == nil || *delayed {
		return 0
	}
	*delayed = true
	return min(max(f(), 0), MaxTakeDelay)
}

// retryAfterTake is the pause after a take that did not succeed with
// err: retryInterval, or, for a Fenced election whose take Consul refused
// (most likely inside the lock-delay), the lock-delay plus
// fencedRetrySlack when that is shorter. A refusal because another
// replica was quicker costs only a read: the next watch sees the key held
// and blocks.
func (s *Session) retryAfterTake(err error) time.Duration {
	cfg := s.e.cfg
	if err != nil || !cfg.Fenced {
		return retryInterval
	}
	return min(cfg.LockDelay+fencedRetrySlack, retryInterval)
}

// heldSince reports whether the session took the lock, and the end of its
// unclean-takeover wait.
func (s *Session) heldSince() (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held, s.signAt
}

// lead waits until signAt, then records leadership unless Done closed.
func (s *Session) lead(ctx context.Context, signAt time.Time) error {
	if d := signAt.Sub(s.e.now()); d > 0 {
		if err := s.pause(ctx, d); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.leader = true
	return nil
}

// watch reads the lock key; with index > 0 it blocks until the key changes
// past index or the wait time ends. It returns the index to wait on next.
func (s *Session) watch(ctx context.Context, index uint64) (*api.KVPair, uint64, error) {
	cfg := s.e.cfg
	wait := min(cfg.TTL, maxWait)
	// Consul adds up to wait/16 of jitter to a blocking query.
	qctx, cancel := context.WithTimeout(ctx, wait+wait/16+cfg.CallTimeout)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	q := &api.QueryOptions{WaitIndex: index, WaitTime: wait, RequireConsistent: true}
	pair, meta, err := cfg.Client.KV().Get(s.e.lockKey, q.WithContext(qctx))
	if err != nil {
		err = fmt.Errorf("watch %s: %w", s.e.lockKey, err)
		s.e.consulError(err, ctx, s.ctx)
		return nil, 0, err
	}
	next := meta.LastIndex
	if next < index {
		next = 0 // the index went backwards (e.g. a snapshot restore): start over
	}
	return pair, next, nil
}

// freeSighting remembers since when Acquire has seen the lock key free in
// one unchanged state: free with one ModifyIndex, or absent with one
// index of the read (which moves when the key was created or deleted in
// between, and perhaps on other writes: that only restarts the wait). The
// unclean-takeover wait runs from that first sighting: whatever freed the
// key (a delete, an invalidation) happened before it, and the old leader's
// bound to notice runs from that event, so a wait counted from the
// sighting is never shorter than needed. Reads are continuous (blocking
// queries on the last index); a failed read or an index that went
// backwards forgets the sighting, since a take and a loss by another
// replica could have passed unseen. After a session expiry the lock-delay
// that Consul enforces already runs most of the wait.
type freeSighting struct {
	seen   bool
	absent bool
	index  uint64    // ModifyIndex of the free key, or the read's index when absent
	since  time.Time // first sighting of this state
}

// saw records one read of the lock key, answered with index lastIndex, at
// now.
func (f *freeSighting) saw(pair *api.KVPair, lastIndex uint64, now time.Time) {
	index := lastIndex
	if pair != nil {
		index = pair.ModifyIndex
	}
	switch {
	case pair != nil && pair.Session != "":
		f.seen = false
	case f.seen && f.absent == (pair == nil) && f.index == index:
		// The same free state as before: the first sighting stands.
	default:
		f.seen, f.absent, f.index, f.since = true, pair == nil, index, now
	}
}

// pause waits d, or less when ctx ends or the session is lost.
func (s *Session) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return s.Err()
	case <-t.C:
		return nil
	}
}
