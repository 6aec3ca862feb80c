package localnet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"
)

// pollInterval is how often WaitHeight asks a node for its height.
const pollInterval = 200 * time.Millisecond

var (
	clientsMu sync.Mutex
	clients   = map[string]*rpchttp.HTTP{}
)

// client returns a shared RPC client for rpc. Clients are kept for the life
// of the process: each holds its own HTTP transport and idle connections.
func client(rpc string) (*rpchttp.HTTP, error) {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c, ok := clients[rpc]; ok {
		return c, nil
	}
	c, err := rpchttp.New(rpc, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("localnet: rpc client %s: %w", rpc, err)
	}
	clients[rpc] = c
	return c, nil
}

// Height returns the latest block height the node at rpc reports in /status.
func Height(ctx context.Context, rpc string) (int64, error) {
	c, err := client(rpc)
	if err != nil {
		return 0, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("localnet: %s status: %w", rpc, err)
	}
	return st.SyncInfo.LatestBlockHeight, nil
}

// WaitHeight polls the node at rpc until its latest block height is at
// least h. Errors while the node is not yet answering are retried; it
// returns when ctx is done, with the last height and error seen.
func WaitHeight(ctx context.Context, rpc string, h int64) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last int64
	var lastErr error
	for {
		got, err := Height(ctx, rpc)
		if err == nil && got >= h {
			return nil
		}
		if err == nil {
			last = got
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localnet: %s did not reach height %d (last height %d, last error %v): %w",
				rpc, h, last, lastErr, ctx.Err())
		case <-t.C:
		}
	}
}

// SignedAt reports whether the commit of height h, as the node at rpc
// knows it, holds a commit signature (block_id_flag 2) of the validator
// with hex address addrHex.
func SignedAt(ctx context.Context, rpc, addrHex string, h int64) (bool, error) {
	c, err := client(rpc)
	if err != nil {
		return false, err
	}
	return signedAt(ctx, c, addrHex, h)
}

func signedAt(ctx context.Context, c *rpchttp.HTTP, addrHex string, h int64) (bool, error) {
	res, err := c.Commit(ctx, &h)
	if err != nil {
		return false, fmt.Errorf("localnet: commit at %d: %w", h, err)
	}
	if res.SignedHeader.Commit == nil {
		return false, fmt.Errorf("localnet: commit at %d: empty", h)
	}
	for _, sig := range res.SignedHeader.Commit.Signatures {
		if sig.BlockIDFlag == types.BlockIDFlagCommit && strings.EqualFold(sig.ValidatorAddress.String(), addrHex) {
			return true, nil
		}
	}
	return false, nil
}

// Signers splits the heights from..to (inclusive) into those whose commit
// the validator addrHex signed and those it did not.
func Signers(ctx context.Context, rpc string, from, to int64, addrHex string) (signed, missed []int64, err error) {
	c, err := client(rpc)
	if err != nil {
		return nil, nil, err
	}
	for h := from; h <= to; h++ {
		ok, err := signedAt(ctx, c, addrHex, h)
		if err != nil {
			return signed, missed, err
		}
		if ok {
			signed = append(signed, h)
		} else {
			missed = append(missed, h)
		}
	}
	return signed, missed, nil
}

// DuplicateVoteEvidence scans the blocks from..to (inclusive) and returns
// one description per DuplicateVoteEvidence they carry:
// "block=B height=H validator=ADDR". Committed evidence usually lands a
// block or two after the offence, so scan past it.
func DuplicateVoteEvidence(ctx context.Context, rpc string, from, to int64) ([]string, error) {
	c, err := client(rpc)
	if err != nil {
		return nil, err
	}
	var out []string
	for h := from; h <= to; h++ {
		res, err := c.Block(ctx, &h)
		if err != nil {
			return out, fmt.Errorf("localnet: block %d: %w", h, err)
		}
		if res.Block == nil {
			return out, fmt.Errorf("localnet: block %d: empty", h)
		}
		for _, ev := range res.Block.Evidence.Evidence {
			dv, ok := ev.(*types.DuplicateVoteEvidence)
			if !ok {
				continue
			}
			addr := ""
			if dv.VoteA != nil {
				addr = dv.VoteA.ValidatorAddress.String()
			}
			out = append(out, fmt.Sprintf("block=%d height=%d validator=%s", h, dv.Height(), addr))
		}
	}
	return out, nil
}

// Power returns the voting power of validator addrHex in the validator set
// at the node's latest height, or 0 if it is not in the set (the kvstore
// app removes a validator punished for evidence).
func Power(ctx context.Context, rpc, addrHex string) (int64, error) {
	c, err := client(rpc)
	if err != nil {
		return 0, err
	}
	perPage := 100
	seen := 0
	for page := 1; ; page++ {
		res, err := c.Validators(ctx, nil, &page, &perPage)
		if err != nil {
			return 0, fmt.Errorf("localnet: validators page %d: %w", page, err)
		}
		for _, v := range res.Validators {
			if strings.EqualFold(v.Address.String(), addrHex) {
				return v.VotingPower, nil
			}
		}
		seen += len(res.Validators)
		if len(res.Validators) == 0 || seen >= res.Total {
			return 0, nil
		}
	}
}
