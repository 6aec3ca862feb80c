package election

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Fence commits value to the watermark key under the lock, in one Consul
// transaction: a check that this session holds the lock key, then a
// check-and-set of the watermark key at index (0: only if the key does not
// exist). It returns the key's new ModifyIndex, the index the next Fence
// gives.
//
// The contract: a nil error means value is committed in Consul, under the
// lock: Consul applies session invalidations and transactions in one
// order, so no fence of a session is applied after the session lost the
// lock, however late it arrives. Any other outcome means the caller must
// treat what value records (a signature) as not released:
//
//   - ErrLockTaken: the session does not hold the lock key (another
//     session or none holds it, or it is gone). Nothing was written. If
//     this session had taken the lock, Done is closed with ErrLockTaken.
//   - ErrWatermarkMoved: the lock check passed but the watermark key is
//     not at index. Nothing was written; Done stays open.
//   - ErrFenceUnknown: no usable answer (a transport error, a timeout, a
//     response other than Consul's commit or roll-back): the write may or
//     may not have been applied, so the watermark may now be ahead of what
//     the caller released. It wraps the cause (context.DeadlineExceeded
//     for a timeout). The session and the lock are left as they are.
//   - the session's Err (wrapped) when Done is already closed, or
//     ErrSessionExpired when no time is left to the local deadline:
//     nothing was sent.
//   - another error: Consul rolled the transaction back for another
//     reason, which the message names. Nothing was written.
//
// Fence is never retried: a second attempt after an unknown outcome is
// the caller's decision, after a fresh read. Each call is bounded by ctx,
// by CallTimeout and by the time left to the local lease deadline, and
// ends when Done is closed.
//
// Fence checks Consul only. In restart mode (Config.Fenced false) a
// session in its unclean-takeover wait already holds the lock key: fence
// only after Acquire returned.
func (s *Session) Fence(ctx context.Context, value []byte, index uint64) (newIndex uint64, err error) {
	lctx, cancel, err := s.leaseCtx(ctx)
	if err != nil {
		return 0, fmt.Errorf("fence: %w", err)
	}
	defer cancel()
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: s.e.lockKey, Session: s.id}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.e.watermarkKey, Value: value, Index: index}},
	}
	ok, resp, _, err := s.e.cfg.Client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(lctx))
	if err != nil {
		err = fmt.Errorf("%w: consul transaction: %w", ErrFenceUnknown, err)
		s.e.consulError(err, ctx, s.ctx)
		return 0, fmt.Errorf("fence: %w", err)
	}
	if !ok {
		err := rolledBack(resp)
		if errors.Is(err, ErrLockTaken) && s.holds() {
			s.fail(ErrLockTaken)
		}
		return 0, fmt.Errorf("fence: %w", err)
	}
	for _, r := range slices.Backward(resp.Results) {
		if r != nil && r.KV != nil && r.KV.Key == s.e.watermarkKey {
			return r.KV.ModifyIndex, nil
		}
	}
	return 0, fmt.Errorf("fence: %w: consul committed the transaction but returned no index for %s", ErrFenceUnknown, s.e.watermarkKey)
}

