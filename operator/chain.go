package operator

import (
	"context"
	"fmt"
	"strings"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"
)

// Chain is what a hand-over reads of the chain.
type Chain interface {
	// Height is the latest block height.
	Height(ctx context.Context) (int64, error)
	// SignedAt reports whether the commit of height h carries the
	// validator's signature.
	SignedAt(ctx context.Context, h int64) (bool, error)
}

// ChainWatch reads a CometBFT chain through the first of several node
// RPCs that answers (a node of the hand-over may be restarting).
type ChainWatch struct {
	rpcs    []string
	address string // the validator's address, upper-case hex
}

// NewChainWatch watches the validator with address through rpcs.
func NewChainWatch(rpcs []string, address string) *ChainWatch {
	return &ChainWatch{rpcs: rpcs, address: address}
}

func (w *ChainWatch) each(ctx context.Context, f func(*rpchttp.HTTP) error) error {
	var errs []string
	for _, r := range w.rpcs {
		c, err := rpchttp.New(r, "/websocket")
		if err == nil {
			if err = f(c); err == nil {
				return nil
			}
		}
		errs = append(errs, fmt.Sprintf("%s: %v", r, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("no node RPC known: give --node-rpc")
	}
	return fmt.Errorf("no node RPC answered (%s)", strings.Join(errs, "; "))
}

// Height is the latest block height.
func (w *ChainWatch) Height(ctx context.Context) (int64, error) {
	var h int64
	err := w.each(ctx, func(c *rpchttp.HTTP) error {
		st, err := c.Status(ctx)
		if err == nil {
			h = st.SyncInfo.LatestBlockHeight
		}
		return err
	})
	return h, err
}

// SignedAt reports whether the commit of height h carries the
// validator's signature.
func (w *ChainWatch) SignedAt(ctx context.Context, h int64) (bool, error) {
	var signed bool
	err := w.each(ctx, func(c *rpchttp.HTTP) error {
		res, err := c.Commit(ctx, &h)
		if err != nil {
			return err
		}
		if res.SignedHeader.Commit == nil {
			return fmt.Errorf("no commit at height %d", h)
		}
		for _, s := range res.SignedHeader.Commit.Signatures {
			if s.BlockIDFlag == types.BlockIDFlagCommit && strings.EqualFold(s.ValidatorAddress.String(), w.address) {
				signed = true
			}
		}
		return nil
	})
	return signed, err
}
