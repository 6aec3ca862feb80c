package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
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

// decide runs Decide under the signing mutex until the request is signed,
// re-served or refused, or ParkHold after arrival has passed (parked). A
// parked request waits without the mutex and decides again whenever the
// watermark or the role changes.
func (s *Signer) decide(ctx context.Context, arrived time.Time, req Request) (o outcome) {
	hold := arrived.Add(s.cfg.ParkHold)
	var parkedAt time.Time
	defer func() {
		if parkedAt.IsZero() {
			return
		}
		o.parked = s.cfg.Now().Sub(parkedAt)
		s.cfg.Metrics.parkedFor(o.parked)
		s.unpark(o.result != resultParked)
	}()
	for {
		t := s.decideOnce(req, arrived, &hold, &parkedAt)
		switch {
		case t.done:
			if t.o.result == resultSigned {
				s.floorAfterFence(&t.o)
			}
			return t.o
		case t.again:
			continue
		}
		wait := hold.Sub(s.cfg.Now())
		if wait <= 0 {
			return outcome{result: resultParked, reason: t.reason}
		}
		timer := time.NewTimer(wait)
		select {
		case <-t.changed:
			timer.Stop()
		case <-timer.C:
			return outcome{result: resultParked, reason: t.reason}
		case <-ctx.Done():
			timer.Stop()
			return outcome{result: resultParked, reason: "request abandoned: " + ctx.Err().Error()}
		}
	}
}

// turn is one decision under the signing mutex: the request's outcome
// (done), a decision to take again at once (again), or a park until
// changed is closed or the hold ends (reason says why).
type turn struct {
	o       outcome
	done    bool
	again   bool
	changed <-chan struct{}
	reason  string
}

// decideOnce takes one decision for req under the signing mutex, which it
// releases however it ends (a panic included: failClosedOnPanic). A
// request that parks for the first time sets *parkedAt and counts in the
// deposition bookkeeping; one too late to fence sets *hold to its arrival
// (reply at once; the node asks again).
func (s *Signer) decideOnce(req Request, arrived time.Time, hold, parkedAt *time.Time) turn {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.failClosedOnPanic()
	d := Decision{Result: Refuse, Reason: "request for chain " + req.ChainID + ", valguard signs for " + s.cfg.ChainID}
	if req.ChainID == s.cfg.ChainID {
		d = Decide(s.leading, s.wm, req)
	}
	if d.Result == Sign {
		// The fence ends early enough to leave the floor file write its
		// bound before the reply is due.
		due := arrived.Add(replyBudget - s.cfg.FloorTimeout)
		if s.cfg.Now().Add(s.cfg.FenceTimeout).After(due) {
			d = Decision{Result: Park, Reason: "too late to fence before the node's read timeout"}
			*hold = arrived
		} else if o, ok := s.signLocked(req, d, due); ok {
			return turn{o: o, done: true}
		} else if s.leading {
			return turn{again: true} // an own late fence was adopted: decide again
		} else {
			d = Decide(s.leading, s.wm, req) // demoted: parks
		}
	}
	switch d.Result {
	case Reserve:
		return turn{o: outcome{result: resultReserved, sig: d.Signature, ts: d.Timestamp, ext: d.Extension}, done: true}
	case Refuse:
		return turn{o: outcome{result: resultRefused, reason: d.Reason}, done: true}
	}
	if !s.leading && s.lockFree() && !s.inElection() {
		return turn{o: outcome{result: resultRefused, reason: "above the watermark " + s.wm.String() +
			" and no replica holds the lock: refused at once, not to hold the node back"}, done: true}
	}
	if parkedAt.IsZero() {
		*parkedAt = s.cfg.Now()
		s.parking++
		if s.parkSince.IsZero() {
			s.parkSince = *parkedAt
		}
	}
	return turn{changed: s.changed, reason: d.Reason}
}

