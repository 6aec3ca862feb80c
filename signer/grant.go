package signer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Reasons a new leader raises the watermark it found in the store
// (valguard_signer_watermark_restored_total{reason}).
const (
	// restoreMissing: the watermark key does not exist.
	restoreMissing = "missing"
	// restoreLowered: the key is below what this replica knows was signed.
	restoreLowered = "lowered"
	// restoreRestartMode: the key was published by a restart-mode
	// (key-file) leader.
	restoreRestartMode = "restart_mode"
)

// lostFix is what an operator checks after a missing or lowered watermark.
const lostFix = "consul lost data, was restored from an old snapshot, or someone deleted or rewrote the key; " +
	"find out which (consul's logs, `valguard state show`), and never delete the watermark key while a replica runs"

// Grant makes this replica the signer that fences new signatures with f.
// The caller holds the lock f checks. Under the signing mutex it reads the
// watermark (consistent read, bounded by FenceTimeout) and refuses to lead
// from a watermark that is unreadable (ErrWatermark) or of another chain
// (ErrChainID). A new Revoked channel starts with each successful Grant.
//
// A missing watermark key is never taken as "nothing was signed", and one
// below what this replica knows was signed — its floor file, the
// watermark it last saw in memory, the precommit ChainFloor finds on chain
// — is never led from (Consul lost data, was restored from an old
// snapshot, or someone deleted or rewrote the key). Grant raises it as
// DESIGN's S8 prescribes for a new leader, to the highest of: the stored
// value, the floor file, the watermark in memory, ChainFloor's precommit,
// and the whole height above the chain's latest committed height
// (ChainHeight + 1, every round and step: the previous leader may have
// signed anything there). It writes the raised value back under the lock
// (a check-and-set on the index read; index 0, create-only, for a missing
// key) before it leads, logs it at error level and counts it in
// valguard_signer_watermark_restored_total{reason="missing"|"lowered"}.
// The one exception: a missing key while nothing is known at all (no
// floor, nothing in memory, no signature on chain, no block committed) is
// a new validator's first lead, from the zero watermark, as before.
//
// A watermark without a chain ID was published by a restart-mode
// (key-file) leader, as during a migration between the modes with
// replicas of both running. It says only what that leader's node had
// signed at its last publish, and the node signs on between publishes,
// so it is raised the same way (reason="restart_mode", a warning: it is
// expected during a migration). Refusing mixed modes was the other
// choice; an operator migrating a running validator expects to replace
// replicas one at a time, as the restart mode's own takeover allows, and
// the raise costs about what that takeover costs — the heights up to the
// bound ChainHeight gives (valguard run: the best known height plus
// --max-lag) — while the election makes a fenced replica that replaces a
// key-file holder wait until that holder's node has stopped.
//
// A missing or lowered watermark with ChainHeight unknown (its error) is
// not led from: the error says so and the caller tries again. Without
// ChainHeight (nil) the chain's height is left out of the raise.
func (s *Signer) Grant(ctx context.Context, f Fencer) error {
	s.lockFreeAt.Store(nil) // this replica holds the lock: park, never refuse for want of a holder
	if f == nil {
		return errors.New("lead without a fencer")
	}
	chainFloor := Watermark{ChainID: s.cfg.ChainID} // the zero watermark is below every other
	if s.cfg.ChainFloor != nil {
		h, r, err := s.cfg.ChainFloor(ctx)
		if err != nil {
			return fmt.Errorf("lead: the chain floor is unknown: %w", err)
		}
		if h > 0 {
			chainFloor = Watermark{ChainID: s.cfg.ChainID, Height: h, Round: r, Step: StepPrecommit}
		}
	}
	// Read before the mutex, used only when the watermark must be raised.
	chainTop, topErr := s.chainTop(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading {
		return ErrLeading
	}
	var wm Watermark
	var index uint64
	var err error
	for attempt := 1; ; attempt++ {
		wm, index, err = s.readRaiseLocked(ctx, f, chainFloor, chainTop, topErr)
		// Leaderless: another replica may create or raise the record
		// between this read and the write; read it again.
		if err == nil || !s.cfg.Leaderless || !errors.Is(err, ErrMoved) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return err
	}
	if err := s.raiseFloor(wm); err != nil {
		return fmt.Errorf("lead: %w", err)
	}
	s.wm, s.index = wm, index
	s.leading, s.fencer = true, f
	ch := make(chan struct{})
	s.demoted = ch
	s.demotedCh.Store(&ch)
	s.changedLocked(true)
	s.cfg.Log.Info().Str("watermark", wm.String()).Uint64("index", index).Msg("signer leading")
	return nil
}

// readRaiseLocked is Grant's read of the watermark and, when it is
// missing, lowered or the restart mode's, its raise and write-back (see
// Grant); it returns the watermark to lead from and its index.
func (s *Signer) readRaiseLocked(ctx context.Context, f Fencer, chainFloor, chainTop Watermark, topErr error) (Watermark, uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.FenceTimeout)
	value, index, err := s.cfg.Store.Read(rctx)
	cancel()
	if err != nil {
		return Watermark{}, 0, fmt.Errorf("lead: %w: read: %v", ErrWatermark, err)
	}
	wm, err := s.parseStored(value)
	if err != nil {
		return wm, 0, fmt.Errorf("lead: %w", err)
	}
	if wm.ChainID != s.cfg.ChainID {
		return wm, 0, fmt.Errorf("lead: %w: consul holds a watermark of chain %q, this node is of %q", ErrChainID, wm.ChainID, s.cfg.ChainID)
	}
	known, from := s.knownLocked(chainFloor)
	reason := ""
	switch {
	case value == nil:
		reason = restoreMissing
	case Compare(wm, known) < 0:
		reason = restoreLowered
	case !hasChainID(value):
		reason = restoreRestartMode
	}
	if reason == restoreMissing && Compare(known, Watermark{}) == 0 && topErr == nil && chainTop.Height == 0 {
		reason = "" // a new validator: nothing signed anywhere
	}
	if reason != "" {
		if topErr != nil {
			err := fmt.Errorf("lead: the watermark in consul is %s (%s) and cannot be raised above the chain until the node answers: %w",
				describe(reason), wm, topErr)
			if reason != restoreRestartMode {
				err = fmt.Errorf("%w; %s", err, belowFloorFix)
			}
			return wm, 0, err
		}
		raised := highest(wm, known, chainTop)
		if value == nil || Compare(raised, wm) > 0 {
			newIndex, err := s.writeLocked(ctx, f, raised, index)
			if err != nil {
				return wm, 0, fmt.Errorf("lead: the watermark in consul is %s (%s); writing %s back failed: %w", describe(reason), wm, raised, err)
			}
			ev := s.cfg.Log.Error().Str("fix", lostFix)
			if reason == restoreRestartMode {
				ev = s.cfg.Log.Warn()
			}
			ev.Str("reason", reason).Str("found", wm.String()).Bool("absent", value == nil).
				Str("watermark", raised.String()).Str("known", known.String()).Str("known_from", from).
				Int64("chain_height", max(chainTop.Height-1, 0)).Uint64("index", newIndex).
				Msg("watermark in consul raised above everything that may have been signed, and written back")
			s.cfg.Metrics.restoredWatermark(reason)
			wm, index = raised, newIndex
			if s.cfg.Leaderless && value == nil {
				return s.raiseAfterCreateLocked(ctx, f, wm, index)
			}
		}
	}
	return wm, index, nil
}

