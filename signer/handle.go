package signer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
)

// Logged results of a sign request.
const (
	resultSigned   = "signed"
	resultReserved = "reserved"
	resultRefused  = "refused"
	resultParked   = "parked"
)

// outcome is how a sign request ended.
type outcome struct {
	result    string
	sig       []byte
	ts        time.Time
	ext       bool
	reason    string
	refusal   string        // the kind of a refusal (Refusal*)
	parked    time.Duration // time spent parked
	fenceTook time.Duration // the fence, when one ran
	floorTook time.Duration // the floor file write after a fence
	floor     Watermark     // the fenced watermark, for the floor file
	term      uint64        // the leadership that fenced it (Signer.term)
}

// Handle answers one request of the node (the privval loop calls it, one
// request at a time): the public key, a ping, or a vote or proposal to
// sign, decided by Decide under the signing mutex. A refusal is a
// Signed*Response with a RemoteSignerError, which the node never retries;
// a request still parked after ParkHold gets a PingResponse, which the
// node answers by sending the request again. Every reply leaves before the
// node's read timeout.
//
// A panic while answering (a bug, a key or a Fencer that panics) never
// brings valguard down and never leaves the signing mutex held (see
// failClosedOnPanic): the request gets an error reply, with no signature,
// and is counted in valguard_signer_panics_total.
func (s *Signer) Handle(ctx context.Context, req privvalproto.Message) (resp privvalproto.Message) {
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Metrics.panicked()
			s.cfg.Log.Error().Interface("panic", p).Str("request", req.String()).Msg("request made the signer panic; refused, no signature returned")
			resp = panicReply(req, p)
		}
	}()
	switch r := req.Sum.(type) {
	case *privvalproto.Message_PubKeyRequest:
		if id := r.PubKeyRequest.GetChainId(); id != s.cfg.ChainID {
			s.cfg.Log.Error().Str("chain_id", id).Msg("public key requested for another chain")
			return pubKeyResponse(&privvalproto.PubKeyResponse{Error: &privvalproto.RemoteSignerError{
				Description: "valguard signs for chain " + s.cfg.ChainID + ", not " + id}})
		}
		return pubKeyResponse(&privvalproto.PubKeyResponse{PubKey: s.pub})
	case *privvalproto.Message_PingRequest:
		return pingResponse()
	case *privvalproto.Message_SignVoteRequest:
		return s.signVote(ctx, r.SignVoteRequest)
	case *privvalproto.Message_SignProposalRequest:
		return s.signProposal(ctx, r.SignProposalRequest)
	}
	s.cfg.Log.Warn().Str("request", req.String()).Msg("unexpected privval request; replied with a ping")
	return pingResponse()
}

// answer decides one sign request of the kind what (a malformed one, err,
// is refused) and logs the decision; when it is refused or parked, done is
// true and reply is the answer, else the caller builds the signed reply.
func (s *Signer) answer(ctx context.Context, what string, req Request, err error,
	refused func(why string) privvalproto.Message) (o outcome, reply privvalproto.Message, done bool) {
	arrived := s.cfg.Now()
	s.lastRequest.Store(&arrived)
	if err != nil {
		s.logMalformed(what, err)
		return o, refused(err.Error()), true
	}
	o = s.decide(ctx, arrived, req)
	s.logOutcome(req, o, arrived)
	switch o.result {
	case resultRefused:
		return o, refused(o.reason), true
	case resultParked:
		return o, pingResponse(), true
	}
	return o, reply, false
}

func (s *Signer) signVote(ctx context.Context, r *privvalproto.SignVoteRequest) privvalproto.Message {
	refused := func(why string) privvalproto.Message {
		return voteResponse(&privvalproto.SignedVoteResponse{Error: &privvalproto.RemoteSignerError{Description: why}})
	}
	req, err := voteRequest(r.GetChainId(), r.GetVote())
	o, reply, done := s.answer(ctx, "vote", req, err, refused)
	if done {
		return reply
	}
	vote := *r.Vote
	vote.Timestamp, vote.Signature, vote.ExtensionSignature = o.ts, o.sig, nil
	if o.ext {
		extSig, err := s.cfg.Key.Sign(types.VoteExtensionSignBytes(req.ChainID, &vote))
		if err != nil {
			s.cfg.Log.Error().Err(err).Msg("vote extension not signed")
			return refused("vote extension not signed: " + err.Error())
		}
		vote.ExtensionSignature = extSig
	}
	// The node's reader takes 10 KiB at most, and it copies back only the
	// signature, the timestamp and the extension signature
	// (types.SignAndCheckVote): the extension itself stays out of the reply.
	vote.Extension = nil
	return voteResponse(&privvalproto.SignedVoteResponse{Vote: vote})
}