// rolledBack classifies the answer to a fence transaction that Consul
// rolled back: ErrLockTaken when the lock check (operation 0) failed,
// ErrWatermarkMoved when only the check-and-set (operation 1) did, a plain
// error otherwise; each with Consul's reasons.
func rolledBack(resp *api.TxnResponse) error {
	if resp == nil || len(resp.Errors) == 0 {
		return errors.New("consul rolled the transaction back without a reason")
	}
	var reasons []string
	var failed []int
	for _, e := range resp.Errors {
		reasons = append(reasons, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
		failed = append(failed, e.OpIndex)
	}
	why := strings.Join(reasons, "; ")
	switch {
	case slices.Contains(failed, 0):
		return fmt.Errorf("%w: consul rolled the transaction back: %s", ErrLockTaken, why)
	case !slices.ContainsFunc(failed, func(i int) bool { return i != 1 }):
		return fmt.Errorf("%w: consul rolled the transaction back: %s", ErrWatermarkMoved, why)
	}
	return fmt.Errorf("consul rolled the transaction back: %s", why)
}

// ReadWatermark reads the watermark key with a consistent read and returns
// its value and ModifyIndex, the index a Fence checks it at; nil, 0, nil
// when the key does not exist (a present key with an empty value gives an
// empty, non-nil value). Bounded by ctx and CallTimeout.
func (e *Election) ReadWatermark(ctx context.Context) (value []byte, index uint64, err error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	pair, err := e.get(cctx, e.watermarkKey)
	if err != nil {
		e.consulError(err, ctx)
		return nil, 0, err
	}
	if pair == nil {
		return nil, 0, nil
	}
	return present(pair.Value), pair.ModifyIndex, nil
}

// WatchWatermark is a Consul blocking query on the watermark key: it
// returns once Consul's index for the key moved past index, or when the
// query's wait (one TTL, at most a minute) ended with no change, then with
// the same value and index. index 0 returns at once. The value is nil when
// the key does not exist.
//
// newIndex is Consul's blocking index, to pass to the next call: the key's
// ModifyIndex when it exists. For an absent key Consul answers with the
// whole KV store's index, so writes to other keys may wake the query. An
// index lower than the one given (Consul's index went backwards, as after
// a snapshot restore) is returned as it is: the caller must then re-read
// (ReadWatermark) and restart its watch from it, as Consul's blocking
// query rules say. Consul answers a watch at the old index with the
// lower one only when the wait ends (measured: a full wait after the
// restore). Only ReadWatermark's index is a fence index.
//
// The read is Consul's default mode (the leader answers, without a
// consistency check): the value may be a moment old around a Consul leader
// change. Bounded by ctx and the wait plus Consul's jitter plus
// CallTimeout.
func (e *Election) WatchWatermark(ctx context.Context, index uint64) (value []byte, newIndex uint64, err error) {
	wait := min(e.cfg.TTL, maxWait)
	// Consul adds up to wait/16 of jitter to a blocking query.
	qctx, cancel := context.WithTimeout(ctx, wait+wait/16+e.cfg.CallTimeout)
	defer cancel()
	q := &api.QueryOptions{WaitIndex: index, WaitTime: wait}
	pair, meta, err := e.cfg.Client.KV().Get(e.watermarkKey, q.WithContext(qctx))
	if err != nil {
		err = fmt.Errorf("watch %s: %w", e.watermarkKey, err)
		e.consulError(err, ctx)
		return nil, 0, err
	}
	if pair == nil {
		return nil, meta.LastIndex, nil
	}
	return present(pair.Value), meta.LastIndex, nil
}

// DestroyStaleHolder destroys session holder if a consistent read of the
// lock key shows it still holds the lock, and reports whether it did.
// holder is the session a standby saw holding the lock when it decided to
// depose it (LeaderInfo.Session from Leader): if the lock is free, absent
// or held by another session now (it changed hands since, to this
// replica's own session maybe), nothing is destroyed (false, nil). Consul
// then frees the key, keeping its value, and refuses it for the holder's
// lock-delay; the holder's fences fail from the destroy on. Meant for
// deposition, where the fence makes it safe (see the package doc).
//
// A lock key that names another validator's public key is not touched: an
// error wrapping ErrForeignLock. Not guaranteed: the lock may change hands
// between the read and the destroy; the session destroyed is then holder,
// by its ID, which no longer holds the lock. Each call is bounded by ctx
// and CallTimeout.
func (e *Election) DestroyStaleHolder(ctx context.Context, holder string) (destroyed bool, err error) {
	if holder == "" {
		return false, errors.New("destroy the lock holder: no session named")
	}
	rctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	pair, err := e.get(rctx, e.lockKey)
	cancel()
	if err != nil {
		e.consulError(err, ctx)
		return false, err
	}
	if pair == nil || pair.Session != holder {
		return false, nil
	}
	if err := e.foreign(pair); err != nil {
		return false, err
	}
	dctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	if _, err := e.cfg.Client.Session().Destroy(holder, (&api.WriteOptions{}).WithContext(dctx)); err != nil {
		err = fmt.Errorf("destroy session %s holding %s: %w", holder, e.lockKey, err)
		e.consulError(err, ctx)
		return false, err
	}
	return true, nil
}

// present is the value of a key that exists: never nil.
func present(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}