// raiseAfterCreateLocked re-checks, in the leaderless policy, a record
// this replica has just created (index 0, create-only) from a raise
// computed when it read the record absent: between that read and the
// create, another replica may have created it, signed above it, and the
// record been deleted again, and a create cannot tell (finding F6 in
// model/README.md). The chain's height read now bounds what was signed
// since; a record below it is raised again by check-and-set before this
// replica signs anything.
func (s *Signer) raiseAfterCreateLocked(ctx context.Context, f Fencer, wm Watermark, index uint64) (Watermark, uint64, error) {
	top, err := s.chainTop(ctx)
	if err != nil {
		return wm, 0, fmt.Errorf("lead: the sign record was created at %s; the chain's height, read again after the create, is unknown: %w", wm, err)
	}
	if Compare(top, wm) <= 0 {
		return wm, index, nil
	}
	newIndex, err := s.writeLocked(ctx, f, top, index)
	if err != nil {
		return wm, 0, fmt.Errorf("lead: the sign record created at %s is below the chain's height read after the create; raising it to %s failed: %w", wm, top, err)
	}
	s.cfg.Log.Warn().Str("created", wm.String()).Str("watermark", top.String()).Uint64("index", newIndex).
		Msg("the chain moved while the sign record was re-created: raised again above it")
	return top, newIndex, nil
}

