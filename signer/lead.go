package signer

import (
	"context"
	"errors"
	"fmt"
)

// Lead makes this replica the signer that fences new signatures with f.
// The caller holds the lock f checks. Under the signing mutex it reads the
// watermark (consistent read, bounded by FenceTimeout) and refuses to lead
// from a watermark that is unreadable (ErrWatermark), of another chain
// (ErrChainID), or below the floor file, the watermark last seen in
// memory or ChainFloor's height (ErrBelowFloor). A new Demoted channel
// starts with each successful Lead.
func (s *Signer) Lead(ctx context.Context, f Fencer) error {
	if f == nil {
		return errors.New("lead without a fencer")
	}
	var chainFloor Watermark // the zero watermark is below every other
	if s.cfg.ChainFloor != nil {
		h, r, err := s.cfg.ChainFloor(ctx)
		if err != nil {
			return fmt.Errorf("lead: the chain floor is unknown: %w", err)
		}
		if h > 0 {
			chainFloor = Watermark{Height: h, Round: r, Step: StepPrecommit}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading {
		return ErrLeading
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.FenceTimeout)
	value, index, err := s.cfg.Store.Read(rctx)
	cancel()
	if err != nil {
		return fmt.Errorf("lead: %w: read: %v", ErrWatermark, err)
	}
	wm, err := s.parseStored(value)
	if err != nil {
		return fmt.Errorf("lead: %w", err)
	}
	if wm.ChainID != s.cfg.ChainID {
		return fmt.Errorf("lead: %w: consul holds a watermark of chain %q, this node is of %q", ErrChainID, wm.ChainID, s.cfg.ChainID)
	}
	if floor := s.Floor(); Compare(wm, floor) < 0 {
		return fmt.Errorf("lead: %w: consul's watermark %s is below %s, the highest this replica fenced or saw (floor file %s): %s",
			ErrBelowFloor, wm, floor, s.cfg.FloorFile, belowFloorFix)
	}
	if s.wm.ChainID == s.cfg.ChainID && Compare(wm, s.wm) < 0 {
		return fmt.Errorf("lead: %w: consul's watermark %s is below %s, seen from consul before: %s", ErrBelowFloor, wm, s.wm, belowFloorFix)
	}
	if Compare(wm, chainFloor) < 0 {
		return fmt.Errorf("lead: %w: consul's watermark %s is below the precommit at height %d round %d, which the chain shows this validator signed: %s",
			ErrBelowFloor, wm, chainFloor.Height, chainFloor.Round, belowFloorFix)
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