// unpark ends a parked request's count in the deposition bookkeeping;
// answered: it was answered (not parked again).
func (s *Signer) unpark(answered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parking--
	s.lastParkEnd = s.cfg.Now()
	if answered {
		s.parkSince = time.Time{}
	}
}

// errPanicked: a panic under the signing mutex ended the leadership.
var errPanicked = errors.New("panic under the signing mutex")

// failClosedOnPanic is deferred right after the signing mutex is taken,
// after its deferred unlock, so it runs first: on a panic under the mutex
// (in Decide, the key, the Fencer, the Store) it demotes a leader — a
// fence in flight may or may not have been applied, and the state in
// memory may be half updated, so this replica stops fencing and the lease
// passes on — logs the panic with its stack, and panics on with the same
// value. The deferred unlock then releases the mutex, and Handle refuses
// the request: no signature leaves from a panicked request.
func (s *Signer) failClosedOnPanic() {
	p := recover()
	if p == nil {
		return
	}
	s.cfg.Log.Error().Interface("panic", p).Str("stack", string(debug.Stack())).Bool("leading", s.leading).
		Msg("panic under the signing mutex; a leader steps down")
	s.demoteLocked(fmt.Errorf("%w: %v", errPanicked, p))
	panic(p)
}

// signLocked signs req, fences the new watermark and, once the fence
// succeeded, makes it the watermark in memory and the floor. It reports
// false after a failed fence: the signature is dropped and the signer is
// demoted, or, still leading, it adopted an own earlier fence that applied
// late and the request must be decided again. The fence, retries
// included, ends in time for a reply before until. Called with the signing
// mutex held, while leading.
func (s *Signer) signLocked(req Request, d Decision, until time.Time) (outcome, bool) {
	sig, err := s.cfg.Key.Sign(req.SignBytes)
	if err != nil {
		return outcome{result: resultRefused, reason: "not signed: " + err.Error()}, true
	}
	next := Watermark{ChainID: req.ChainID, Height: req.Height, Round: req.Round, Step: req.Step, SignBytes: req.SignBytes, Signature: sig}
	value, err := json.Marshal(next)
	if err != nil {
		return outcome{result: resultRefused, reason: "watermark not encoded: " + err.Error()}, true
	}
	start := time.Now()
	index, attempts, err := s.fenceLocked(value, until)
	took := time.Since(start)
	s.cfg.Metrics.fenceRetried(attempts - 1)
	var late *ownLateFence
	if errors.As(err, &late) {
		s.cfg.Metrics.fenced(took, "moved")
		if ferr := s.raiseFloor(late.wm); ferr != nil {
			s.cfg.Metrics.fenced(0, "error")
			s.demoteLocked(ferr)
			return outcome{}, false
		}
		s.cfg.Log.Warn().Str("watermark", late.wm.String()).Uint64("index", late.index).Int64("height", req.Height).
			Msg("an own earlier fence applied late: adopted, the request is decided again")
		s.wm, s.index = late.wm, late.index
		s.changedLocked(true)
		return outcome{}, false
	}
	if errors.Is(err, errUnresolved) {
		// Consul did not say, and the reply is due: the signature stays
		// here and the request parks; the node asks again, and the next
		// fence (at the same index) settles it. The lease, not this
		// fence, decides whether this replica still leads.
		s.cfg.Metrics.fenced(took, "unknown")
		s.cfg.Log.Warn().Err(err).Int("attempts", attempts).Int64("height", req.Height).
			Msg("fence outcome still unknown when the reply was due; the request parks, leadership stays with the lease")
		return outcome{result: resultParked, reason: "fence outcome unknown: " + err.Error()}, true
	}
	if err != nil {
		reason := "error"
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			reason = "timeout"
		case errors.Is(err, context.Canceled):
			reason = "canceled"
		}
		s.cfg.Metrics.fenced(took, reason)
		s.demoteLocked(err)
		return outcome{}, false
	}
	s.cfg.Metrics.fenced(took, "")
	if attempts > 1 {
		s.cfg.Log.Warn().Int("attempts", attempts).Dur("fence_took", took).Int64("height", req.Height).
			Msg("fence outcome was unknown; resolved by reading the watermark back")
	}
	s.wm, s.index = next, index
	s.changedLocked(true)
	return outcome{result: resultSigned, sig: sig, ts: req.Timestamp, ext: d.Extension, fenceTook: took, floor: next, term: s.term}, true
}

