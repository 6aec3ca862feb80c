package election

import (
	"context"
	"encoding/json"
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

// take tries once to take the free lock key, which read as seen (nil:
// absent), first seen in that state at freeSince. The take goes through
// the KV endpoint, not a transaction: only the former honours lock-delay.
func (s *Session) take(ctx context.Context, seen *api.KVPair, freeSince time.Time) (bool, error) {
	cfg := s.e.cfg
	value, err := json.Marshal(s.e.info(s.e.now()))
	if err != nil {
		return false, err
	}
	unclean := uncleanReason(seen, s.e.now(), cfg.TTL)
	lctx, cancel, err := s.leaseCtx(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	pair := &api.KVPair{Key: s.e.lockKey, Value: value, Session: s.id}
	ok, _, err := cfg.Client.KV().Acquire(pair, (&api.WriteOptions{}).WithContext(lctx))
	var after *api.KVPair // the lock key as read after a take whose answer was lost
	if err != nil {
		err = fmt.Errorf("acquire %s: %w", s.e.lockKey, err)
		s.e.consulError(err, ctx, s.ctx)
		// The outcome is unknown: Consul may have applied the take. Only a
		// consistent read showing this session as the holder says it did.
		if after = s.heldAfterUnknownTake(ctx); after == nil {
			return false, err
		}
		ok = true
	}
	if !ok {
		return false, nil
	}
	from := freeSince
	// A Fenced session skips the wait after a Fenced holder. An absent key
	// names no holder (a new validator, or a key deleted under a leader of
	// either mode: fleets may mix them, see Config.Fenced); the watermark
	// key tells whether a key-file replica signed last (absentKeyFenced).
	fencedBefore := writtenFenced(seen)
	if seen == nil {
		// An absent key carries nothing that proves it stayed absent
		// since it was first seen so: count from the take.
		from = s.e.now()
		if cfg.Fenced {
			var why string
			if fencedBefore, why = s.absentKeyFenced(ctx); !fencedBefore {
				unclean += "; " + why
			}
		}
	} else {
		// The value judged above must be what the take replaced; if not,
		// the take is unclean and its wait runs from now.
		if changed := s.replacedSeen(ctx, seen, after); changed != "" {
			unclean, from, fencedBefore = changed, s.e.now(), false
		}
	}
	s.tookLock(value, unclean, from, fencedBefore)
	return true, nil
}

// absentKeyFenced reports whether a Fenced session that took an absent
// lock key may skip the unclean-takeover wait, and if not, why. The
// absent key names no last holder, but leaders of either mode publish the
// validator's watermark, and Config.WrittenFenced tells whether the stored
// one was written by a Fenced replica. Skipped only when a consistent read
// (bounded by CallTimeout and the lease) shows the watermark key absent (a
// new validator) or written by a Fenced replica; a watermark a key-file
// (restart mode) replica wrote, or a failed read, means that replica's
// node may still sign with its key file until it notices the deleted key
// and stops, which no fence prevents. Not covered: a key-file leader that
// has not published yet (it publishes periodically) leaves the watermark
// as it was, absent or a Fenced replica's.
func (s *Session) absentKeyFenced(ctx context.Context) (bool, string) {
	wm, err := s.readKey(ctx, s.e.watermarkKey)
	if err != nil {
		return false, "the watermark key could not be read to tell which mode signed last: " + err.Error()
	}
	switch written := s.e.cfg.WrittenFenced; {
	case wm == nil:
		return true, ""
	case written == nil:
		return false, "a watermark is stored and WrittenFenced is not set to tell whether a key-file (restart mode) replica, whose node may still sign until it stops, wrote it"
	case !written(wm.Value):
		return false, "the watermark was written by a key-file (restart mode) replica, whose node may still sign until it stops"
	}
	return true, ""
}

// heldAfterUnknownTake re-reads the lock key (consistent read) after a
// take whose outcome is unknown: no answer within the call timeout, a
// connection reset after the request was sent, an error answer. It returns
// the key as read when this session holds it, which means the take was
// applied; nil otherwise, and when the read fails or ctx or the session
// ended: success is never assumed without the read. A take still in
// flight that Consul applies after this read is found by Acquire's next
// read of the key (a take whose answer was lost, counted as unclean).
func (s *Session) heldAfterUnknownTake(ctx context.Context) *api.KVPair {
	if ctx.Err() != nil {
		return nil // the caller gave up; see "Not guaranteed" on Acquire
	}
	pair, err := s.readKey(ctx, s.e.lockKey)
	if err != nil || pair == nil || pair.Session != s.id {
		return nil
	}
	return pair
}

// readKey is a consistent read of key bounded by the call timeout and the
// lease (leaseCtx); a failed read is reported as a Consul error.
func (s *Session) readKey(ctx context.Context, key string) (*api.KVPair, error) {
	rctx, cancel, err := s.leaseCtx(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	pair, err := s.e.get(rctx, key)
	if err != nil {
		s.e.consulError(err, ctx, s.ctx)
	}
	return pair, err
}

// replacedSeen returns why a take may not have replaced the value seen
// before it (empty: it did). The key must not have been re-created (same
// CreateIndex), and no other session may have locked it in between
// (LockIndex one above). after is the key as read after the take, or nil
// to read it now (consistent read); a failed read is a reason too.
func (s *Session) replacedSeen(ctx context.Context, seen, after *api.KVPair) string {
	if after == nil {
		var err error
		if after, err = s.readKey(ctx, s.e.lockKey); err != nil {
			return "the lock key could not be re-read after the take: " + err.Error()
		}
	}
	switch {
	case after == nil || after.Session != s.id:
		return "the lock key changed right after the take"
	case after.CreateIndex != seen.CreateIndex || after.LockIndex != seen.LockIndex+1:
		return "the lock key changed between the read and the take"
	}
	return ""
}

// tookLock records that the session holds the lock with value, unless done
// is already closed. A non-empty unclean reason starts the
// unclean-takeover wait, counted from from and reported to
// Config.OnUncleanTakeover. A Fenced session skips the wait only when the
// value it replaced was written by a Fenced replica, or the key was absent
// and the watermark key absent or written by a Fenced replica
// (fencedBefore): a previous holder in the restart mode may still run a
// node with the key file, which no fence stops.
func (s *Session) tookLock(value []byte, unclean string, from time.Time, fencedBefore bool) {
	cfg := s.e.cfg
	s.mu.Lock()
	if s.err != nil || s.held {
		s.mu.Unlock()
		return
	}
	s.held = true
	s.value = value
	if cfg.Fenced && fencedBefore {
		unclean = "" // the fence, not a wait, keeps an old leader from signing
	}
	var wait time.Duration
	if unclean != "" {
		s.signAt = from.Add(uncleanWait(cfg))
		wait = max(s.signAt.Sub(s.e.now()), 0)
	}
	s.mu.Unlock()
	if unclean != "" && cfg.OnUncleanTakeover != nil {
		cfg.OnUncleanTakeover(unclean, wait)
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
