package roster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Drains reads every drain mark, by replica (consistent read).
func (r *Roster) Drains(ctx context.Context) (map[string]Drain, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	prefix := r.controlPrefix() + "drain/"
	q := &api.QueryOptions{RequireConsistent: true}
	pairs, _, err := r.cfg.Client.KV().List(prefix, q.WithContext(cctx))
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