func (s *Signer) signProposal(ctx context.Context, r *privvalproto.SignProposalRequest) privvalproto.Message {
	refused := func(why string) privvalproto.Message {
		return proposalResponse(&privvalproto.SignedProposalResponse{Error: &privvalproto.RemoteSignerError{Description: why}})
	}
	req, err := proposalRequest(r.GetChainId(), r.GetProposal())
	o, reply, done := s.answer(ctx, "proposal", req, err, refused)
	if done {
		return reply
	}
	p := *r.Proposal
	p.Timestamp, p.Signature = o.ts, o.sig
	return proposalResponse(&privvalproto.SignedProposalResponse{Proposal: p})
}

// logOutcome writes the one event per decision, with stable keys.
func (s *Signer) logOutcome(req Request, o outcome, arrived time.Time) {
	ev := s.cfg.Log.Info()
	if o.result == resultRefused {
		ev = s.cfg.Log.Warn()
	}
	ev = ev.Str("type", stepName(req.Step)).Int64("height", req.Height).Int32("round", req.Round).Int8("step", req.Step).
		Str("result", o.result).Str("reason", o.reason).Str("sign_bytes_sha256", signBytesDigest(req.Proposal, req.SignBytes)).
		Dur("took", s.cfg.Now().Sub(arrived))
	if o.parked > 0 {
		ev = ev.Dur("parked", o.parked)
	}
	if len(o.sig) > 0 {
		// The signature given out, exactly (the sign bytes digest above
		// leaves the timestamp out): the drills' checker tells one
		// signature counted twice from two signatures by it.
		sum := sha256.Sum256(o.sig)
		ev = ev.Str("signature_sha256", hex.EncodeToString(sum[:]))
	}
	if o.result == resultSigned {
		ev = ev.Dur("fence_took", o.fenceTook).Dur("floor_took", o.floorTook)
	}
	ev.Msg("sign request")
	s.cfg.Metrics.request(stepName(req.Step), o.result)
	if o.result == resultRefused {
		s.cfg.Metrics.refused(o.refusal)
	}
}

func (s *Signer) logMalformed(typ string, err error) {
	s.cfg.Log.Warn().Str("type", typ).Str("result", resultRefused).Str("reason", err.Error()).Msg("sign request")
	s.cfg.Metrics.request(typ, resultRefused)
	s.cfg.Metrics.refused(RefusalMalformed)
}

func pingResponse() privvalproto.Message {
	return privvalproto.Message{Sum: &privvalproto.Message_PingResponse{PingResponse: &privvalproto.PingResponse{}}}
}

func pubKeyResponse(r *privvalproto.PubKeyResponse) privvalproto.Message {
	return privvalproto.Message{Sum: &privvalproto.Message_PubKeyResponse{PubKeyResponse: r}}
}

func voteResponse(r *privvalproto.SignedVoteResponse) privvalproto.Message {
	if r.Error != nil {
		r.Vote = cmtproto.Vote{}
	}
	return privvalproto.Message{Sum: &privvalproto.Message_SignedVoteResponse{SignedVoteResponse: r}}
}

func proposalResponse(r *privvalproto.SignedProposalResponse) privvalproto.Message {
	if r.Error != nil {
		r.Proposal = cmtproto.Proposal{}
	}
	return privvalproto.Message{Sum: &privvalproto.Message_SignedProposalResponse{SignedProposalResponse: r}}
}

// LastRequest is when the node last asked for a signature (a vote or a
// proposal, not a ping); zero if it never did. A node whose chain stalls
// while it asks for nothing has dropped a step: CometBFT never asks again
// for a step it gave up on (a refusal, or 50 retries of a parked one),
// and only a restart (its WAL replay) makes it ask again.
//
// The time keeps its monotonic clock reading (with the default clock), so
// time.Since(LastRequest()) measures elapsed time even across a step of
// the wall clock; do not strip it (Round(0), UTC, a round trip through
// Unix nanoseconds) before comparing.
func (s *Signer) LastRequest() time.Time {
	t := s.lastRequest.Load()
	if t == nil {
		return time.Time{}
	}
	return *t
}