// fenceRetryPause is the pause before each read that resolves an unknown
// fence outcome.
const fenceRetryPause = 100 * time.Millisecond

// errUnresolved: a fence outcome still unknown when the reply was due.
var errUnresolved = errors.New("fence outcome unresolved")

// ownLateFence is what fenceLocked returns when the watermark moved under
// this leader's lock to another value of its own: an earlier fence whose
// outcome was unknown applied late.
type ownLateFence struct {
	wm    Watermark
	index uint64
}

func (o *ownLateFence) Error() string {
	return fmt.Sprintf("an own earlier fence applied late: watermark %s at index %d", o.wm, o.index)
}

// fenceLocked fences value at the watermark's index. An outcome the
// fencer reports unknown (ErrOutcomeUnknown: a timeout, Consul between two
// Raft leaders) or a refusal because the watermark moved (ErrMoved: the
// lock check passed) is resolved with a consistent read rather than taken
// as a refusal:
//
//   - a read that finds value stored means the fence was applied, under
//     the lock (the transaction checked the session when it applied);
//   - after an unknown outcome, one that finds the watermark still at its
//     index means it was not applied, or not yet, and the same value is
//     fenced again at the same index — a check-and-set that cannot apply
//     twice, carrying the same signature, so whichever attempt lands, one
//     signature exists for the height/round/step;
//   - one that finds another value is settled by otherValueLocked: this
//     leader's own earlier fence applied late (adopted: ownLateFence), or
//     another leader's (the error stands).
//
// A read that fails is made again, never taken as a refusal: a leader does
// not step down because Consul was slow to answer a read. This goes on
// while a read and one more fence fit before until, then ends with
// errUnresolved (the request parks, the leader stays: the lease decides).
// Any other error ends it at once. It returns the new index and the number
// of fence transactions sent.
func (s *Signer) fenceLocked(value []byte, until time.Time) (index uint64, attempts int, err error) {
	for {
		if attempts > 0 && s.cfg.Now().Add(s.cfg.FenceTimeout).After(until) {
			return 0, attempts, fmt.Errorf("%w after %d attempts: %w", errUnresolved, attempts, err)
		}
		attempts++
		fctx, cancel := context.WithTimeout(context.Background(), s.cfg.FenceTimeout)
		index, err = s.fencer.Fence(fctx, value, s.index)
		cancel()
		moved := errors.Is(err, ErrMoved)
		if err == nil || !moved && !errors.Is(err, ErrOutcomeUnknown) {
			return index, attempts, err
		}
		if !moved {
			s.noteUnsureLocked(value)
		}
		// ErrMoved is read back at once (an own late fence is the common
		// cause); an unknown outcome after a pause.
		stored, at, rerr := s.readBackLocked(until, moved)
		switch {
		case rerr != nil:
			return 0, attempts, fmt.Errorf("%w after %d attempts: %w; %w", errUnresolved, attempts, err, rerr)
		case bytes.Equal(stored, value):
			return at, attempts, nil
		case !moved && at == s.index:
			continue // not applied: fence again
		case stored == nil && s.index != 0:
			// The key was deleted while this replica leads.
			attempts++
			if werr := s.writeBackLocked(); werr != nil {
				return 0, attempts, werr
			}
			continue // fence at the key's new index
		case at != s.index && s.holdsMemoryLocked(stored):
			// The key holds the watermark in memory at another index: an
			// own write-back that applied late. Fencing over it loses
			// nothing; the transaction still checks the lock.
			s.index = at
			continue
		}
		return 0, attempts, s.otherValueLocked(stored, at, moved, err)
	}
}

