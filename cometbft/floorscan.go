package cometbft

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/cometbft/cometbft/types"
)

// floorBatch is how many commits one JSON-RPC batch request asks for:
// CometBFT's default [rpc] max_request_batch_size. A node that refuses a
// batch is read one height at a time.
const floorBatch = 10

// floorParallel is how many requests a scan has in flight at once.
const floorParallel = 4

// errNoCommit: the node answered for a height without its commit.
var errNoCommit = errors.New("no commit in the answer")

// floorScan is the chain-floor scan of one validator (addr) on one node
// (the node behind rpc), with what its earlier scans learnt: a Node and a
// Remote each hold one for their life, built with their RPC client and
// validator key, so that a cache is of one client and one validator and
// never serves another. What it keeps are facts about the chain (a height
// signed, a canonical commit without the signature), so keeping them as
// long as the client lives is safe.
type floorScan struct {
	rpc  *rpchttp.HTTP
	addr string
	sem  chan struct{} // one scan at a time uses cache
	// cache is guarded by sem.
	cache floorCache
}

// newFloorScan is the floor scan of validator addr on the node behind
// rpc, knowing nothing yet.
func newFloorScan(rpc *rpchttp.HTTP, addr string) *floorScan {
	return &floorScan{rpc: rpc, addr: addr, sem: make(chan struct{}, 1)}
}

// floorCache is what earlier scans of one node learnt about one
// validator's signatures.
type floorCache struct {
	chainID string // the node's network the facts are of
	// signed is the highest height found carrying the signature (0: none)
	// and the round of that commit.
	signed struct {
		height int64
		round  int32
	}
	// read are spans of heights above signed.height whose canonical
	// commit was read without the signature; disjoint, highest first.
	read []span
	// noBatch: the node refused a batch request that it answered one
	// height at a time (a lower max_request_batch_size).
	noBatch bool
}

// span is the heights lo..hi.
type span struct{ lo, hi int64 }

// lastSigned is LastSigned of s's validator on s's node: it brings the
// cache up to date with the node (heights down to window below its latest
// and not below its earliest) and returns the floor, within
// FloorScanTime.
func (s *floorScan) lastSigned(ctx context.Context, window int64) (int64, int32, error) {
	if window < 1 {
		return 0, 0, fmt.Errorf("scan window %d: want at least 1 height", window)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	defer func() { <-s.sem }()
	budget := FloorScanTime
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)/2)
	}
	sctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	c := &s.cache
	if err := c.update(sctx, s.rpc, s.addr, window); err != nil {
		if sctx.Err() != nil && ctx.Err() == nil {
			return 0, 0, fmt.Errorf("%w (%v): %w", ErrFloorIncomplete, budget, err)
		}
		return 0, 0, err
	}
	return c.signed.height, c.signed.round, nil
}

// update reads, from the node's latest height down, every height of the
// window not below the node's earliest, the floor and the spans already
// read, and stops at the first one signed: it is the highest.
func (c *floorCache) update(ctx context.Context, rpc *rpchttp.HTTP, addr string, window int64) error {
	st, err := rpc.Status(ctx)
	if err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	if st.NodeInfo.Network != c.chainID {
		*c = floorCache{chainID: st.NodeInfo.Network}
	}
	top := st.SyncInfo.LatestBlockHeight
	limit := max(top-window+1, st.SyncInfo.EarliestBlockHeight, c.signed.height+1, 1)
	for h := c.unread(top); h >= limit; {
		var round [][]int64 // up to floorParallel batches, highest first
		for len(round) < floorParallel && h >= limit {
			var b []int64
			for len(b) < floorBatch && h >= limit {
				b = append(b, h)
				h = c.unread(h - 1)
			}
			round = append(round, b)
		}
		got := c.fetch(ctx, rpc, round)
		for i, b := range round {
			commits, gone := got[i].commits, false
			if got[i].err != nil || !complete(commits, b) {
				if commits, gone, err = readEach(ctx, rpc, b); err != nil {
					return err
				}
				if !c.noBatch && !gone && got[i].err != nil {
					c.noBatch = true
				}
			}
			for j, res := range commits {
				if r, ok := signedBy(res, addr); ok {
					c.found(b[j], r)
					return nil
				}
				if res.CanonicalCommit {
					c.markRead(b[j])
				}
			}
			if gone { // the rest is below the node's earliest height now
				return nil
			}
		}
	}
	return nil
}

