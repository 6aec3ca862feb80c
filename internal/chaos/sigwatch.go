package chaos

import (
	"context"
	"sync"
	"time"
)

// sigWatch follows the chain from a height on: whether the validator
// signed each height, and when the drill first saw it.
type sigWatch struct {
	mu  sync.Mutex
	obs []heightSeen
}

type heightSeen struct {
	h      int64
	signed bool
	at     time.Time
}

func (w *sigWatch) run(ctx context.Context, d *Drill, from int64) {
	next := from
	for {
		h, err := d.rig.chain.height(ctx)
		for ; err == nil && next <= h; next++ {
			ok, serr := d.rig.chain.signedAt(ctx, next)
			if serr != nil || (!ok && next == h) {
				// The tip's commit is the node's seen commit, which may
				// lack a precommit the canonical one (in the next block)
				// carries: a miss counts only below the tip.
				break
			}
			w.mu.Lock()
			w.obs = append(w.obs, heightSeen{h: next, signed: ok, at: time.Now()})
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// back waits for the validator to be back: the first height it signed
// after the last height up to hRec (the height when the replicas had
// recovered) that it missed — or, when it missed none, the first height it
// signed. A leader that is frozen or cut off can go on signing for a while
// before it stops, so the first signature after the fault is not always
// the one that ends the outage. It returns that height, when it was seen
// and how many heights from the watch's start up to it were missed.
func (w *sigWatch) back(ctx context.Context, hRec int64, limit time.Duration) (int64, time.Time, int, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		if n := len(w.obs); n == 0 || w.obs[n-1].h < hRec {
			// Not every height up to the recovery looked at yet.
			w.mu.Unlock()
			if sleep(ctx, 200*time.Millisecond) != nil {
				break
			}
			continue
		}
		var lastMiss int64
		for _, o := range w.obs {
			if !o.signed && o.h <= hRec {
				lastMiss = o.h
			}
		}
		missed := 0
		for _, o := range w.obs {
			if !o.signed {
				missed++
				continue
			}
			if o.h > lastMiss {
				w.mu.Unlock()
				return o.h, o.at, missed, true
			}
		}
		w.mu.Unlock()
		if sleep(ctx, 200*time.Millisecond) != nil {
			break
		}
	}
	return 0, time.Time{}, 0, false
}
