package signer

import (
	"errors"
	"fmt"
	"runtime/debug"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
)

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
