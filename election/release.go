package election

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Close ends the session: it stops the renew loop (Done closes with
// ErrClosed unless it closed before), releases the lock if this session
// holds it — in the same transaction as a final watermark write when final
// is not nil — and destroys the session. A release skips lock-delay; the
// value it leaves in the lock key carries the clean-release marker, so a
// standby takes over at once, without the unclean-takeover wait. Call
// Close only after the node has stopped (S3): the marker says so.
//
// A session that took the lock but whose unclean-takeover wait had not
// ended releases it without the marker: the previous leader may not have
// stopped yet, so the next taker waits in its turn.
//
// With Config.CompareWatermarks the final write never lowers the published
// watermark: a final value below it is not written, the lock is still
// released, and the returned error wraps ErrWatermarkLower. It is written
// with a check-and-set in the release transaction, retried as in Publish.
//
// Each call is bounded by ctx and CallTimeout; with ctx already ended
// nothing is released and Consul frees the lock only at expiry, after
// lock-delay. When Consul does not answer (no Raft leader, no quorum, out
// of reach), Close returns the error and goes on trying in the background
// every CloseRetryInterval until Consul answers or 2×TTL has passed (see
// retryClose and Config.OnLateClose). Close after Done is best effort: the release transaction
// checks the lock, so it is harmless, and its failure is returned. Close
// is idempotent: later calls return the first call's result. Close after
// Abandon releases nothing and returns an error wrapping ErrAbandoned.
func (s *Session) Close(ctx context.Context, final []byte) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx, final) })
	return s.closeErr
}

// Abandon stops the renew loop and closes Done with ErrAbandoned, without
// releasing the lock or destroying the session: Consul expires the session
// TTL (up to 2×TTL) after the last renew it received, then holds the lock
// for lock-delay, and the next taker finds no clean-release marker and
// waits max(LockDelay, TTL) more. For a node that could not be reaped
// (S3). A renew already in flight may still reach Consul and extend the
// session once. Abandon after Close does nothing; Close after Abandon
// releases nothing. It is idempotent and does not block on Consul.
func (s *Session) Abandon() {
	s.mu.Lock()
	if !s.closing {
		s.abandoned = true
		s.failLocked(ErrAbandoned)
	}
	s.mu.Unlock()
}

func (s *Session) close(ctx context.Context, final []byte) error {
	s.mu.Lock()
	if s.abandoned {
		s.mu.Unlock()
		return fmt.Errorf("close: %w: lock not released, session not destroyed", ErrAbandoned)
	}
	s.closing = true
	s.failLocked(ErrClosed)
	s.mu.Unlock()
	<-s.loopDone
	s.mu.Lock()
	held, value := s.held, s.value
	clean := held && !s.e.now().Before(s.signAt)
	s.mu.Unlock()

	given := ctx.Err() == nil // a caller that already gave up gets no retries
	err := s.closeTry(ctx, final, s.releaseValue(value, clean), held, false)
	if err != nil && given && !errors.Is(err, ErrLockTaken) && !errors.Is(err, ErrWatermarkLower) {
		go s.retryClose(final, value, clean, held, err)
	}
	return err
}

