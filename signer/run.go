package signer

import (
	"context"
	"sync"
	"time"
)

const (
	// watchRetry is the pause after a failed watch.
	watchRetry = 500 * time.Millisecond
	// parkGap: a node whose last parked request ended this long ago and
	// sent none since is no longer waiting (it re-sends within about
	// 100 ms of a ping reply).
	parkGap = time.Second
	// deposeTimeout bounds one Depose call.
	deposeTimeout = 5 * time.Second
)

// Run follows the watermark in the Store (blocking queries), so a standby
// re-serves and parks against a fresh watermark and raises its floor file,
// wakes parked requests when it moves, and, with DeposeAfter, runs the
// deposition check. It returns nil when ctx is done.
func (s *Signer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if s.cfg.DeposeAfter > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.deposeLoop(ctx)
		}()
	}
	if s.cfg.LockFree != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.lockFreeLoop(ctx)
		}()
	}
	s.watchLoop(ctx)
	wg.Wait()
	return nil
}

func (s *Signer) watchLoop(ctx context.Context) {
	var index uint64
	lost := "" // why the watermark in consul is below this replica's, if it is
	for ctx.Err() == nil {
		value, next, err := s.cfg.Store.Watch(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.cfg.Log.Warn().Err(err).Msg("watermark watch failed")
			sleep(ctx, watchRetry)
			continue
		}
		// Consul's blocking-query rules: an index that went backwards
		// restarts from 0; never wait on index 0 twice.
		switch {
		case next < index:
			index = 0
		case next == 0:
			index = 1
		default:
			index = next
		}
		lost = s.observe(value, next, lost)
	}
}

// observe takes a watermark seen in the store. A standby adopts it and
// wakes its parked requests; the leader keeps its own (only its fences
// write the key while it holds the lock). In the leaderless policy a
// signing replica adopts a record above its own, with its index (every
// replica writes the record). The floor rises either way.
//
// A watermark key of this chain that is missing, or below the watermark
// in memory, is never adopted: a missing key is not "nothing was signed"
// and a lower one is not what was signed (Consul lost data, or someone
// deleted or rewrote the key). The replica keeps the watermark it holds,
// so it goes on refusing and re-serving against what it saw, and a new
// leader raises the key again (Grant). It returns why the key is below
// ("missing", "lowered"; empty when it is not), and logs at error level
// and counts valguard_signer_watermark_lost_total when that reason
// differs from prev, the one of the last call, so a key that stays gone
// is reported once. A value read before this replica's own last fence (an
// answer on its way while it still led) is older than what it holds: not
// adopted, and not a loss.
func (s *Signer) observe(value []byte, index uint64, prev string) string {
	wm, err := s.parseStored(value)
	if err != nil {
		s.cfg.Log.Error().Err(err).Msg("watermark in consul unreadable; kept the one in memory")
		return prev
	}
	if wm.ChainID != s.cfg.ChainID {
		s.cfg.Log.Error().Str("chain_id", wm.ChainID).Msg("watermark in consul is of another chain; every request is refused")
	}
	held, lost, stale := s.adopt(wm, value == nil, index)
	if lost != "" && lost != prev {
		s.cfg.Metrics.lostWatermark(lost)
		s.cfg.Log.Error().Str("reason", lost).Str("watermark", wm.String()).Bool("absent", value == nil).
			Str("kept", held.String()).Uint64("index", index).Str("fix", lostFix).
			Msg("watermark in consul went missing or down; kept the one in memory, the next leader raises it")
	}
	if wm.ChainID == s.cfg.ChainID {
		if err := s.raiseFloor(wm); err != nil {
			s.cfg.Log.Error().Err(err).Str("watermark", wm.String()).Msg("floor file not raised")
		}
	}
	if stale {
		return prev
	}
	return lost
}

// adopt is observe's decision under the signing mutex (released however
// it ends): a standby adopts wm unless it is below the watermark held
// (lost: why it is not; stale: a value read before this replica's own last
// fence). held is the watermark held before.
func (s *Signer) adopt(wm Watermark, absent bool, index uint64) (held Watermark, lost string, stale bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held = s.wm
	below := held.ChainID == s.cfg.ChainID && wm.ChainID == s.cfg.ChainID && Compare(wm, held) < 0
	stale = below && index != 0 && index <= s.index
	switch {
	case stale:
	case below && absent:
		lost = restoreMissing
	case below:
		lost = restoreLowered
	case !s.leading && !wm.Equal(s.wm):
		s.wm = wm
		s.changedLocked(true)
	case s.cfg.Leaderless && !absent && Compare(wm, held) > 0:
		// Another replica's signature: the next request at or below it
		// is decided against it without a check-and-set first, and the
		// next check-and-set goes at its index.
		s.wm, s.index = wm, index
		s.changedLocked(true)
	}
	return held, lost, stale
}

// deposeLoop checks the deposition rule a few times per DeposeAfter.
func (s *Signer) deposeLoop(ctx context.Context) {
	every := min(s.cfg.DeposeAfter/4, 250*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var seen holderSeen
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.maybeDepose(ctx, &seen)
		}
	}
}

