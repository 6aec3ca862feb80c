package election

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// ErrRecordDenied: Consul refused a write of the sign record for another
// reason than its index (an ACL without kv write on the key, a Consul
// without transactions): no signer of the leaderless policy can work.
var ErrRecordDenied = errors.New("consul refuses check-and-set writes of the sign record")

// ErrLockHeld: the lock key is held, or moved since the leaderless
// policy's RecordFence read it: a replica of the leader policy or of the
// key-file mode runs for this validator. A leaderless signer stops
// signing: one validator runs one policy.
var ErrLockHeld = errors.New("the lock key is held or moved: a replica of another policy runs")

// RecordFence writes the sign record of the leaderless signer policy,
// where every replica signs and the record, not a lock, decides which
// signature exists. It never takes the lock: it checks, in each write,
// that the lock key is as NewRecordFence found it (free), so that a
// replica of the leader policy or of the key-file mode taking the lock
// stops every leaderless write from its take on, and reads the record
// after its take (S8), in Consul's one order of writes.
type RecordFence struct {
	e *Election
	// lockIndex is the lock key's ModifyIndex when read, 0 when absent.
	lockIndex uint64
}

// ErrUncleanLock: the lock was last held by a key-file (restart mode)
// replica that did not release it cleanly, or is absent over a record
// such a replica wrote: its node may still sign with its key file until
// it notices and stops, so no leaderless signer starts before the
// unclean-takeover wait (max(LockDelay, TTL), as the leader policy waits)
// has passed since the lock was first seen so.
var ErrUncleanLock = errors.New("the lock was not released cleanly by a key-file replica")

// NewRecordFence reads the lock key (consistent read) and returns a
// RecordFence bound to it. A lock held by a session is an error wrapping
// ErrLockHeld that names the holder; a lock a key-file replica left
// without a clean release (or an absent one over a record such a replica
// wrote) is an error wrapping ErrUncleanLock until the unclean-takeover
// wait has passed since this Election first saw it so (a leaderless
// replica never takes the lock, so Consul's lock-delay does not cover it).
func (e *Election) NewRecordFence(ctx context.Context) (*RecordFence, error) {
	return e.newRecordFence(ctx, true)
}

func (e *Election) newRecordFence(ctx context.Context, waitUnclean bool) (*RecordFence, error) {
	pair, err := e.readLock(ctx)
	if err != nil {
		return nil, err
	}
	if pair != nil && pair.Session != "" {
		who := "session " + pair.Session
		if info, err := HolderOf(pair); err == nil && info != nil {
			who = fmt.Sprintf("replica %s (%s)", info.ReplicaID, info.Hostname)
		}
		return nil, fmt.Errorf("%w: %s holds %s: it runs --signers leader or the key-file mode, and one validator runs one policy", ErrLockHeld, who, e.lockKey)
	}
	if waitUnclean {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
		defer cancel()
		if err := e.awaitCleanLock(cctx, pair); err != nil {
			return nil, err
		}
	}
	if pair == nil {
		return &RecordFence{e: e}, nil
	}
	return &RecordFence{e: e, lockIndex: pair.ModifyIndex}, nil
}

// awaitCleanLock returns an error wrapping ErrUncleanLock while the free
// lock key, read as pair (nil: absent), says a key-file replica's node may
// still sign and the unclean-takeover wait has not passed since this
// Election first saw the key so (the same key: absent, or at the same
// ModifyIndex).
func (e *Election) awaitCleanLock(ctx context.Context, pair *api.KVPair) error {
	why := ""
	switch {
	case pair == nil:
		wm, err := e.get(ctx, e.watermarkKey)
		switch {
		case err != nil:
			e.consulError(err, ctx)
			return err
		case wm != nil && (e.cfg.WrittenFenced == nil || !e.cfg.WrittenFenced(wm.Value)):
			why = "the lock key is absent and the record was written by a key-file (restart mode) replica"
		}
	case writtenFenced(pair):
	default:
		if u := uncleanReason(pair, e.now(), e.cfg.TTL); u != "" {
			why = "the lock was last held by a key-file (restart mode) replica: " + u
		}
	}
	e.freeMu.Lock()
	defer e.freeMu.Unlock()
	if why == "" {
		e.freeSeen = ""
		return nil
	}
	seen := "absent"
	if pair != nil {
		seen = fmt.Sprint(pair.ModifyIndex)
	}
	if e.freeSeen != seen {
		e.freeSeen, e.freeSince = seen, e.now()
	}
	if left := uncleanWait(e.cfg) - e.now().Sub(e.freeSince); left > 0 {
		return fmt.Errorf("%w: %s, whose node may still sign with its key file until it stops; waiting %s more", ErrUncleanLock, why, ms(left))
	}
	return nil
}

