package signer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

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
	return Request{
		ChainID: chainID, Height: p.Height, Round: p.Round, Step: StepPropose,
		SignBytes: types.ProposalSignBytes(chainID, p), Timestamp: p.Timestamp,
		Proposal: true, NilBlock: types.ProtoBlockIDIsNil(&p.BlockID),
	}, nil
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
