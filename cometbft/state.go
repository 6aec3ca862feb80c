package cometbft

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/valguard/valguard/internal/atomicfile"
)

// SignState is the height/round/step part of a FilePV sign state: what a
// validator signed last. It is also the watermark published to Consul.
type SignState struct {
	Height int64
	Round  int32
	Step   int8
}

// Less orders sign states the way CometBFT's CheckHRS does.
func (s SignState) Less(o SignState) bool {
	if s.Height != o.Height {
		return s.Height < o.Height
	}
	if s.Round != o.Round {
		return s.Round < o.Round
	}
	return s.Step < o.Step
}

// maxState is the greatest of states.
func maxState(states ...SignState) SignState {
	var m SignState
	for _, s := range states {
		if m.Less(s) {
			m = s
		}
	}
	return m
}

// blockHeight is a state past every vote and proposal at height h: with it
// the signer refuses anything at h and signs again from h+1.
func blockHeight(h int64) SignState {
	return SignState{Height: h, Round: math.MaxInt32, Step: 3}
}

// stateJSON is priv_validator_state.json (height as a string, as cmtjson
// writes int64). Signature and sign bytes are dropped: without them the
// signer refuses the same height/round/step too.
type stateJSON struct {
	Height string `json:"height"`
	Round  int32  `json:"round"`
	Step   int8   `json:"step"`
}

// MarshalJSON writes the FilePV state format.
func (s SignState) MarshalJSON() ([]byte, error) {
	return json.Marshal(stateJSON{Height: strconv.FormatInt(s.Height, 10), Round: s.Round, Step: s.Step})
}

// UnmarshalJSON reads the FilePV state format (extra fields ignored).
func (s *SignState) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	h, err := strconv.ParseInt(j.Height, 10, 64)
	if err != nil {
		return fmt.Errorf("height %q: %w", j.Height, err)
	}
	if h < 0 || j.Step < 0 || j.Step > 3 || j.Round < 0 {
		return fmt.Errorf("sign state out of range: height %d round %d step %d", h, j.Round, j.Step)
	}
	*s = SignState{Height: h, Round: j.Round, Step: j.Step}
	return nil
}

// readState reads a sign-state file; a missing file is the zero state.
func readState(path string) (SignState, error) {
	var s SignState
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("sign state %s: %w", path, err)
	}
	return s, nil
}

// writeState persists s at path: temp file, fsync, rename, fsync dir.
func writeState(path string, s SignState) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// CompareWatermarks orders two published watermarks (the JSON sign state
// Watermark returns: height, round, step) the way CometBFT's CheckHRS
// does: -1 if a is lower than b, 0 if equal, +1 if higher. nil or empty is
// the lowest watermark (equal to the zero state). An unreadable watermark
// is an error, never ordered: a caller deciding whether a publish would
// lower the watermark must refuse rather than guess.
func CompareWatermarks(a, b []byte) (int, error) {
	parse := func(name string, w []byte) (SignState, error) {
		var s SignState
		if len(w) == 0 {
			return s, nil
		}
		if err := json.Unmarshal(w, &s); err != nil {
			return s, fmt.Errorf("watermark %s %q is unreadable: %w", name, w, err)
		}
		return s, nil
	}
	sa, err := parse("a", a)
	if err != nil {
		return 0, err
	}
	sb, err := parse("b", b)
	if err != nil {
		return 0, err
	}
	switch {
	case sa.Less(sb):
		return -1, nil
	case sb.Less(sa):
		return 1, nil
	}
	return 0, nil
}