// chainTop is the watermark that blocks the whole height above the chain's
// latest committed height (ChainHeight): every round and step of it. The
// zero watermark when no block is committed yet or ChainHeight is nil.
func (s *Signer) chainTop(ctx context.Context) (Watermark, error) {
	top := Watermark{ChainID: s.cfg.ChainID}
	if s.cfg.ChainHeight == nil {
		return top, nil
	}
	h, err := s.cfg.ChainHeight(ctx)
	switch {
	case err != nil:
		return top, fmt.Errorf("the chain's latest height is unknown: %w", err)
	case h < 0:
		return top, fmt.Errorf("the chain's latest height is unknown: negative height %d", h)
	case h > 0:
		top.Height, top.Round, top.Step = h+1, math.MaxInt32, StepPrecommit
	}
	return top, nil
}

// knownLocked is the highest watermark this replica knows was signed: its
// floor file, the watermark in memory (of this chain) and chainFloor, with
// the name of where it came from.
func (s *Signer) knownLocked(chainFloor Watermark) (Watermark, string) {
	known, from := s.Floor(), "floor file "+s.cfg.FloorFile
	if s.wm.ChainID == s.cfg.ChainID && Compare(s.wm, known) > 0 {
		known, from = s.wm, "memory"
	}
	if Compare(chainFloor, known) > 0 {
		known, from = chainFloor, "chain"
	}
	known.ChainID = s.cfg.ChainID
	return known, from
}

// writeLocked writes w to the store under the lock with f, at index (0:
// only if the key is absent), bounded by FenceTimeout, and returns the new
// index: a restore before leading, a write-back while leading. Called
// with the signing mutex held.
func (s *Signer) writeLocked(ctx context.Context, f Fencer, w Watermark, index uint64) (uint64, error) {
	value, err := json.Marshal(w)
	if err != nil {
		return 0, err
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.FenceTimeout)
	defer cancel()
	return f.Fence(fctx, value, index)
}

// highest is the highest of ws by height/round/step (the first of equals).
func highest(ws ...Watermark) Watermark {
	top := ws[0]
	for _, w := range ws[1:] {
		if Compare(w, top) > 0 {
			top = w
		}
	}
	return top
}

func describe(reason string) string {
	switch reason {
	case restoreMissing:
		return "missing"
	case restoreLowered:
		return "below what this replica knows was signed"
	}
	return "the restart mode's"
}

// hasChainID reports whether a stored watermark names its chain: the
// restart mode publishes one without.
func hasChainID(value []byte) bool {
	var probe struct {
		ChainID string `json:"chain_id"`
	}
	return json.Unmarshal(value, &probe) == nil && probe.ChainID != ""
}

// parseStored parses a watermark from the store: absent is the zero
// watermark of the signer's chain, and one without a chain ID (the restart
// mode's) is taken as of the signer's chain.
func (s *Signer) parseStored(value []byte) (Watermark, error) {
	if value == nil {
		return Watermark{ChainID: s.cfg.ChainID}, nil
	}
	wm, err := ParseWatermark(value)
	if err != nil {
		return wm, err
	}
	if wm.ChainID == "" {
		wm.ChainID = s.cfg.ChainID
	}
	return wm, nil
}
