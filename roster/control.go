package roster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Drains reads every drain mark, by replica (consistent read).
func (r *Roster) Drains(ctx context.Context) (map[string]Drain, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	prefix := r.keys.Drains()
	q := &api.QueryOptions{RequireConsistent: true}
	pairs, _, err := r.list(prefix, q.WithContext(cctx))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", prefix, err)
	}
	out := map[string]Drain{}
	for _, p := range pairs {
		var d Drain
		_ = json.Unmarshal(p.Value, &d)
		out[strings.TrimPrefix(p.Key, prefix)] = d
	}
	return out, nil
}

// SetDrain marks replica drained (kept until Undrain).
func (r *Roster) SetDrain(ctx context.Context, replica string, d Drain) error {
	if replica == "" || strings.Contains(replica, "/") {
		return fmt.Errorf("replica id %q: must be set and have no '/'", replica)
	}
	value, err := json.Marshal(d)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	key := r.DrainKey(replica)
	if _, err := r.cfg.Client.KV().Put(&api.KVPair{Key: key, Value: value}, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// drainAttempts bounds SetDrainUnlessLeading's reads of a lock key that
// keeps changing under it.
const drainAttempts = 5

// SetDrainUnlessLeading marks replica drained unless replica holds the
// lock at the moment of the write: it reads lockKey (consistent read),
// asks holder which replica holds it ("" for none; an error, such as an
// unreadable value, refuses the drain) and writes the mark in one
// transaction with a check that lockKey is still as read (at the same
// modify index, or still absent). A lock key that changed in between is
// read again, a few times. When replica holds the lock it returns an
// error wrapping ErrLeading and writes nothing: draining the leader makes
// it step down, which must wait for a hand-over.
//
// Not guaranteed: a replica that has not yet seen the mark may still
// take the lock right after the write; it then steps down when it sees
// the mark.
func (r *Roster) SetDrainUnlessLeading(ctx context.Context, replica string, d Drain, lockKey string, holder func(*api.KVPair) (string, error)) error {
	if replica == "" || strings.Contains(replica, "/") {
		return fmt.Errorf("replica id %q: must be set and have no '/'", replica)
	}
	value, err := json.Marshal(d)
	if err != nil {
		return err
	}
	key := r.DrainKey(replica)
	kv := r.cfg.Client.KV()
	for range drainAttempts {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
		pair, _, err := kv.Get(lockKey, (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
		cancel()
		if err != nil {
			return fmt.Errorf("read %s: %w", lockKey, err)
		}
		who, err := holder(pair)
		if err != nil {
			return err
		}
		if who == replica {
			return fmt.Errorf("%w: %s holds %s", ErrLeading, replica, lockKey)
		}
		check := &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: lockKey}
		if pair != nil {
			check = &api.KVTxnOp{Verb: api.KVCheckIndex, Key: lockKey, Index: pair.ModifyIndex}
		}
		ops := api.TxnOps{{KV: check}, {KV: &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: value}}}
		cctx, cancel = context.WithTimeout(ctx, r.cfg.CallTimeout)
		ok, resp, _, err := r.cfg.Client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(cctx))
		cancel()
		switch {
		case err != nil:
			return fmt.Errorf("write %s (in a transaction with a check of %s): %w", key, lockKey, err)
		case ok:
			return nil
		case resp == nil || len(resp.Errors) == 0:
			return fmt.Errorf("write %s: Consul refused the transaction without saying why", key)
		}
		for _, e := range resp.Errors {
			if e.OpIndex != 0 || permissionDenied(errors.New(e.What)) {
				return fmt.Errorf("write %s (in a transaction with a check of %s): %s", key, lockKey, e.What)
			}
		}
		// The check failed: the lock key changed since it was read. Read
		// it again.
	}
	return fmt.Errorf("%s kept changing while %s was being drained: nothing written, run again", lockKey, replica)
}

// Undrain removes replica's drain mark; ErrNotDrained when there is none.
func (r *Roster) Undrain(ctx context.Context, replica string) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	key := r.DrainKey(replica)
	kv := r.cfg.Client.KV()
	pair, _, err := kv.Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if pair == nil {
		return fmt.Errorf("%w: %s (no %s)", ErrNotDrained, replica, key)
	}
	ok, _, err := kv.DeleteCAS(&api.KVPair{Key: key, ModifyIndex: pair.ModifyIndex}, (&api.WriteOptions{}).WithContext(cctx))
	switch {
	case err != nil:
		return fmt.Errorf("delete %s: %w", key, err)
	case !ok:
		return fmt.Errorf("%s changed meanwhile: nothing deleted, run again", key)
	}
	return nil
}

// Handover reads the hand-over request and its modify index; nil, 0 when
// there is none.
func (r *Roster) Handover(ctx context.Context) (*Handover, uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	pair, _, err := r.cfg.Client.KV().Get(r.HandoverKey(), (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", r.HandoverKey(), err)
	}
	if pair == nil {
		return nil, 0, nil
	}
	var h Handover
	if err := json.Unmarshal(pair.Value, &h); err != nil {
		return nil, pair.ModifyIndex, fmt.Errorf("%s holds an unreadable value: %w", r.HandoverKey(), err)
	}
	return &h, pair.ModifyIndex, nil
}

// PutHandover writes h with a check-and-set at index (0: only if there is
// no request) and returns the new index; ErrRequestChanged when the
// stored request is not at index.
func (r *Roster) PutHandover(ctx context.Context, h Handover, index uint64) (uint64, error) {
	value, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	ok, _, err := r.cfg.Client.KV().CAS(&api.KVPair{Key: r.HandoverKey(), Value: value, ModifyIndex: index}, (&api.WriteOptions{}).WithContext(cctx))
	switch {
	case err != nil:
		return 0, fmt.Errorf("write %s: %w", r.HandoverKey(), err)
	case !ok:
		return 0, ErrRequestChanged
	}
	got, next, err := r.Handover(ctx)
	if err != nil {
		return 0, err
	}
	if got == nil || got.ID != h.ID {
		return 0, ErrRequestChanged
	}
	return next, nil
}

// EndHandover deletes the request if it is still the one with id.
func (r *Roster) EndHandover(ctx context.Context, id string) error {
	h, index, err := r.Handover(ctx)
	if err != nil || h == nil || h.ID != id {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	if _, _, err := r.cfg.Client.KV().DeleteCAS(&api.KVPair{Key: r.HandoverKey(), ModifyIndex: index}, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
		return fmt.Errorf("delete %s: %w", r.HandoverKey(), err)
	}
	return nil
}
