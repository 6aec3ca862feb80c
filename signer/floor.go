package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tidwall/sjson"
)

// ErrBelowFloor: the watermark in Consul is below what this replica fenced
// or saw before (the floor file), or below the last height the chain shows
// this validator's signature at. Consul lost data or was restored from an
// old snapshot; leading from it could sign twice.
var ErrBelowFloor = errors.New("the watermark in consul is below the floor")

// belowFloorFix is what an operator does about ErrBelowFloor.
const belowFloorFix = "consul lost data or was restored from an old snapshot; check consul, " +
	"then write the newest known sign state with `valguard state import` before any replica leads"

// floorJSON is the floor file: the watermark, plus the address of the
// validator it belongs to.
type floorJSON struct {
	Address string `json:"address"`
}

// loadFloor reads the floor file at path. A missing file is the zero
// floor of chainID (a replica that never fenced or saw a watermark); an
// unreadable one, or one of another chain or another validator, is an
// error.
func loadFloor(path, chainID, address string) (Watermark, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Watermark{ChainID: chainID}, nil
	}
	if err != nil {
		return Watermark{}, fmt.Errorf("floor file: %w", err)
	}
	w, err := ParseWatermark(data)
	if err != nil {
		return Watermark{}, fmt.Errorf("floor file %s: %w", path, err)
	}
	if w.ChainID == "" {
		w.ChainID = chainID
	}
	if w.ChainID != chainID {
		return Watermark{}, fmt.Errorf("floor file %s is of chain %q, not %q", path, w.ChainID, chainID)
	}
	var f floorJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return Watermark{}, fmt.Errorf("floor file %s: %w", path, err)
	}
	if f.Address != "" && f.Address != address {
		return Watermark{}, fmt.Errorf("floor file %s belongs to validator %s, not to this key's %s: "+
			"this node home signed for another validator; give it the right key, or move the file aside if that validator is retired", path, f.Address, address)
	}
	return w, nil
}

// ErrFloorTimeout: a floor file write did not end within FloorTimeout (a
// hung disk or state directory). The write goes on in the background.
var ErrFloorTimeout = errors.New("floor file write did not end in time")

// raiseFloor makes w the floor, written to the floor file (atomic write,
// fsync) before it returns, if w is above the current floor. w must be of
// the signer's chain. The wait is bounded by FloorTimeout, counted from the
// call: past it, it returns an error wrapping ErrFloorTimeout and leaves
// the write (its own, or an earlier one it waited behind) running; the
// floor in memory rises only once a write has ended, so Floor never says
// more than the file holds. Failures count in
// valguard_signer_floor_failures_total.
func (s *Signer) raiseFloor(w Watermark) error {
	if Compare(w, s.Floor()) <= 0 {
		return nil
	}
	data, err := json.Marshal(w)
	if err == nil {
		data, err = sjson.SetBytes(data, "address", s.address)
	}
	if err != nil {
		return err
	}
	timer := time.NewTimer(s.cfg.FloorTimeout)
	defer timer.Stop()
	timedOut := func(what string) error {
		s.cfg.Metrics.floorFailed("timeout")
		return fmt.Errorf("%w: %s %s did not end within %v: check the disk of the state directory",
			ErrFloorTimeout, what, s.cfg.FloorFile, s.cfg.FloorTimeout)
	}
	select {
	case s.floorWrite <- struct{}{}:
	case <-timer.C:
		return timedOut("an earlier write of the floor file")
	}
	if Compare(w, s.Floor()) <= 0 { // raised meanwhile
		<-s.floorWrite
		return nil
	}
	done := make(chan error, 1)
	go func() {
		err := s.cfg.writeFile(s.cfg.FloorFile, data, 0o600)
		if err == nil {
			s.floorMu.Lock()
			if Compare(w, s.floor) > 0 {
				s.floor = w
			}
			s.floorMu.Unlock()
		}
		<-s.floorWrite
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			s.cfg.Metrics.floorFailed("error")
			return fmt.Errorf("write floor file: %w", err)
		}
		return nil
	case <-timer.C:
		return timedOut("the write of the floor file")
	}
}

// Floor is the highest watermark this replica fenced or saw, as kept in
// the floor file.
func (s *Signer) Floor() Watermark {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	return s.floor
}
