package cometbft

import (
	"context"
	"fmt"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"
)

// LastSignedHeight is the chain's floor under the signer's watermark: the
// latest of the node's last maxScan committed heights (its latest height
// and the maxScan-1 below it) whose commit carries this validator's
// signature (block_id_flag 2, a vote for the block), read from the node's
// RPC; 0 when none of them does. The commit of a height is the node's own
// (for its latest height the one it saw, not yet the canonical one in the
// next block). A height whose commit cannot be read is an error, never
// skipped: a floor that is too low is the failure this guards against.
//
// Not guaranteed: a signature the validator gave that did not make it
// into a commit (a late precommit, a nil vote, a prevote) is not seen;
// the floor is a lower bound of what was signed.
func (n *Node) LastSignedHeight(ctx context.Context, maxScan int64) (int64, error) {
	if maxScan < 1 {
		return 0, fmt.Errorf("scan window %d: want at least 1 height", maxScan)
	}
	h, _, err := lastSigned(ctx, n.rpc, n.key.Address, maxScan)
	return h, err
}

// LastSigned is LastSignedHeight with the round of that height's commit:
// the validator signed a precommit at that height and round.
func (n *Node) LastSigned(ctx context.Context, maxScan int64) (height int64, round int32, err error) {
	return lastSigned(ctx, n.rpc, n.key.Address, maxScan)
}

// lastSigned is LastSigned for the node behind rpc and the validator
// address addr.
func lastSigned(ctx context.Context, rpc *rpchttp.HTTP, addr string, maxScan int64) (int64, int32, error) {
	if maxScan < 1 {
		return 0, 0, fmt.Errorf("scan window %d: want at least 1 height", maxScan)
	}
	st, err := rpc.Status(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("node status: %w", err)
	}
	top := st.SyncInfo.LatestBlockHeight
	for h := top; h > 0 && h > top-maxScan; h-- {
		res, err := rpc.Commit(ctx, &h)
		if err != nil {
			return 0, 0, fmt.Errorf("commit at height %d: %w", h, err)
		}
		if res.SignedHeader.Commit == nil {
			return 0, 0, fmt.Errorf("commit at height %d: empty", h)
		}
		for _, sig := range res.SignedHeader.Commit.Signatures {
			if sig.BlockIDFlag == types.BlockIDFlagCommit && sig.ValidatorAddress.String() == addr {
				return h, res.SignedHeader.Commit.Round, nil
			}
		}
	}
	return 0, 0, nil
}
