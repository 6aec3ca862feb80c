package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// fenceRetryPause is the pause before each read that resolves an unknown
// fence outcome.
const fenceRetryPause = 100 * time.Millisecond

// errUnresolved: a fence outcome still unknown when the reply was due.
var errUnresolved = errors.New("fence outcome unresolved")

// ownLateFence is what fenceLocked returns when the watermark moved under
// this leader's lock to another value of its own: an earlier fence whose
// outcome was unknown applied late.
type ownLateFence struct {
	wm    Watermark
	index uint64
	// race: the leaderless policy's lost race; the value may be another
	// replica's.
	race bool
}

func (o *ownLateFence) Error() string {
	if o.race {
		return fmt.Sprintf("the sign record moved to %s at index %d", o.wm, o.index)
	}
	return fmt.Sprintf("an own earlier fence applied late: watermark %s at index %d", o.wm, o.index)
}

// fenceLocked fences value at the watermark's index. An outcome the
// fencer reports unknown (ErrOutcomeUnknown: a timeout, Consul between two
// Raft leaders) or a refusal because the watermark moved (ErrMoved: the
// lock check passed) is resolved with a consistent read rather than taken
// as a refusal:
//
//   - a read that finds value stored means the fence was applied, under
//     the lock (the transaction checked the session when it applied) —
//     but for the leaderless policy's refusal (ErrMoved), where another
//     replica may have stored the same value: a lost race;
//   - after an unknown outcome, one that finds the watermark still at its
//     index means it was not applied, or not yet, and the same value is
//     fenced again at the same index — a check-and-set that cannot apply
//     twice, carrying the same signature, so whichever attempt lands, one
//     signature exists for the height/round/step;
//   - one that finds another value is settled by otherValueLocked: this
//     leader's own earlier fence applied late (adopted: ownLateFence), or
//     another leader's (the error stands).
//
// A read that fails is made again, never taken as a refusal: a leader does
// not step down because Consul was slow to answer a read. This goes on
// while a read and one more fence fit before until, then ends with
// errUnresolved (the request parks, the leader stays: the lease decides).
// Any other error ends it at once. It returns the new index and the number
// of fence transactions sent.
func (s *Signer) fenceLocked(value []byte, until time.Time) (index uint64, attempts int, err error) {
	for {
		if attempts > 0 && s.cfg.Now().Add(s.cfg.FenceTimeout).After(until) {
			return 0, attempts, fmt.Errorf("%w after %d attempts: %w", errUnresolved, attempts, err)
		}
		attempts++
		fctx, cancel := context.WithTimeout(context.Background(), s.cfg.FenceTimeout)
		index, err = s.fencer.Fence(fctx, value, s.index)
		cancel()
		moved := errors.Is(err, ErrMoved)
		if err == nil || !moved && !errors.Is(err, ErrOutcomeUnknown) {
			return index, attempts, err
		}
		if !moved {
			s.noteUnsureLocked(value)
		}
		// ErrMoved is read back at once (an own late fence is the common
		// cause); an unknown outcome after a pause.
		stored, at, rerr := s.readBackLocked(until, moved)
		switch {
		case rerr != nil:
			return 0, attempts, fmt.Errorf("%w after %d attempts: %w; %w", errUnresolved, attempts, err, rerr)
		case bytes.Equal(stored, value) && !(moved && s.cfg.Leaderless):
			// Applied. Under --signers any a refused check-and-set (its
			// index was stale) that finds its very value did not apply:
			// another replica signed the same vote first (a signature is
			// a function of the sign bytes), or an own earlier attempt of
			// unknown outcome landed; it is a lost race (below).
			return at, attempts, nil
		case !moved && at == s.index:
			continue // not applied: fence again
		case stored == nil && s.index != 0 && !s.cfg.Leaderless:
			// The key was deleted while this replica leads. (Under
			// --signers any other replicas sign too and this memory may
			// miss their last signatures: lostRaceLocked stops instead.)
			attempts++
			if werr := s.writeBackLocked(); werr != nil {
				return 0, attempts, werr
			}
			continue // fence at the key's new index
		case at != s.index && s.holdsMemoryLocked(stored):
			// The key holds the watermark in memory at another index: an
			// own write-back that applied late. Fencing over it loses
			// nothing; the transaction still checks the lock.
			s.index = at
			continue
		case s.cfg.Leaderless:
			lost, rerr := s.lostRaceLocked(stored, at, err)
			if rerr != nil {
				return 0, attempts, rerr
			}
			return 0, attempts, lost
		}
		return 0, attempts, s.otherValueLocked(stored, at, moved, err)
	}
}