// writeBackLocked re-creates the watermark key, found absent while this
// replica leads (deleted by hand, or Consul lost it), with the watermark
// held in memory: a create-only fence (index 0) under the lock, so that
// the key never reads as "nothing signed" (docs/design.md, S8 and S11) and the
// validator goes on signing. It logs at error level and counts in
// valguard_signer_watermark_written_back_total. A write-back whose outcome
// is unknown, or a key created meanwhile, is left to fenceLocked's next
// read; any other refusal is returned (the leader steps down).
func (s *Signer) writeBackLocked() error {
	s.cfg.Metrics.wroteBack()
	ev := s.cfg.Log.Error().Str("watermark", s.wm.String()).Uint64("was_index", s.index).
		Str("fix", "never delete the watermark key while a replica runs; check who did (consul's logs), or whether consul lost data")
	index, err := s.writeLocked(context.Background(), s.fencer, s.wm, 0)
	switch {
	case err == nil:
		ev.Uint64("index", index).Msg("watermark key absent in consul while leading: wrote back the watermark held in memory")
		s.index = index
		return nil
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrMoved):
		ev.AnErr("write_back_err", err).Msg("watermark key absent in consul while leading: writing back the watermark held in memory, outcome not known yet")
		return nil
	}
	ev.AnErr("write_back_err", err).Msg("watermark key absent in consul while leading: the write-back was refused")
	return fmt.Errorf("the watermark key is absent in consul; writing back %s failed: %w", s.wm, err)
}

// holdsMemoryLocked reports whether stored is the watermark in memory.
func (s *Signer) holdsMemoryLocked(stored []byte) bool {
	if stored == nil {
		return false
	}
	wm, err := s.parseStored(stored)
	return err == nil && wm.Equal(s.wm)
}

// readBackLocked reads the watermark to settle a fence's outcome. A read
// that fails is made again after fenceRetryPause; every read but a first
// one made at once (now) waits for the pause and is made only while it and
// one more fence fit before until. It returns an error only when no time is
// left, naming the last read's failure.
func (s *Signer) readBackLocked(until time.Time, now bool) (stored []byte, index uint64, err error) {
	var last error
	for first := true; ; first = false {
		if !first || !now {
			if s.cfg.Now().Add(fenceRetryPause + 2*s.cfg.FenceTimeout).After(until) {
				if last == nil {
					return nil, 0, errors.New("no time left to read the watermark back")
				}
				return nil, 0, fmt.Errorf("the watermark could not be read back: %w", last)
			}
			time.Sleep(fenceRetryPause)
		}
		rctx, cancel := context.WithTimeout(context.Background(), s.cfg.FenceTimeout)
		stored, index, err = s.cfg.Store.Read(rctx)
		cancel()
		if err == nil {
			return stored, index, nil
		}
		last = err
	}
}

// otherValueLocked settles a fence (failed with ferr) after which the
// watermark holds another value than the one fenced, at index at. Under
// this leader's lock only this leader fences (Lead read the watermark after
// the take), so the value is an own earlier fence that applied late when
// the lock check passed (lockChecked: ErrMoved), or when it is one of the
// values this leader sent with an unknown outcome at the same index
// (noteUnsureLocked): above the watermark in memory, it is adopted
// (ownLateFence). Anything else — another leader's value after an unknown
// outcome, a value not above, one that does not parse — stands as the
// refusal.
func (s *Signer) otherValueLocked(stored []byte, at uint64, lockChecked bool, ferr error) error {
	if !lockChecked && !s.sentLocked(stored) {
		return fmt.Errorf("%w; the watermark then moved to index %d with other data: another leader fenced", ferr, at)
	}
	wm, err := s.parseStored(stored)
	if err != nil {
		return fmt.Errorf("%w; read back: %v", ferr, err)
	}
	if wm.ChainID != s.cfg.ChainID || Compare(wm, s.wm) <= 0 {
		return fmt.Errorf("%w; read back %s, not above %s", ferr, wm, s.wm)
	}
	return &ownLateFence{wm: wm, index: at}
}

