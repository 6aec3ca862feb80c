package election

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// casAttempts bounds the re-reads after a watermark check-and-set lost a
// race with another write.
const casAttempts = 3

// errWatermarkChanged: a transaction's check-and-set on the watermark key
// failed; the key changed since it was read.
var errWatermarkChanged = errors.New("the watermark key changed since it was read")

// Publish writes value to the watermark key in one Consul transaction that
// also checks this session holds the lock key, so a replica that lost the
// lock can never write it. It fails with an error wrapping ErrLockTaken
// when the check fails (and then, if this session thought it led, closes
// Done with ErrLockTaken too), and with the session's Err once Done is
// closed.
//
// With Config.CompareWatermarks the published watermark never goes down:
// Publish reads it (consistent read), and a value below it is not written
// (an error wrapping ErrWatermarkLower; Done stays open); an equal value is
// not written either (nil, once the lock check passed); a higher one is
// written with a check-and-set on the index read, re-read and retried up
// to 3 times when another write came first.
func (s *Session) Publish(ctx context.Context, value []byte) error {
	for range casAttempts {
		op, err := s.planWatermark(ctx, value, false)
		if err != nil {
			return fmt.Errorf("publish watermark: %w", err)
		}
		lctx, cancel, err := s.leaseCtx(ctx)
		if err != nil {
			return fmt.Errorf("publish watermark: %w", err)
		}
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: s.e.lockKey, Session: s.id}}, op}
		err = s.txn(lctx, ops, ctx, s.ctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errWatermarkChanged):
			continue
		case errors.Is(err, ErrLockTaken) && s.Leader():
			s.fail(ErrLockTaken)
		}
		return fmt.Errorf("publish watermark: %w", err)
	}
	return fmt.Errorf("publish watermark: %w %d times in a row", errWatermarkChanged, casAttempts)
}

// planWatermark returns the transaction operation that writes value to the
// watermark key: a plain set without Config.CompareWatermarks, else a
// check-and-set on the index of a consistent read (0: create only), or,
// for a value equal to the stored one, only a check of that index. A value
// below the stored one is an error wrapping ErrWatermarkLower. closing
// (Close's final write): the read is bounded by CallTimeout only, not by
// the lease, and an equal value needs no operation (nil).
func (s *Session) planWatermark(ctx context.Context, value []byte, closing bool) (*api.TxnOp, error) {
	key := s.e.watermarkKey
	cmp := s.e.cfg.CompareWatermarks
	if cmp == nil {
		return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: value}}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.e.cfg.CallTimeout)
	if !closing {
		var err error
		cancel()
		if rctx, cancel, err = s.leaseCtx(ctx); err != nil {
			return nil, err
		}
	}
	stored, err := s.e.get(rctx, key)
	cancel()
	if err != nil {
		s.e.consulError(err, ctx)
		return nil, err
	}
	if stored == nil {
		return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: value, Index: 0}}, nil
	}
	c, err := cmp(value, stored.Value)
	switch {
	case err != nil:
		return nil, fmt.Errorf("compare watermark %q with the published %q: %w", value, stored.Value, err)
	case c < 0:
		return nil, fmt.Errorf("%w: %q is below the published %q; not written", ErrWatermarkLower, value, stored.Value)
	case c == 0:
		if closing {
			return nil, nil
		}
		return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: key, Index: stored.ModifyIndex}}, nil
	}
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: value, Index: stored.ModifyIndex}}, nil
}