// writeBackLocked re-creates the watermark key, found absent while this
// replica leads (deleted by hand, or Consul lost it), with the watermark
// held in memory: a create-only fence (index 0) under the lock, so that
// the key never reads as "nothing signed" (docs/design.md, S8 and S11) and the
// validator goes on signing. It logs at error level and counts in
// valguard_signer_watermark_written_back_total. A write-back whose outcome
// is unknown, or a key created meanwhile, is left to fenceLocked's next
// read; any other refusal is returned (the leader steps down).
func (s *Signer) writeBackLocked() error {
	s.cfg.Metrics.wroteBack()
	ev := s.cfg.Log.Error().Str("watermark", s.wm.String()).Uint64("was_index", s.index).
		Str("fix", "never delete the watermark key while a replica runs; check who did (consul's logs), or whether consul lost data")
	index, err := s.writeLocked(context.Background(), s.fencer, s.wm, 0)
	switch {
	case err == nil:
		ev.Uint64("index", index).Msg("watermark key absent in consul while leading: wrote back the watermark held in memory")
		s.index = index
		return nil
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrMoved):
		ev.AnErr("write_back_err", err).Msg("watermark key absent in consul while leading: writing back the watermark held in memory, outcome not known yet")
		return nil
	}
	ev.AnErr("write_back_err", err).Msg("watermark key absent in consul while leading: the write-back was refused")
	return fmt.Errorf("the watermark key is absent in consul; writing back %s failed: %w", s.wm, err)
}

// lostRaceLocked settles, in the leaderless policy, a check-and-set (failed
// with ferr) after which the sign record holds another value than the one
// sent, at index at. Only check-and-sets write the record, so the value is
// another replica's signature that came first (or an own one of an
// earlier unknown outcome; the same thing for the rule): one above the
// watermark in memory is returned to be adopted, and the request is
// decided again against it — re-served with its signature and timestamp,
// or refused. The value sent can no longer apply (its index is gone), so
// no signature of it exists. Anything else is an error, and the signer
// stops signing (lostRecordLocked).
func (s *Signer) lostRaceLocked(stored []byte, at uint64, ferr error) (*ownLateFence, error) {
	wm, err := s.parseStored(stored)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w; the sign record read back: %v", ferr, err)
	case wm.ChainID != s.cfg.ChainID:
		return nil, fmt.Errorf("%w; the sign record read back is of chain %q", ferr, wm.ChainID)
	case stored != nil && Compare(wm, s.wm) > 0:
		return &ownLateFence{wm: wm, index: at, race: true}, nil
	case stored != nil && Compare(wm, s.wm) == 0:
		return nil, fmt.Errorf("%w; the sign record holds other data at %s than the %s this replica saw committed: it was rewritten, not by a check-and-set of a signer", ferr, wm, s.wm)
	}
	return nil, s.lostRecordLocked(stored, ferr)
}

// lostRecordLocked is the error for a sign record found absent, or below
// the watermark in memory, by a leaderless signer: deleted by hand, or
// Consul lost data or was rolled back. It is never written back from
// memory — other replicas may have committed (and given out) signatures
// this replica has not seen yet, which a record re-created from its
// memory would let it sign over — and never taken as history (S11): the
// signer stops signing (demoted), and its next Grant raises the record
// above everything that may have been signed (its floor file, the
// chain's floor and the whole height above the chain's latest) and
// writes it back, as S8 says.
func (s *Signer) lostRecordLocked(stored []byte, ferr error) error {
	reason := restoreLowered
	if stored == nil {
		reason = restoreMissing
	}
	s.cfg.Metrics.lostWatermark(reason)
	s.cfg.Log.Error().Str("reason", reason).Bool("absent", stored == nil).Str("watermark", s.wm.String()).Str("fix", lostFix).
		Msg("sign record in consul missing or below what this replica saw committed: signing stops until a new grant raises it above the chain")
	return fmt.Errorf("%w; the sign record is %s in consul: not written back from memory (other replicas sign too); the next grant raises it", ferr, describe(reason))
}

