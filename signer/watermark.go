package signer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
)

// Steps, numbered as CometBFT's FilePV numbers them in
// priv_validator_state.json.
const (
	StepPropose   int8 = 1
	StepPrevote   int8 = 2
	StepPrecommit int8 = 3
)

// ErrWatermark: a watermark or state file could not be read or parsed.
var ErrWatermark = errors.New("unreadable watermark")

// Watermark is the last height/round/step signed for a validator, with the
// sign bytes and the signature given out for it. Under the fence it is the
// value of the watermark key; on disk it is the floor file. The zero
// Watermark (of a chain) is below every request.
type Watermark struct {
	ChainID   string
	Height    int64
	Round     int32
	Step      int8
	SignBytes []byte
	Signature []byte
}

// watermarkJSON is priv_validator_state.json plus chain_id: height as a
// string (as cmtjson writes int64), signature in base64, sign bytes in
// upper-case hex (cmtbytes.HexBytes).
type watermarkJSON struct {
	ChainID   string            `json:"chain_id"`
	Height    string            `json:"height"`
	Round     int32             `json:"round"`
	Step      int8              `json:"step"`
	Signature []byte            `json:"signature,omitempty"`
	SignBytes cmtbytes.HexBytes `json:"signbytes,omitempty"`
}

// MarshalJSON writes the priv_validator_state.json shape plus chain_id.
func (w Watermark) MarshalJSON() ([]byte, error) {
	return json.Marshal(watermarkJSON{
		ChainID: w.ChainID, Height: strconv.FormatInt(w.Height, 10), Round: w.Round, Step: w.Step,
		Signature: w.Signature, SignBytes: w.SignBytes,
	})
}

// UnmarshalJSON reads the priv_validator_state.json shape, with or without
// chain_id, signature and sign bytes (the restart mode's watermark has
// height, round and step only). Unknown fields are ignored. A watermark
// out of range, or with sign bytes but no signature (or the reverse), is
// an error wrapping ErrWatermark.
func (w *Watermark) UnmarshalJSON(b []byte) error {
	var j watermarkJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: %v", ErrWatermark, err)
	}
	h, err := strconv.ParseInt(j.Height, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: height %q: %v", ErrWatermark, j.Height, err)
	}
	v := Watermark{ChainID: j.ChainID, Height: h, Round: j.Round, Step: j.Step, Signature: j.Signature, SignBytes: j.SignBytes}
	if err := v.check(); err != nil {
		return err
	}
	*w = v
	return nil
}

// check reports a watermark no signer could have written.
func (w Watermark) check() error {
	if w.Height < 0 || w.Round < 0 || w.Step < 0 || w.Step > StepPrecommit {
		return fmt.Errorf("%w: out of range: height %d round %d step %d", ErrWatermark, w.Height, w.Round, w.Step)
	}
	if (len(w.SignBytes) == 0) != (len(w.Signature) == 0) {
		return fmt.Errorf("%w: height %d round %d step %d has sign bytes or a signature without the other",
			ErrWatermark, w.Height, w.Round, w.Step)
	}
	return nil
}

// ParseWatermark parses a watermark key's value (see UnmarshalJSON).
func ParseWatermark(b []byte) (Watermark, error) {
	var w Watermark
	err := json.Unmarshal(b, &w)
	return w, err
}

// tmkmsState is a tmkms state file (src/chain/state/encoding.rs): height
// and round as strings, step 0 proposal, 1 prevote, 2 precommit, and the
// block ID, which carries no signature.
type tmkmsState struct {
	Height string          `json:"height"`
	Round  string          `json:"round"`
	Step   int8            `json:"step"`
	Block  json.RawMessage `json:"block_id"`
}

// ParseState reads a sign state from another signer: a FilePV
// priv_validator_state.json (with or without chain_id), or a tmkms state
// file, told apart by its round written as a string. A tmkms state has no
// sign bytes, so its height/round/step is then refused too (only higher
// ones can be signed), and its chain ID is empty: the caller knows which
// chain the file belongs to.
func ParseState(b []byte) (Watermark, error) {
	var probe struct {
		Round json.RawMessage `json:"round"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Watermark{}, fmt.Errorf("%w: %v", ErrWatermark, err)
	}
	if len(probe.Round) == 0 || probe.Round[0] != '"' {
		return ParseWatermark(b)
	}
	var t tmkmsState
	if err := json.Unmarshal(b, &t); err != nil {
		return Watermark{}, fmt.Errorf("%w: tmkms state: %v", ErrWatermark, err)
	}
	h, err := strconv.ParseInt(t.Height, 10, 64)
	if err != nil {
		return Watermark{}, fmt.Errorf("%w: tmkms state: height %q: %v", ErrWatermark, t.Height, err)
	}
	r, err := strconv.ParseInt(t.Round, 10, 32)
	if err != nil {
		return Watermark{}, fmt.Errorf("%w: tmkms state: round %q: %v", ErrWatermark, t.Round, err)
	}
	if t.Step < 0 || t.Step > 2 {
		return Watermark{}, fmt.Errorf("%w: tmkms state: step %d (0 proposal, 1 prevote, 2 precommit)", ErrWatermark, t.Step)
	}
	w := Watermark{Height: h, Round: int32(r), Step: t.Step + 1}
	return w, w.check()
}

// Compare orders two watermarks by height, then round, then step, as
// CometBFT's CheckHRS does: -1 if a is below b, 0 if equal, +1 if above.
// Chain IDs, sign bytes and signatures are not compared.
func Compare(a, b Watermark) int {
	switch {
	case a.Height != b.Height:
		return cmp.Compare(a.Height, b.Height)
	case a.Round != b.Round:
		return cmp.Compare(a.Round, b.Round)
	}
	return cmp.Compare(a.Step, b.Step)
}

// Equal reports whether a and b are the same watermark, chain ID and
// signed data included.
func (w Watermark) Equal(o Watermark) bool {
	return w.ChainID == o.ChainID && Compare(w, o) == 0 &&
		bytes.Equal(w.SignBytes, o.SignBytes) && bytes.Equal(w.Signature, o.Signature)
}

// String is height/round/step, for logs and errors.
func (w Watermark) String() string {
	return fmt.Sprintf("%d/%d/%d", w.Height, w.Round, w.Step)
}
