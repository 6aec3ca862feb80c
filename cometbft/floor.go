package cometbft

import (
	"context"
	"errors"
	"time"
)

// FloorScanTime bounds one chain-floor scan (LastSigned): it takes at most
// this long, and at most half the time left on its context, so that a
// caller bounded by one deadline keeps time for what follows the scan. A
// scan cut short is an error (ErrFloorIncomplete); what it read is kept,
// and the next scan goes on from there.
const FloorScanTime = time.Second

// ErrFloorIncomplete: the chain-floor scan ran out of time (FloorScanTime
// or its context) before it read every height it must.
var ErrFloorIncomplete = errors.New("the chain-floor scan did not finish in time")

// LastSignedHeight is LastSigned without the round.
func (n *Node) LastSignedHeight(ctx context.Context, maxScan int64) (int64, error) {
	h, _, err := n.floor.lastSigned(ctx, maxScan)
	return h, err
}

// LastSigned is the chain's floor under the signer's watermark: the
// highest height, among those the node still stores, whose commit carries
// this validator's signature (block_id_flag 2, a vote for the block), and
// the round of that commit: the validator signed a precommit at that
// height and round. It is 0, 0 when none does.
//
// The heights read are the node's latest and the maxScan-1 below it, down
// to the node's earliest stored height (/status earliest_block_height): a
// pruned or state-synced node no longer has the commits below that, and
// their absence is no error. A commit at or above the earliest height that
// cannot be read is an error, never skipped: a floor that is too low is
// the failure this guards against. The scan is bounded by FloorScanTime
// (ErrFloorIncomplete).
//
// Results are kept for the life of the Node (a Remote keeps its own), in
// a cache of its node RPC client and its validator only: a height once
// found signed stays a floor (a signature does not go away), and a height
// whose canonical commit was read without the signature is not read
// again, so after the first scan a call reads only the heights that are
// new since. The latest height's commit is the one the node saw, not yet
// the canonical one in the next block: it is read again on every call
// until it is canonical.
//
// Not guaranteed: a signature the validator gave that did not make it
// into a commit (a late precommit, a nil vote, a prevote) is not seen, nor
// one below the window or below the node's earliest height that no
// earlier call found; so on a node that keeps few blocks the floor can be
// 0 while the validator signed long ago. The floor is a lower bound of
// what was signed, never more.
func (n *Node) LastSigned(ctx context.Context, maxScan int64) (height int64, round int32, err error) {
	return n.floor.lastSigned(ctx, maxScan)
}