// CheckAndSet commits value to the sign record in one Consul transaction:
// a check that the lock key is as NewRecordFence read it, then a
// check-and-set of the record at index (0: only if it does not exist). It
// returns the record's new ModifyIndex.
//
// The contract: a nil error means value is committed. Otherwise:
//
//   - ErrWatermarkMoved: the record is not at index (another replica's
//     write came first, or the key was created or deleted). Nothing was
//     written.
//   - ErrLockHeld: the lock key moved (a replica of another policy took
//     it). Nothing was written; every later call fails the same way.
//   - ErrFenceUnknown: no usable answer (a transport error, a timeout, a
//     response other than Consul's commit or roll-back): the write may or
//     may not have been applied. The caller treats what value records as
//     not released and reads the record before anything else is signed at
//     that height/round/step. A check-and-set at an index the record has
//     left can never apply later, so a read that finds another index
//     settles it.
//   - ErrRecordDenied: Consul rolled the write back for another reason,
//     which the message names (an ACL denying kv write on the key).
//
// Each call is bounded by ctx and CallTimeout, and never retried here.
func (f *RecordFence) CheckAndSet(ctx context.Context, value []byte, index uint64) (newIndex uint64, err error) {
	e := f.e
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	lock := &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: e.lockKey}
	if f.lockIndex != 0 {
		lock = &api.KVTxnOp{Verb: api.KVCheckIndex, Key: e.lockKey, Index: f.lockIndex}
	}
	ops := api.TxnOps{{KV: lock}, {KV: &api.KVTxnOp{Verb: api.KVCAS, Key: e.watermarkKey, Value: value, Index: index}}}
	ok, resp, _, err := e.cfg.Client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(cctx))
	if err != nil {
		err = fmt.Errorf("%w: consul transaction: %w", ErrFenceUnknown, err)
		e.consulError(err, ctx)
		return 0, fmt.Errorf("check-and-set %s: %w", e.watermarkKey, err)
	}
	if !ok {
		return 0, fmt.Errorf("check-and-set %s: %w", e.watermarkKey, casRolledBack(resp))
	}
	for _, r := range slices.Backward(resp.Results) {
		if r != nil && r.KV != nil && r.KV.Key == e.watermarkKey {
			return r.KV.ModifyIndex, nil
		}
	}
	return 0, fmt.Errorf("check-and-set %s: %w: consul committed the transaction but returned no index", e.watermarkKey, ErrFenceUnknown)
}

// casRolledBack classifies a RecordFence transaction Consul rolled back:
// ErrLockHeld when the lock check (operation 0) failed, ErrWatermarkMoved
// when the check-and-set (operation 1) found a stale index,
// ErrRecordDenied otherwise; each with Consul's reasons.
func casRolledBack(resp *api.TxnResponse) error {
	if resp == nil || len(resp.Errors) == 0 {
		return fmt.Errorf("%w: rolled back without a reason", ErrRecordDenied)
	}
	reasons := make([]string, 0, len(resp.Errors))
	lock, stale := false, false
	for _, e := range resp.Errors {
		reasons = append(reasons, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
		lock = lock || e.OpIndex == 0 && !strings.Contains(e.What, "ermission denied")
		stale = stale || e.OpIndex == 1 && strings.Contains(e.What, "index is stale")
	}
	why := strings.Join(reasons, "; ")
	switch {
	case lock:
		return fmt.Errorf("%w: %s", ErrLockHeld, why)
	case stale && len(resp.Errors) == 1:
		return fmt.Errorf("%w: %s", ErrWatermarkMoved, why)
	}
	return fmt.Errorf("%w: %s", ErrRecordDenied, why)
}

// CheckRecordWritable tells, without changing anything, whether this
// replica's Consul and token allow RecordFence writes of the sign record,
// and that no replica of another policy holds the lock: it
// sends a check-and-set at an index no key reaches, which Consul rolls
// back as stale only after it accepted the transaction and the write
// permission. Anything else — an ACL denying kv write on the key, a
// Consul without transactions, no answer — is an error naming it, so
// that the leaderless policy is refused at start and not at the first
// signature.
func (e *Election) CheckRecordWritable(ctx context.Context) error {
	f, err := e.newRecordFence(ctx, false)
	if err != nil {
		return err
	}
	_, err = f.CheckAndSet(ctx, []byte("{}"), math.MaxUint64)
	switch {
	case errors.Is(err, ErrWatermarkMoved):
		return nil
	case err == nil:
		// Cannot happen (no key has that index); the probe value must
		// never stay.
		return fmt.Errorf("%w: a check-and-set at index %d applied to %s; consul does not check indexes", ErrRecordDenied, uint64(math.MaxUint64), e.watermarkKey)
	}
	return err
}
