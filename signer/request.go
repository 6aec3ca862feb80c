package signer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
)

// voteRequest reduces a vote to sign for chainID to a Request.
func voteRequest(chainID string, v *cmtproto.Vote) (Request, error) {
	if v == nil {
		return Request{}, errors.New("sign vote request without a vote")
	}
	var step int8
	switch v.Type {
	case cmtproto.PrevoteType:
		step = StepPrevote
	case cmtproto.PrecommitType:
		step = StepPrecommit
	default:
		return Request{}, errors.New("vote of unknown type " + v.Type.String())
	}
	if err := checkHRB(v.Height, v.Round, &v.BlockID); err != nil {
		return Request{}, fmt.Errorf("malformed vote: %w", err)
	}
	return Request{
		ChainID: chainID, Height: v.Height, Round: v.Round, Step: step,
		SignBytes: types.VoteSignBytes(chainID, v), Timestamp: v.Timestamp,
		NilBlock: types.ProtoBlockIDIsNil(&v.BlockID), HasExtension: len(v.Extension) > 0,
	}, nil
}

// proposalRequest reduces a proposal to sign for chainID to a Request.
func proposalRequest(chainID string, p *cmtproto.Proposal) (Request, error) {
	if p == nil {
		return Request{}, errors.New("sign proposal request without a proposal")
	}
	if err := checkHRB(p.Height, p.Round, &p.BlockID); err != nil {
		return Request{}, fmt.Errorf("malformed proposal: %w", err)
	}
	if p.PolRound < -1 || p.PolRound >= p.Round {
		return Request{}, fmt.Errorf("malformed proposal: POL round %d with round %d", p.PolRound, p.Round)
	}
	if types.ProtoBlockIDIsNil(&p.BlockID) {
		return Request{}, errors.New("malformed proposal: no block")
	}
	return Request{
		ChainID: chainID, Height: p.Height, Round: p.Round, Step: StepPropose,
		SignBytes: types.ProposalSignBytes(chainID, p), Timestamp: p.Timestamp,
		Proposal: true, NilBlock: types.ProtoBlockIDIsNil(&p.BlockID),
	}, nil
}

// checkHRB refuses what no CometBFT node asks to sign, before the sign
// bytes are built (CometBFT's canonicalisation panics on a malformed block
// ID) and before anything could reach the watermark (a negative round
// would make it unreadable): height above 0, round at least 0, a block ID
// that is nil or well formed (as Vote and Proposal ValidateBasic check).
func checkHRB(height int64, round int32, bid *cmtproto.BlockID) error {
	if height <= 0 {
		return fmt.Errorf("height %d", height)
	}
	if round < 0 {
		return fmt.Errorf("round %d", round)
	}
	id, err := types.BlockIDFromProto(bid)
	if err != nil {
		return fmt.Errorf("block ID: %w", err)
	}
	if err := id.ValidateBasic(); err != nil {
		return fmt.Errorf("block ID: %w", err)
	}
	if !id.IsZero() && !id.IsComplete() {
		return errors.New("block ID neither nil nor complete")
	}
	return nil
}

// signBytesDigest is the hex SHA-256 of the request's sign bytes with the
// timestamp set to the zero time: two requests of one height/round/step
// with the same digest sign the same data, timestamps aside. Sign bytes
// that do not parse are hashed as they are.
func signBytesDigest(proposal bool, signBytes []byte) string {
	if _, b, err := withoutTimestamp(proposal, signBytes); err == nil {
		signBytes = b
	}
	sum := sha256.Sum256(signBytes)
	return hex.EncodeToString(sum[:])
}

// stepName is the request type for logs and metrics.
func stepName(step int8) string {
	switch step {
	case StepPropose:
		return "proposal"
	case StepPrevote:
		return "prevote"
	case StepPrecommit:
		return "precommit"
	}
	return "unknown"
}
