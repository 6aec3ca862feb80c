package election

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

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