// holdsMemoryLocked reports whether stored is the watermark in memory.
func (s *Signer) holdsMemoryLocked(stored []byte) bool {
	if stored == nil {
		return false
	}
	wm, err := s.parseStored(stored)
	return err == nil && wm.Equal(s.wm)
}

// readBackLocked reads the watermark to settle a fence's outcome. A read
// that fails is made again after fenceRetryPause; every read but a first
// one made at once (now) waits for the pause and is made only while it and
// one more fence fit before until. It returns an error only when no time is
// left, naming the last read's failure.
func (s *Signer) readBackLocked(until time.Time, now bool) (stored []byte, index uint64, err error) {
	var last error
	for first := true; ; first = false {
		if !first || !now {
			if s.cfg.Now().Add(fenceRetryPause + 2*s.cfg.FenceTimeout).After(until) {
				if last == nil {
					return nil, 0, errors.New("no time left to read the watermark back")
				}
				return nil, 0, fmt.Errorf("the watermark could not be read back: %w", last)
			}
			time.Sleep(fenceRetryPause)
		}
		rctx, cancel := context.WithTimeout(context.Background(), s.cfg.FenceTimeout)
		stored, index, err = s.cfg.Store.Read(rctx)
		cancel()
		if err == nil {
			return stored, index, nil
		}
		last = err
	}
}

// otherValueLocked settles a fence (failed with ferr) after which the
// watermark holds another value than the one fenced, at index at. Under
// this leader's lock only this leader fences (Grant read the watermark after
// the take), so the value is an own earlier fence that applied late when
// the lock check passed (lockChecked: ErrMoved), or when it is one of the
// values this leader sent with an unknown outcome at the same index
// (noteUnsureLocked): above the watermark in memory, it is adopted
// (ownLateFence). Anything else — another leader's value after an unknown
// outcome, a value not above, one that does not parse — stands as the
// refusal.
func (s *Signer) otherValueLocked(stored []byte, at uint64, lockChecked bool, ferr error) error {
	if !lockChecked && !s.sentLocked(stored) {
		return fmt.Errorf("%w; the watermark then moved to index %d with other data: another leader fenced", ferr, at)
	}
	wm, err := s.parseStored(stored)
	if err != nil {
		return fmt.Errorf("%w; read back: %v", ferr, err)
	}
	if wm.ChainID != s.cfg.ChainID || Compare(wm, s.wm) <= 0 {
		return fmt.Errorf("%w; read back %s, not above %s", ferr, wm, s.wm)
	}
	return &ownLateFence{wm: wm, index: at}
}

// maxUnsure bounds the values remembered by noteUnsureLocked.
const maxUnsure = 32

// noteUnsureLocked remembers value, fenced at the watermark's index with
// an unknown outcome: it may still land (Raft applies it late), and one
// found stored later is this leader's own (sentLocked). The list restarts
// whenever the index moves: a check-and-set at an older index can no
// longer apply.
func (s *Signer) noteUnsureLocked(value []byte) {
	if s.unsureAt != s.index {
		s.unsure, s.unsureAt = nil, s.index
	}
	if s.sentLocked(value) {
		return
	}
	if len(s.unsure) == maxUnsure {
		s.unsure = s.unsure[1:]
	}
	s.unsure = append(s.unsure, bytes.Clone(value))
}

// sentLocked reports whether value is one this leader fenced at the
// watermark's index with an unknown outcome.
func (s *Signer) sentLocked(value []byte) bool {
	if s.unsureAt != s.index {
		return false
	}
	for _, v := range s.unsure {
		if bytes.Equal(v, value) {
			return true
		}
	}
	return false
}
