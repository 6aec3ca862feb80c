package roster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// notRead is Hold's answer before the first successful read.
const notRead = "the operator's requests not read from Consul yet"

// MaxWindowAhead is how far ahead of a replica's clock a hand-over
// request's Until may be when the replica first sees it before it warns
// of clock skew; valguard handover refuses a longer --window.
const MaxWindowAhead = 10 * time.Minute

// maxWatchWait caps a blocking query's wait. A read stuck on a Consul path
// that dropped its packets is given up after it (plus the call timeout),
// so a change made meanwhile is seen within about a minute of the path
// coming back.
const maxWatchWait = time.Minute

// Watcher follows control/ for one replica with blocking queries and
// answers Hold from memory (supervisor.Operator). Run it in a goroutine
// of its own.
type Watcher struct {
	r       *Roster
	onError func(error)
	onClock func(h Handover, warning string)

	mu      sync.Mutex
	read    bool
	denied  bool // the last read was refused (ErrNoReadAccess)
	drain   *Drain
	req     *Handover
	seen    string // the ID of the last request seen (Run's goroutine only)
	timer   *time.Timer
	changed chan struct{}
}

// OnClockWarning sets f (call before Run) to get every hand-over request
// whose window looks wrong on this replica's clock when first seen
// (ClockWarning).
func (w *Watcher) OnClockWarning(f func(h Handover, warning string)) { w.onClock = f }

// ClockWarning says why a request's window looks wrong at now on the
// reader's clock, "" when it does not: its Until is already past, or
// more than MaxWindowAhead ahead. Either is a sign that the operator's
// clock and this one disagree (or, for a past Until, of a request left
// behind by a command that could not remove it).
func ClockWarning(h Handover, now time.Time) string {
	switch left := h.Until.Sub(now); {
	case left <= 0:
		return fmt.Sprintf("hand-over request %s from %s ends at %s, %s ago on this replica's clock, although it is new to this replica: "+
			"the clocks of the operator's host and this replica may disagree by more than the window (check NTP on both); "+
			"the request has no effect here", h.ID, h.From, h.Until.Format(time.RFC3339), (-left).Round(time.Second))
	case left > MaxWindowAhead:
		return fmt.Sprintf("hand-over request %s from %s ends at %s, %s ahead on this replica's clock (more than %s): "+
			"the clocks of the operator's host and this replica may disagree (check NTP on both); "+
			"this replica obeys it until then or until the request is removed", h.ID, h.From, h.Until.Format(time.RFC3339), left.Round(time.Second), MaxWindowAhead)
	}
	return ""
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
	return w.holdLocked()
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
		w.mu.Lock()
		w.denied = errors.Is(err, ErrNoReadAccess)
		w.mu.Unlock()
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

// list is a consistent read of control/, blocking past index. A read at
// index 0 (the first, and the first after a failure) does not block in
// Consul, so it gets only the call timeout: a Consul path that drops
// packets must not keep the replica out of the election for a blocking
// query's wait once the path is back.
func (w *Watcher) list(ctx context.Context, index uint64) (api.KVPairs, uint64, error) {
	limit := w.r.cfg.CallTimeout
	q := &api.QueryOptions{RequireConsistent: true}
	if index > 0 {
		q.WaitIndex, q.WaitTime = index, maxWatchWait
		limit += maxWatchWait + maxWatchWait/16 // Consul adds up to wait/16 of jitter
	}
	qctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	pairs, meta, err := w.r.list(w.r.controlPrefix(), q.WithContext(qctx))
	if err != nil {
		return nil, 0, w.r.explain(fmt.Errorf("read %s: %w", w.r.controlPrefix(), err))
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
	if h != nil && h.ID != w.seen {
		w.seen = h.ID
		if msg := ClockWarning(*h, w.r.now()); msg != "" && w.onClock != nil {
			w.onClock(*h, msg)
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
	if !w.read && w.denied {
		return notRead + ": the Consul token may not read " + w.r.controlPrefix() + " (grant it read on that key prefix)"
	}
	if !w.read {
		return notRead
	}
	return HoldFor(w.r.cfg.ReplicaID, w.drain, w.req, w.r.now())
}