// holderSeen is the lock holder a standby saw during one park above an
// unmoved watermark.
type holderSeen struct {
	park   time.Time // the park (its start) the holder was seen in
	looked bool      // Holder was read in this park
	id     string    // the holder read ("": none, or this replica)
	at     time.Time // when id was first read in this park
}

// maybeDepose destroys the session of a stale holder: one seen holding the
// lock while this standby's own node has been parked above a watermark
// that has not moved for longer than DeposeAfter, with the node synced,
// and this replica having neither led nor deposed within DeposeHoldoff.
// It reports whether it deposed.
//
// The holder is read (Holder) once half of DeposeAfter into the park, and
// again when the deposition is due; only a holder read both times, at
// least DeposeAfter/2 apart, is deposed, and only that session, by its ID
// (Depose): a lock that changed hands since is left alone, and a new
// holder gets DeposeAfter/2 from when it was first seen to sign. Never
// this replica's own session (Holder reports none for it).
func (s *Signer) maybeDepose(ctx context.Context, seen *holderSeen) bool {
	now := s.cfg.Now()
	since, wm, ok := s.deposable(now)
	if !ok {
		*seen = holderSeen{}
		return false
	}
	if seen.park != since {
		*seen = holderSeen{park: since}
	}
	after, half := s.cfg.DeposeAfter, s.cfg.DeposeAfter/2
	parked := now.Sub(since)
	first := !seen.looked || (seen.id == "" && now.Sub(seen.at) >= half)
	if parked <= half || (!first && (parked <= after || now.Sub(seen.at) < half || !s.cfg.Synced())) {
		return false
	}
	hctx, cancel := context.WithTimeout(ctx, deposeTimeout)
	holder, err := s.cfg.Holder(hctx)
	cancel()
	if err != nil {
		s.cfg.Log.Warn().Err(err).Str("watermark", wm.String()).Msg("deposition: lock holder unreadable")
		return false
	}
	if first || holder != seen.id {
		if !first {
			s.cfg.Log.Info().Str("holder", holder).Str("was", seen.id).Str("watermark", wm.String()).
				Msg("deposition: the lock changed hands during the park; the new holder is given time to sign")
		}
		*seen = holderSeen{park: since, looked: true, id: holder, at: now}
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, deposeTimeout)
	deposed, err := s.cfg.Depose(dctx, holder)
	cancel()
	if err != nil {
		s.cfg.Log.Error().Err(err).Str("holder", holder).Str("watermark", wm.String()).Msg("deposition failed")
		sleep(ctx, watchRetry)
		return false
	}
	if !deposed {
		s.cfg.Log.Info().Str("holder", holder).Str("watermark", wm.String()).
			Msg("deposition: the holder no longer holds the lock; nothing destroyed")
		*seen = holderSeen{park: since}
		return false
	}
	s.mu.Lock()
	s.deposeAt = s.cfg.Now() // nothing here can panic
	s.mu.Unlock()
	s.cfg.Metrics.deposed()
	s.cfg.Log.Warn().Str("holder", holder).Str("watermark", wm.String()).Dur("parked", now.Sub(since)).
		Msg("deposed the holder: own node parked above a watermark that did not move")
	return true
}

// lockFreeEvery is how often a standby reads whether the lock is free.
const lockFreeEvery = time.Second

// lockFreeLoop reads LockFree every lockFreeEvery while this replica does
// not lead; a failed read counts as held (requests park, as they always
// did).
func (s *Signer) lockFreeLoop(ctx context.Context) {
	t := time.NewTicker(lockFreeEvery)
	defer t.Stop()
	for {
		if !s.Leading() {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.FenceTimeout)
			free, err := s.cfg.LockFree(rctx)
			cancel()
			// Stored only if this replica still does not lead: a Grant
			// that began during the read cleared it, and must not find a
			// stale "free" after it.
			if err == nil && free && !s.Leading() {
				now := s.cfg.Now()
				s.lockFreeAt.Store(&now)
			} else {
				s.lockFreeAt.Store(nil)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// inElection reports whether this replica takes part in the election
// (Config.Synced): it may take the free lock any moment and answer its
// node's parked request itself, so that request parks (refused, the step
// would be lost to its node, which with a third of the power stalls the
// chain until a recovery restart).
func (s *Signer) inElection() bool {
	return s.cfg.Synced != nil && s.cfg.Synced()
}

// lockFree reports whether the last read of LockFree, at most two periods
// old, said no session holds the lock.
func (s *Signer) lockFree() bool {
	at := s.lockFreeAt.Load()
	return at != nil && s.cfg.Now().Sub(*at) < 2*lockFreeEvery
}

// deposable reads, under the signing mutex (released however it ends),
// whether this standby's parked requests allow a deposition now: since is
// when the park began, wm the watermark held.
func (s *Signer) deposable(now time.Time) (since time.Time, wm Watermark, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting := s.parking > 0 || now.Sub(s.lastParkEnd) < parkGap
	if !waiting {
		s.parkSince = time.Time{}
	}
	since = s.parkSince
	ok = !s.leading && waiting && !since.IsZero() &&
		(s.leftAt.IsZero() || now.Sub(s.leftAt) > s.cfg.DeposeHoldoff) &&
		(s.deposeAt.IsZero() || now.Sub(s.deposeAt) > s.cfg.DeposeHoldoff)
	return since, s.wm, ok
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
