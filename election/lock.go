package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// maxWait caps the wait time of the blocking queries in Acquire. They also
// wait at most one TTL, so a standby's view of the key is refreshed at
// least that often even if a change notification is lost.
const maxWait = time.Minute

// Acquire blocks until this session holds the lock (nil), ctx ends
// (ctx.Err()) or the session is lost (its Err()). It waits with Consul
// blocking queries on the lock key and tries to take the key whenever no
// session holds it. After an invalidation Consul refuses the key for the
// lock-delay; Acquire then retries every 500 ms until it gets it. The lock
// value is this replica's LeaderInfo with Since = now.
//
// Not guaranteed: when ctx ends or the session is lost while a take is in
// flight, Consul may still grant it; Close (or the session's expiry, with
// lock-delay) releases it.
func (s *Session) Acquire(ctx context.Context) error {
	var index uint64
	for {
		if err := s.Err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.Leader() {
			return nil
		}
		pair, next, err := s.watch(ctx, index)
		if err != nil {
			if err := s.pause(ctx, retryInterval); err != nil {
				return err
			}
			index = 0
			continue
		}
		index = next
		switch {
		case pair != nil && pair.Session == s.id:
			// An earlier take whose answer was lost.
			s.tookLock(pair.Value)
		case pair == nil || pair.Session == "":
			if ok, _ := s.take(ctx); ok {
				continue // the loop head reports leadership or a lost session
			}
			// Refused (lock-delay, or another replica was quicker) or
			// failed (reported by take); the loop head sees a lost session.
			if err := s.pause(ctx, retryInterval); err != nil {
				return err
			}
			index = 0
		}
	}
}

// watch reads the lock key; with index > 0 it blocks until the key changes
// past index or the wait time ends. It returns the index to wait on next.
func (s *Session) watch(ctx context.Context, index uint64) (*api.KVPair, uint64, error) {
	cfg := s.e.cfg
	wait := min(cfg.TTL, maxWait)
	// Consul adds up to wait/16 of jitter to a blocking query.
	qctx, cancel := context.WithTimeout(ctx, wait+wait/16+cfg.CallTimeout)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	q := &api.QueryOptions{WaitIndex: index, WaitTime: wait, RequireConsistent: true}
	pair, meta, err := cfg.Client.KV().Get(s.e.lockKey, q.WithContext(qctx))
	if err != nil {
		err = fmt.Errorf("watch %s: %w", s.e.lockKey, err)
		s.e.consulError(err, ctx, s.ctx)
		return nil, 0, err
	}
	next := meta.LastIndex
	if next < index {
		next = 0 // the index went backwards (e.g. a snapshot restore): start over
	}
	return pair, next, nil
}

// take tries once to take the free lock key.
func (s *Session) take(ctx context.Context) (bool, error) {
	cfg := s.e.cfg
	value, err := json.Marshal(LeaderInfo{ReplicaID: cfg.ReplicaID, Hostname: cfg.Hostname, Since: s.e.now()})
	if err != nil {
		return false, err
	}
	lctx, cancel, err := s.leaseCtx(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	pair := &api.KVPair{Key: s.e.lockKey, Value: value, Session: s.id}
	ok, _, err := cfg.Client.KV().Acquire(pair, (&api.WriteOptions{}).WithContext(lctx))
	if err != nil {
		err = fmt.Errorf("acquire %s: %w", s.e.lockKey, err)
		s.e.consulError(err, ctx, s.ctx)
		return false, err
	}
	if ok {
		s.tookLock(value)
	}
	return ok, nil
}

// tookLock records that the session holds the lock with value, unless done
// is already closed.
func (s *Session) tookLock(value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.leader = true
		s.value = value
	}
}

// pause waits d, or less when ctx ends or the session is lost.
func (s *Session) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return s.Err()
	case <-t.C:
		return nil
	}
}

// Publish writes value to the watermark key in one Consul transaction that
// also checks this session holds the lock key, so a replica that lost the
// lock can never write it. It fails with an error wrapping ErrLockTaken
// when the check fails (and then, if this session thought it led, closes
// Done with ErrLockTaken too), and with the session's Err once Done is
// closed.
func (s *Session) Publish(ctx context.Context, value []byte) error {
	lctx, cancel, err := s.leaseCtx(ctx)
	if err != nil {
		return fmt.Errorf("publish watermark: %w", err)
	}
	defer cancel()
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: s.e.lockKey, Session: s.id}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: s.e.watermarkKey, Value: value}},
	}
	if err := s.txn(lctx, ops, ctx, s.ctx); err != nil {
		if errors.Is(err, ErrLockTaken) && s.Leader() {
			s.fail(ErrLockTaken)
		}
		return fmt.Errorf("publish watermark: %w", err)
	}
	return nil
}

// Close ends the session: it stops the renew loop (Done closes with
// ErrClosed unless it closed before), releases the lock if this session
// holds it — in the same transaction as a final watermark write when final
// is not nil — and destroys the session. A release skips lock-delay, so a
// standby takes over at once; call Close only after the node has stopped
// (S3). Each call is bounded by ctx and CallTimeout; with ctx already
// ended nothing is released and Consul frees the lock only at expiry,
// after lock-delay.
//
// Close after Done is best effort: the release transaction checks the
// lock, so it is harmless, and its failure is returned. Close is
// idempotent: later calls return the first call's result.
func (s *Session) Close(ctx context.Context, final []byte) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx, final) })
	return s.closeErr
}

func (s *Session) close(ctx context.Context, final []byte) error {
	s.fail(ErrClosed)
	<-s.loopDone
	s.mu.Lock()
	held, value := s.leader, s.value
	s.mu.Unlock()

	var errs []error
	// Release even when no Acquire reported success: a take whose answer
	// was lost may still have succeeded. The check makes it a no-op
	// otherwise.
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: s.e.lockKey, Session: s.id}}}
	if final != nil {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: s.e.watermarkKey, Value: final}})
	}
	ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVUnlock, Key: s.e.lockKey, Session: s.id, Value: value}})
	cctx, cancel := context.WithTimeout(ctx, s.e.cfg.CallTimeout)
	err := s.txn(cctx, ops, ctx)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, ErrLockTaken) && !held && final == nil:
		// A standby's close: there was nothing to release.
	case errors.Is(err, ErrLockTaken) && final != nil:
		errs = append(errs, fmt.Errorf("release lock: final watermark not written: %w", err))
	default:
		errs = append(errs, fmt.Errorf("release lock: %w", err))
	}

	cctx, cancel = context.WithTimeout(ctx, s.e.cfg.CallTimeout)
	defer cancel()
	if _, err := s.e.cfg.Client.Session().Destroy(s.id, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
		err = fmt.Errorf("destroy session %s: %w", s.id, err)
		s.e.consulError(err, ctx)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// txn runs ops; a rolled-back transaction is an error wrapping
// ErrLockTaken (every transaction here starts with the session check),
// with Consul's reasons. Call errors are reported unless a caller's context
// ended.
func (s *Session) txn(ctx context.Context, ops api.TxnOps, callers ...context.Context) error {
	ok, resp, _, err := s.e.cfg.Client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		err = fmt.Errorf("consul transaction: %w", err)
		s.e.consulError(err, callers...)
		return err
	}
	if ok {
		return nil
	}
	var reasons []string
	if resp != nil {
		for _, e := range resp.Errors {
			reasons = append(reasons, e.What)
		}
	}
	return fmt.Errorf("%w: consul rolled the transaction back: %s", ErrLockTaken, strings.Join(reasons, "; "))
}
