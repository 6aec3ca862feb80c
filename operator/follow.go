package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/valguard/valguard/roster"
)

// follow waits for the lock to move, the new leader to validate and its
// first signature on chain, then for the old leader to rejoin. When
// nobody takes the lock within freeNoTaker of its release, or the named
// target stops reporting before it took the lock, it ends the request
// early (so that any synced standby, or the old leader, may lead) and
// says so. chain: h0, the height when the request was written, was read,
// so the chain is watched.
func (v *Validator) follow(ctx context.Context, o MoveOptions, tl *timeline, cw Chain, req roster.Handover, h0 int64, chain bool) error {
	clk := v.clock()
	from, to := req.From, req.To
	var released, taken, validating, endedEarly bool
	var freeSince, lastLook time.Time
	var newLeader string
	var hValidating, first int64
	var missed []int64
	next := h0 + 1
	lastKnown := h0 // the last chain height read, for when a read fails
	for {
		if !validating && chain {
			if h, err := cw.Height(ctx); err == nil {
				lastKnown = h
			}
		}
		if l, err := v.Store.Leader(ctx); err == nil {
			if !released && (l == nil || l.ReplicaID != from) {
				released = true
				tl.log("lock released by %s", from)
			}
			if endedEarly && !taken && l != nil && l.ReplicaID == from {
				tl.log("%s holds the lock (again)", from)
				return fmt.Errorf("nothing moved: the request was ended early and %s leads; see valguard status", from)
			}
			if !taken && l != nil && l.ReplicaID != from {
				taken, newLeader = true, l.ReplicaID
				tl.log("lock taken by %s", newLeader)
				if to != "" && newLeader != to {
					tl.log("WARNING: %s took the lock, not %s", newLeader, to)
				}
			}
			switch {
			case l != nil:
				freeSince = time.Time{}
			case released && freeSince.IsZero():
				freeSince = clk.Now()
			}
		}
		if !taken && !endedEarly {
			why := ""
			if !freeSince.IsZero() && v.since(freeSince) >= freeNoTaker {
				why = fmt.Sprintf("the lock has been free for %s and nobody took it", v.since(freeSince).Round(100*time.Millisecond))
			}
			if why == "" && to != "" && v.since(lastLook) >= targetLook {
				lastLook = clk.Now()
				if w, err := v.Look(ctx); err == nil {
					if e, ok := w.Entry(to); !ok || !w.Reporting(e) {
						why = fmt.Sprintf("the target %s stopped reporting (its valguard is not running, hung or cut off from Consul)", to)
					}
				}
			}
			if why != "" {
				endedEarly = true
				if err := v.Store.EndHandover(ctx, req.ID); err != nil {
					tl.log("%s; could not end the request early (it ends by itself at %s): %v", why, req.Until.Format(time.RFC3339), v.hint(err))
				} else {
					tl.log("%s: request ended early, so that any synced standby (or %s again) may take the lock", why, from)
				}
			}
		}
		if taken && !validating {
			if w, err := v.Look(ctx); err == nil {
				if e, ok := w.Entry(newLeader); ok && StateOf(e) == Validating {
					validating = true
					if h, err := cw.Height(ctx); err == nil {
						lastKnown = h
					}
					hValidating = lastKnown
					tl.log("%s Validating (chain height %d)", newLeader, hValidating)
				}
			}
		}
		if validating && chain {
			if h, err := cw.Height(ctx); err == nil {
				for ; next <= h && first == 0; next++ {
					signed, err := cw.SignedAt(ctx, next)
					if err != nil {
						break
					}
					switch {
					case signed && next > hValidating:
						first = next
					case !signed:
						missed = append(missed, next)
					}
				}
			}
			if first > 0 {
				tl.log("first signature of the new leader on chain at height %d", first)
				fmt.Fprintf(v.out(), "hand-over %s → %s done: first signature %.3fs after the request, at height %d; missed heights since the request (height %d): %d %v\n",
					from, newLeader, v.since(tl.start).Seconds(), first, h0, len(missed), missed)
				v.awaitRejoin(ctx, tl, from)
				return nil
			}
		}
		if validating && !chain {
			fmt.Fprintf(v.out(), "hand-over %s → %s done (%.3fs); the chain was not watched (no node RPC answered)\n", from, newLeader, v.since(tl.start).Seconds())
			v.awaitRejoin(ctx, tl, from)
			return nil
		}
		if sleep(ctx, clk, poll) != nil {
			where := fmt.Sprintf("lock released: %v, taken by: %q, new leader Validating: %v", released, newLeader, validating)
			if validating && chain {
				where += fmt.Sprintf(", no signature of it on chain yet (checked up to height %d)", next-1)
			}
			return fmt.Errorf("hand-over %s: %s; the request is removed; see valguard status", ended(ctx, o), where)
		}
	}
}

// awaitRejoin removes the request and waits (within ctx, at most
// rejoinWait) for the old leader to be back in the election or held by a
// drain mark.
func (v *Validator) awaitRejoin(ctx context.Context, tl *timeline, from string) {
	ctx, cancel := withTimeout(ctx, v.clock(), rejoinWait)
	defer cancel()
	if h, _, err := v.Store.Handover(ctx); err == nil && h != nil && h.From == from {
		_ = v.Store.EndHandover(ctx, h.ID)
	}
	for {
		if w, err := v.Look(ctx); err == nil {
			if e, ok := w.Entry(from); ok {
				st := StateOf(e)
				switch {
				case st == Voting:
					tl.log("%s back in the election as a standby (Voting)", from)
					return
				case w.Drained(from) && e.Drained && st != Validating && st != Shutdown:
					tl.log("%s out of the election, drained (%s)", from, e.State)
					return
				}
			}
		}
		if sleep(ctx, v.clock(), rejoinPoll) != nil {
			tl.log("%s not yet back in the election (valguard status)", from)
			return
		}
	}
}