// maxUnsure bounds the values remembered by noteUnsureLocked.
const maxUnsure = 32

// noteUnsureLocked remembers value, fenced at the watermark's index with
// an unknown outcome: it may still land (Raft applies it late), and one
// found stored later is this leader's own (sentLocked). The list restarts
// whenever the index moves: a check-and-set at an older index can no
// longer apply.
func (s *Signer) noteUnsureLocked(value []byte) {
	if s.unsureAt != s.index {
		s.unsure, s.unsureAt = nil, s.index
	}
	if s.sentLocked(value) {
		return
	}
	if len(s.unsure) == maxUnsure {
		s.unsure = s.unsure[1:]
	}
	s.unsure = append(s.unsure, bytes.Clone(value))
}

// sentLocked reports whether value is one this leader fenced at the
// watermark's index with an unknown outcome.
func (s *Signer) sentLocked(value []byte) bool {
	if s.unsureAt != s.index {
		return false
	}
	for _, v := range s.unsure {
		if bytes.Equal(v, value) {
			return true
		}
	}
	return false
}

// floorAfterFence writes the fenced watermark to the floor file before the
// signature is returned (persist before acting), outside the signing
// mutex: a slow disk delays this reply only, never Follow, so the lock can
// still be released. A write that fails, or does not end within
// FloorTimeout (a hung fsync), turns the outcome into a refusal — the
// signature never leaves without its floor — and steps the leadership
// that fenced down: the watermark in Consul holds the signature, and the
// next leader's node gets it from there. It leaves the next leader's take
// to the lease; this replica's own Lead fails while the write hangs.
func (s *Signer) floorAfterFence(o *outcome) {
	start := time.Now()
	err := s.raiseFloor(o.floor)
	o.floorTook = time.Since(start)
	if err == nil {
		return
	}
	s.cfg.Log.Error().Err(err).Str("watermark", o.floor.String()).Dur("floor_took", o.floorTook).
		Msg("floor file not written after a fence: request refused, leader steps down")
	term := o.term
	*o = outcome{result: resultRefused, reason: "fenced, but the floor file was not written: " + err.Error(),
		fenceTook: o.fenceTook, floorTook: o.floorTook}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading && s.term == term {
		s.demoteLocked(fmt.Errorf("floor file not written after a fence: %w", err))
	}
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
	if o.result == resultSigned {
		ev = ev.Dur("fence_took", o.fenceTook).Dur("floor_took", o.floorTook)
	}
	ev.Msg("sign request")
	s.cfg.Metrics.request(stepName(req.Step), o.result)
}

func (s *Signer) logMalformed(typ string, err error) {
	s.cfg.Log.Warn().Str("type", typ).Str("result", resultRefused).Str("reason", err.Error()).Msg("sign request")
	s.cfg.Metrics.request(typ, resultRefused)
}

// panicReply is the answer to a request whose handling panicked: the
// error reply of its kind (never a signature), or a ping reply to a
// request that has no error reply.
func panicReply(req privvalproto.Message, p any) privvalproto.Message {
	why := &privvalproto.RemoteSignerError{Description: fmt.Sprintf("valguard failed on this request (panic: %v); no signature returned", p)}
	switch req.Sum.(type) {
	case *privvalproto.Message_SignVoteRequest:
		return voteResponse(&privvalproto.SignedVoteResponse{Error: why})
	case *privvalproto.Message_SignProposalRequest:
		return proposalResponse(&privvalproto.SignedProposalResponse{Error: why})
	case *privvalproto.Message_PubKeyRequest:
		return pubKeyResponse(&privvalproto.PubKeyResponse{Error: why})
	}
	return pingResponse()
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
