package signer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/tidwall/sjson"

	"github.com/valguard/valguard/internal/atomicfile"
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

// raiseFloor makes w the floor, written to the floor file (atomic write,
// fsync) before it returns, if w is above the current floor. w must be of
// the signer's chain.
func (s *Signer) raiseFloor(w Watermark) error {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	if Compare(w, s.floor) <= 0 {
		return nil
	}
	data, err := json.Marshal(w)
	if err == nil {
		data, err = sjson.SetBytes(data, "address", s.address)
	}
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.cfg.FloorFile, data, 0o600); err != nil {
		return fmt.Errorf("write floor file: %w", err)
	}
	s.floor = w
	return nil
}

// Floor is the highest watermark this replica fenced or saw, as kept in
// the floor file.
func (s *Signer) Floor() Watermark {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	return s.floor
}