// fetched is the answer to one batch.
type fetched struct {
	commits []*ctypes.ResultCommit
	err     error
}

// fetch reads the commits of each batch, the batches in parallel.
func (c *floorCache) fetch(ctx context.Context, rpc *rpchttp.HTTP, round [][]int64) []fetched {
	out := make([]fetched, len(round))
	var wg sync.WaitGroup
	for i, b := range round {
		wg.Go(func() {
			if c.noBatch {
				out[i].commits, out[i].err = readAll(ctx, rpc, b)
			} else {
				out[i].commits, out[i].err = readBatch(ctx, rpc, b)
			}
		})
	}
	wg.Wait()
	return out
}

// readBatch reads the commits at heights in one batch request.
func readBatch(ctx context.Context, rpc *rpchttp.HTTP, heights []int64) ([]*ctypes.ResultCommit, error) {
	b := rpc.NewBatch()
	out := make([]*ctypes.ResultCommit, len(heights))
	for i := range heights {
		res, err := b.Commit(ctx, &heights[i])
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	if _, err := b.Send(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// readAll reads the commits at heights one request at a time.
func readAll(ctx context.Context, rpc *rpchttp.HTTP, heights []int64) ([]*ctypes.ResultCommit, error) {
	out := make([]*ctypes.ResultCommit, len(heights))
	for i := range heights {
		res, err := rpc.Commit(ctx, &heights[i])
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

// readEach reads the commits at heights (highest first) one at a time.
// A height that cannot be read is an error unless the node's earliest
// height is now above it: then it and the heights below are gone, and
// readEach returns the commits above it with gone set.
func readEach(ctx context.Context, rpc *rpchttp.HTTP, heights []int64) (commits []*ctypes.ResultCommit, gone bool, err error) {
	for _, h := range heights {
		res, err := rpc.Commit(ctx, &h)
		if err == nil && !complete([]*ctypes.ResultCommit{res}, []int64{h}) {
			err = errNoCommit
		}
		if err == nil {
			commits = append(commits, res)
			continue
		}
		st, serr := rpc.Status(ctx)
		if serr == nil && h < st.SyncInfo.EarliestBlockHeight {
			return commits, true, nil
		}
		return nil, false, fmt.Errorf("commit at height %d: %w", h, err)
	}
	return commits, false, nil
}

// complete says commits holds a commit of each of heights, in order.
func complete(commits []*ctypes.ResultCommit, heights []int64) bool {
	if len(commits) != len(heights) {
		return false
	}
	for i, res := range commits {
		if res == nil || res.Header == nil || res.Commit == nil || res.Header.Height != heights[i] || res.Commit.Height != heights[i] {
			return false
		}
	}
	return true
}

// signedBy is the round of res if it carries addr's vote for the block.
func signedBy(res *ctypes.ResultCommit, addr string) (int32, bool) {
	for _, sig := range res.Commit.Signatures {
		if sig.BlockIDFlag == types.BlockIDFlagCommit && sig.ValidatorAddress.String() == addr {
			return res.Commit.Round, true
		}
	}
	return 0, false
}

// unread is the highest height at or below h not in a read span.
func (c *floorCache) unread(h int64) int64 {
	for _, s := range c.read { // highest first
		if s.lo <= h && h <= s.hi {
			h = s.lo - 1
		}
	}
	return h
}

// markRead records that height h's canonical commit lacks the signature.
func (c *floorCache) markRead(h int64) {
	c.read = append(c.read, span{h, h})
	slices.SortFunc(c.read, func(a, b span) int { return cmp.Compare(b.hi, a.hi) })
	merged := c.read[:1]
	for _, s := range c.read[1:] {
		last := &merged[len(merged)-1]
		if s.hi >= last.lo-1 {
			last.lo = min(last.lo, s.lo)
			continue
		}
		merged = append(merged, s)
	}
	c.read = merged
}

// found raises the floor to height h, round r; the spans at or below it
// no longer matter.
func (c *floorCache) found(h int64, r int32) {
	c.signed.height, c.signed.round = h, r
	c.read = slices.DeleteFunc(c.read, func(s span) bool { return s.hi <= h })
}