// closeTry releases the lock and destroys the session, once. With
// keepUnreleased, a release that got no answer leaves the session alone
// (a destroy would free the lock without the clean-release marker and
// under lock-delay): the next attempt releases first.
func (s *Session) closeTry(ctx context.Context, final, value []byte, held, keepUnreleased bool) error {
	var errs []error
	if err := s.release(ctx, final, value, held); err != nil {
		if keepUnreleased && !errors.Is(err, ErrLockTaken) && !errors.Is(err, ErrWatermarkLower) {
			return err
		}
		errs = append(errs, err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.e.cfg.CallTimeout)
	defer cancel()
	if _, err := s.e.cfg.Client.Session().Destroy(s.id, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
		err = fmt.Errorf("destroy session %s: %w", s.id, err)
		s.e.consulError(err, ctx)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CloseRetryInterval is the pause between the attempts of a Close that
// Consul did not answer.
const CloseRetryInterval = time.Second

// retryClose goes on with a Close that failed for want of an answer
// (Consul between two Raft leaders, without quorum, or out of reach):
// every CloseRetryInterval it releases the lock and destroys the session
// again, until that succeeds or the time by which Consul expires the
// session by itself (2×TTL from now) has passed. What Close was called for
// holds for every attempt (the node has stopped, or signing is revoked),
// so a late release is as safe as a prompt one, and it frees the lock as
// soon as Consul answers instead of after the session's expiry: a leader
// that lost its lease to a Consul outage gives the lock back the moment
// the outage ends.
func (s *Session) retryClose(final, value []byte, clean, held bool, first error) {
	until := s.e.now().Add(2 * s.e.cfg.TTL)
	err, attempt := first, 1
	for s.e.now().Before(until) {
		time.Sleep(CloseRetryInterval)
		attempt++
		// The release value is made again: its release time is now.
		err = s.closeTry(context.Background(), final, s.releaseValue(value, clean), held, true)
		if errors.Is(err, ErrLockTaken) {
			// Not this session's any more: an earlier attempt's release
			// or destroy went through after all.
			err = nil
		}
		if err == nil || errors.Is(err, ErrWatermarkLower) {
			break
		}
	}
	if s.e.cfg.OnLateClose != nil {
		s.e.cfg.OnLateClose(attempt, err)
	}
}

// release unlocks the lock key, leaving value in it, with the final
// watermark write when final is not nil.
func (s *Session) release(ctx context.Context, final, value []byte, held bool) error {
	var skipped error // why the final watermark was not written
	for range casAttempts {
		// Release even when no Acquire reported success: a take whose
		// answer was lost may still have succeeded. The check makes it a
		// no-op otherwise.
		ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: s.e.lockKey, Session: s.id}}}
		if final != nil && skipped == nil {
			op, err := s.planWatermark(ctx, final, true)
			switch {
			case errors.Is(err, ErrWatermarkLower):
				skipped = err
			case err != nil:
				skipped = fmt.Errorf("final watermark not written: %w", err)
			case op != nil:
				ops = append(ops, op)
			}
		}
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVUnlock, Key: s.e.lockKey, Session: s.id, Value: value}})
		cctx, cancel := context.WithTimeout(ctx, s.e.cfg.CallTimeout)
		err := s.txn(cctx, ops, ctx)
		cancel()
		switch {
		case err == nil:
			if skipped != nil {
				return fmt.Errorf("lock released, final watermark not written: %w", skipped)
			}
			return nil
		case errors.Is(err, errWatermarkChanged):
			continue
		case errors.Is(err, ErrLockTaken) && !held && final == nil:
			return nil // a standby's close: there was nothing to release
		case errors.Is(err, ErrLockTaken) && final != nil:
			return fmt.Errorf("release lock: final watermark not written: %w", err)
		}
		return fmt.Errorf("release lock: %w", err)
	}
	// The watermark kept changing: release without it.
	skipped = fmt.Errorf("%w %d times in a row", errWatermarkChanged, casAttempts)
	if err := s.release(ctx, nil, value, held); err != nil {
		return errors.Join(fmt.Errorf("final watermark not written: %w", skipped), err)
	}
	return fmt.Errorf("lock released, final watermark not written: %w", skipped)
}

// txn runs ops, whose first one is the lock session check. A rolled-back
// transaction is an error wrapping ErrLockTaken when that check failed,
// errWatermarkChanged when only a check-and-set or index check of the
// watermark failed, a plain error otherwise; all with Consul's reasons.
// Call errors are reported unless a caller's context ended.
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
	var failed []int
	if resp != nil {
		for _, e := range resp.Errors {
			reasons = append(reasons, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
			failed = append(failed, e.OpIndex)
		}
	}
	why := strings.Join(reasons, "; ")
	switch {
	case slices.Contains(failed, 0):
		return fmt.Errorf("%w: consul rolled the transaction back: %s", ErrLockTaken, why)
	case len(failed) > 0 && !slices.ContainsFunc(failed, func(i int) bool { return !s.watermarkCheck(ops, i) }):
		return fmt.Errorf("%w: consul rolled the transaction back: %s", errWatermarkChanged, why)
	}
	return fmt.Errorf("consul rolled the transaction back: %s", why)
}

// watermarkCheck reports whether ops[i] is a check-and-set or an index
// check of the watermark key.
func (s *Session) watermarkCheck(ops api.TxnOps, i int) bool {
	if i < 0 || i >= len(ops) || ops[i].KV == nil || ops[i].KV.Key != s.e.watermarkKey {
		return false
	}
	return ops[i].KV.Verb == api.KVCAS || ops[i].KV.Verb == api.KVCheckIndex
}
