package signer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// signLocked signs req, fences the new watermark and, once the fence
// succeeded, makes it the watermark in memory and the floor. It reports
// false after a failed fence: the signature is dropped and the signer is
// demoted, or, still leading, it adopted an own earlier fence that applied
// late and the request must be decided again. The fence, retries
// included, ends in time for a reply before until. Called with the signing
// mutex held, while leading.
func (s *Signer) signLocked(req Request, d Decision, until time.Time) (outcome, bool) {
	sig, err := s.cfg.Key.Sign(req.SignBytes)
	if err != nil {
		return outcome{result: resultRefused, reason: "not signed: " + err.Error(), refusal: RefusalFailed}, true
	}
	next := Watermark{ChainID: req.ChainID, Height: req.Height, Round: req.Round, Step: req.Step, SignBytes: req.SignBytes, Signature: sig}
	value, err := json.Marshal(next)
	if err != nil {
		return outcome{result: resultRefused, reason: "watermark not encoded: " + err.Error(), refusal: RefusalFailed}, true
	}
	start := time.Now()
	index, attempts, err := s.fenceLocked(value, until)
	took := time.Since(start)
	s.cfg.Metrics.fenceRetried(attempts - 1)
	var late *ownLateFence
	if errors.As(err, &late) {
		s.cfg.Metrics.fenced(took, "moved")
		if ferr := s.raiseFloor(late.wm); ferr != nil {
			s.cfg.Metrics.fenced(0, "error")
			s.demoteLocked(ferr)
			return outcome{}, false
		}
		if late.race {
			s.racesLost.Add(1)
			s.cfg.Metrics.raced(false)
			s.cfg.Log.Info().Str("watermark", late.wm.String()).Uint64("index", late.index).Int64("height", req.Height).
				Int32("round", req.Round).Int8("step", req.Step).
				Msg("another replica's signature (or an own earlier check-and-set of unknown outcome) reached the sign record first: adopted, the request is decided again")
		} else {
			s.cfg.Log.Warn().Str("watermark", late.wm.String()).Uint64("index", late.index).Int64("height", req.Height).
				Msg("an own earlier fence applied late: adopted, the request is decided again")
		}
		s.wm, s.index = late.wm, late.index
		s.changedLocked(true)
		return outcome{}, false
	}
	if errors.Is(err, errUnresolved) {
		// Consul did not say, and the reply is due: the signature stays
		// here and the request parks; the node asks again, and the next
		// fence (at the same index) settles it. The lease, not this
		// fence, decides whether this replica still leads.
		s.cfg.Metrics.fenced(took, "unknown")
		s.cfg.Log.Warn().Err(err).Int("attempts", attempts).Int64("height", req.Height).
			Msg("fence outcome still unknown when the reply was due; the request parks, leadership stays with the lease")
		return outcome{result: resultParked, reason: "fence outcome unknown: " + err.Error()}, true
	}
	if err != nil {
		reason := "error"
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			reason = "timeout"
		case errors.Is(err, context.Canceled):
			reason = "canceled"
		}
		s.cfg.Metrics.fenced(took, reason)
		s.demoteLocked(err)
		return outcome{}, false
	}
	s.cfg.Metrics.fenced(took, "")
	if attempts > 1 {
		s.cfg.Log.Warn().Int("attempts", attempts).Dur("fence_took", took).Int64("height", req.Height).
			Msg("fence outcome was unknown; resolved by reading the watermark back")
	}
	s.wm, s.index = next, index
	s.changedLocked(true)
	if s.cfg.Leaderless {
		s.racesWon.Add(1)
		s.cfg.Metrics.raced(true)
	}
	return outcome{result: resultSigned, sig: sig, ts: req.Timestamp, ext: d.Extension, fenceTook: took, floor: next, term: s.term}, true
}

// floorAfterFence writes the fenced watermark to the floor file before the
// signature is returned (persist before acting), outside the signing
// mutex: a slow disk delays this reply only, never Revoke, so the lock can
// still be released. A write that fails, or does not end within
// FloorTimeout (a hung fsync), turns the outcome into a refusal — the
// signature never leaves without its floor — and steps the leadership
// that fenced down: the watermark in Consul holds the signature, and the
// next leader's node gets it from there. It leaves the next leader's take
// to the lease; this replica's own Grant fails while the write hangs.
func (s *Signer) floorAfterFence(o *outcome) {
	start := time.Now()
	err := s.raiseFloor(o.floor)
	o.floorTook = time.Since(start)
	if err == nil {
		return
	}
	s.cfg.Log.Error().Err(err).Str("watermark", o.floor.String()).Dur("floor_took", o.floorTook).
		Msg("floor file not written after a fence: request refused, leader steps down")
	term := o.term
	*o = outcome{result: resultRefused, reason: "fenced, but the floor file was not written: " + err.Error(), refusal: RefusalFailed,
		fenceTook: o.fenceTook, floorTook: o.floorTook}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading && s.term == term {
		s.demoteLocked(fmt.Errorf("floor file not written after a fence: %w", err))
	}
}
