package signer

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cometbft/cometbft/libs/protoio"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

// Request is one sign request of the node, reduced to what Decide needs.
type Request struct {
	ChainID   string
	Height    int64
	Round     int32
	Step      int8 // StepPropose, StepPrevote or StepPrecommit
	SignBytes []byte
	Timestamp time.Time
	// Proposal: SignBytes are a CanonicalProposal, else a CanonicalVote.
	Proposal bool
	// NilBlock: a vote for no block (nil prevote or nil precommit).
	NilBlock bool
	// HasExtension: the vote carries vote-extension data.
	HasExtension bool
}

// hrs is the request's height/round/step as a watermark, for Compare.
func (r Request) hrs() Watermark {
	return Watermark{ChainID: r.ChainID, Height: r.Height, Round: r.Round, Step: r.Step}
}

// Result is what Decide says to do with a request.
type Result int

const (
	// Sign: create a new signature, fence it, then reply.
	Sign Result = iota + 1
	// Reserve: reply with the stored signature and stored timestamp; no
	// new signature of the sign bytes leaves.
	Reserve
	// Refuse: reply with an error; the node never asks again.
	Refuse
	// Park: wait for the watermark or the role to change, then decide
	// again.
	Park
)

func (r Result) String() string {
	switch r {
	case Sign:
		return "sign"
	case Reserve:
		return "reserve"
	case Refuse:
		return "refuse"
	case Park:
		return "park"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// Decision is Decide's answer.
type Decision struct {
	Result Result
	// Signature and Timestamp: for Reserve, the stored signature and the
	// timestamp it covers, which the reply must carry.
	Signature []byte
	Timestamp time.Time
	// Extension: for Sign and Reserve, the reply needs a fresh
	// vote-extension signature (a non-nil precommit, as FilePV does).
	Extension bool
	// Reason says why, for Refuse and Park.
	Reason string
	// Refusal names the kind of a Refuse, for the metric
	// valguard_signer_refusals_total{reason}: one of the Refusal*
	// constants.
	Refusal string
}

// Kinds of refusal (valguard_signer_refusals_total{reason}).
const (
	RefusalChain      = "chain"       // another chain's request or watermark
	RefusalExtension  = "extension"   // a vote extension where none is allowed
	RefusalRegression = "regression"  // below the watermark
	RefusalConflict   = "conflict"    // the same height/round/step, other data
	RefusalNoBytes    = "no_bytes"    // the same height/round/step, no sign bytes stored
	RefusalNotSigning = "not_signing" // leaderless: this replica does not sign now
	RefusalNoHolder   = "no_holder"   // leader policy: no replica holds the lock
	RefusalMalformed  = "malformed"   // a request that does not parse
	RefusalFailed     = "failed"      // signing, encoding or the floor file failed
)

// Decide applies the decision table (docs/signer-mode.md §3.3) to a request of
// the replica's own node, given the watermark in memory and whether this
// replica leads. It is pure. Against the watermark's height/round/step:
//
//   - another chain ID: Refuse;
//   - below: Refuse;
//   - equal, same sign bytes or sign bytes that differ only in the
//     timestamp (FilePV's rule): Reserve with the stored signature and
//     timestamp, leader and standby alike; equal without stored sign bytes
//     (a watermark from the restart mode or tmkms): Refuse;
//   - equal, other data: Refuse;
//   - above: Sign when leading, Park otherwise.
//
// A vote extension on a prevote or nil precommit is refused, as FilePV
// refuses it.
func Decide(leading bool, wm Watermark, req Request) Decision {
	if req.ChainID != wm.ChainID {
		return refuse(RefusalChain, "chain ID %q is not the watermark's %q", req.ChainID, wm.ChainID)
	}
	ext := req.Step == StepPrecommit && !req.Proposal && !req.NilBlock
	if req.HasExtension && !ext {
		return refuse(RefusalExtension, "unexpected vote extension: extensions are only allowed in non-nil precommits")
	}
	switch Compare(req.hrs(), wm) {
	case -1:
		return refuse(RefusalRegression, "height/round/step regression: %s is below the watermark %s", req.hrs(), wm)
	case 1:
		if leading {
			return Decision{Result: Sign, Extension: ext}
		}
		return Decision{Result: Park, Reason: fmt.Sprintf("above the watermark %s on a standby", wm)}
	}
	if len(wm.SignBytes) == 0 || len(wm.Signature) == 0 {
		return refuse(RefusalNoBytes, "no sign bytes stored for %s: cannot tell a repeat from conflicting data", wm)
	}
	if bytes.Equal(req.SignBytes, wm.SignBytes) {
		return Decision{Result: Reserve, Signature: wm.Signature, Timestamp: req.Timestamp, Extension: ext}
	}
	if ts, ok := onlyTimestampDiffers(req.Proposal, wm.SignBytes, req.SignBytes); ok {
		return Decision{Result: Reserve, Signature: wm.Signature, Timestamp: ts, Extension: ext}
	}
	return refuse(RefusalConflict, "conflicting data at %s", wm)
}

func refuse(kind, format string, args ...any) Decision {
	return Decision{Result: Refuse, Reason: fmt.Sprintf(format, args...), Refusal: kind}
}

// onlyTimestampDiffers reports whether two sign bytes (canonical proposals
// or canonical votes, length-delimited) differ in nothing but the
// timestamp, and returns the stored one's timestamp. Like FilePV's
// checkVotesOnlyDifferByTimestamp and checkProposalsOnlyDifferByTimestamp
// it sets both timestamps to one value and compares; unlike them it treats
// bytes that do not parse as conflicting instead of panicking.
func onlyTimestampDiffers(proposal bool, stored, req []byte) (time.Time, bool) {
	ts, a, err := withoutTimestamp(proposal, stored)
	if err != nil {
		return time.Time{}, false
	}
	_, b, err := withoutTimestamp(proposal, req)
	if err != nil {
		return time.Time{}, false
	}
	return ts, bytes.Equal(a, b)
}

// withoutTimestamp parses sign bytes and returns their timestamp and the
// same sign bytes with the timestamp set to the zero time.
func withoutTimestamp(proposal bool, signBytes []byte) (time.Time, []byte, error) {
	if proposal {
		var p cmtproto.CanonicalProposal
		if err := protoio.UnmarshalDelimited(signBytes, &p); err != nil {
			return time.Time{}, nil, err
		}
		ts := p.Timestamp
		p.Timestamp = time.Time{}
		b, err := protoio.MarshalDelimited(&p)
		return ts, b, err
	}
	var v cmtproto.CanonicalVote
	if err := protoio.UnmarshalDelimited(signBytes, &v); err != nil {
		return time.Time{}, nil, err
	}
	ts := v.Timestamp
	v.Timestamp = time.Time{}
	b, err := protoio.MarshalDelimited(&v)
	return ts, b, err
}
