package roster

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// notRead is Hold's answer before the first successful read.
const notRead = "the operator's requests not read from Consul yet"

// maxWatchWait caps a blocking query's wait.
const maxWatchWait = 5 * time.Minute

// Watcher follows control/ for one replica with blocking queries and
// answers Hold from memory (supervisor.Operator). Run it in a goroutine
// of its own.
type Watcher struct {
	r       *Roster
	onError func(error)

	mu      sync.Mutex
	read    bool
	drain   *Drain
	req     *Handover
	timer   *time.Timer
	changed chan struct{}
}

// NewWatcher returns a watcher of r's replica; onError (optional) gets
// every failed read, which is retried.
func (r *Roster) NewWatcher(onError func(error)) *Watcher {
	return &Watcher{r: r, onError: onError, changed: make(chan struct{}, 1)}
}

// Hold is why this replica must stay out of the election now (HoldFor);
// before the first successful read it is out too.
func (w *Watcher) Hold() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.read {
		return notRead
	}
	return HoldFor(w.r.cfg.ReplicaID, w.drain, w.req, w.r.now())
}

// Drained reports whether this replica is marked drained.
func (w *Watcher) Drained() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drain != nil
}

// Changed receives a value whenever Hold may have changed: on every
// change read from Consul, and when a hand-over window ends.
func (w *Watcher) Changed() <-chan struct{} { return w.changed }

func (w *Watcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Run follows control/ until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	defer func() {
		w.mu.Lock()
		if w.timer != nil {
			w.timer.Stop()
		}
		w.mu.Unlock()
	}()
	var index uint64
	for ctx.Err() == nil {
		pairs, next, err := w.list(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if w.onError != nil {
				w.onError(err)
			}
			index = 0
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if next < index {
			next = 0 // the index went backwards (a restore)
		}
		index = next
		w.apply(pairs)
	}
}

// list is a consistent read of control/, blocking past index.
func (w *Watcher) list(ctx context.Context, index uint64) (api.KVPairs, uint64, error) {
	wait := maxWatchWait
	qctx, cancel := context.WithTimeout(ctx, wait+wait/16+w.r.cfg.CallTimeout)
	defer cancel()
	q := &api.QueryOptions{WaitIndex: index, WaitTime: wait, RequireConsistent: true}
	pairs, meta, err := w.r.cfg.Client.KV().List(w.r.controlPrefix(), q.WithContext(qctx))
	if err != nil {
		return nil, 0, err
	}
	return pairs, meta.LastIndex, nil
}

// apply records what a read of control/ showed and notifies on change.
func (w *Watcher) apply(pairs api.KVPairs) {
	var d *Drain
	var h *Handover
	for _, p := range pairs {
		switch {
		case p.Key == w.r.DrainKey(w.r.cfg.ReplicaID):
			d = &Drain{}
			_ = json.Unmarshal(p.Value, d) // any value drains
		case p.Key == w.r.HandoverKey():
			var req Handover
			if json.Unmarshal(p.Value, &req) == nil && strings.TrimSpace(req.From) != "" {
				h = &req
			}
		}
	}
	w.mu.Lock()
	before := w.holdLocked()
	w.read, w.drain, w.req = true, d, h
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if h != nil {
		if left := h.Until.Sub(w.r.now()); left > 0 {
			w.timer = time.AfterFunc(left+10*time.Millisecond, w.notify)
		}
	}
	after := w.holdLocked()
	w.mu.Unlock()
	if before != after {
		w.notify()
	}
}

func (w *Watcher) holdLocked() string {
	if !w.read {
		return notRead
	}
	return HoldFor(w.r.cfg.ReplicaID, w.drain, w.req, w.r.now())
}
