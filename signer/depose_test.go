package signer

import (
	"context"
	"sync"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/hashicorp/consul/api"
)

// holder is a Config.Holder over the lock key: its session.
func (cl *cluster) holder(ctx context.Context) (string, error) {
	p, _, err := cl.c.KV().Get(cl.lockKey, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil || p == nil {
		return "", err
	}
	return p.Session, nil
}

// destroyIfHolds is a Config.Depose as the election's
// DestroyStaleHolder: only holder, only while it holds the lock.
func (cl *cluster) destroyIfHolds(ctx context.Context, holder string) (bool, error) {
	now, err := cl.holder(ctx)
	if err != nil || now != holder {
		return false, err
	}
	_, err = cl.c.Session().Destroy(holder, (&api.WriteOptions{}).WithContext(ctx))
	return err == nil, err
}

// Deposition destroys only the stale holder it saw: the lock changes hands
// (the stale holder releases it, a new leader takes it) while the
// standby's node is parked above an unmoved watermark; the new holder is
// not deposed for the old one's silence, and it signs.
func TestDeposeOnlyTheStaleHolder(t *testing.T) {
	cl := newCluster(t)
	old := newNode(t, cl, "old")
	sessOld, f := cl.lock(t)
	if err := old.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(old, vote(cmtproto.PrevoteType, 2, 0, &blockA, t0)))

	const after = 4 * time.Second
	var mu sync.Mutex
	var deposed []string
	b := newNode(t, cl, "b", func(c *Config) {
		c.DeposeAfter, c.DeposeHoldoff = after, time.Hour
		c.Synced = func() bool { return true }
		c.Holder = cl.holder
		c.Depose = func(ctx context.Context, holder string) (bool, error) {
			ok, err := cl.destroyIfHolds(ctx, holder)
			if ok {
				mu.Lock()
				deposed = append(deposed, holder)
				mu.Unlock()
			}
			return ok, err
		}
	})
	b.waitWatermark(t, Watermark{Height: 2, Step: StepPrevote})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // b's node asks for a step nobody signs, as a node re-sends
		for ctx.Err() == nil {
			handleVote(b, vote(cmtproto.PrecommitType, 2, 0, &blockA, t0))
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Past half of DeposeAfter b has seen the old holder; then the lock
	// changes hands just before the deposition is due.
	time.Sleep(after * 85 / 100)
	old.s.Revoke()
	cl.unlock(t, sessOld)
	newLeader := newNode(t, cl, "new")
	sessNew, fNew := cl.lock(t)
	if err := newLeader.s.Grant(context.Background(), fNew); err != nil {
		t.Fatal(err)
	}
	// The new leader takes a while to sign (its node catches up): past
	// the moment the deposition was due for the old holder.
	time.Sleep(after/2 - 400*time.Millisecond)
	mu.Lock()
	got := append([]string(nil), deposed...)
	mu.Unlock()
	if len(got) != 0 {
		t.Fatalf("deposed %v; the stale holder %s no longer held the lock, the new holder %s had not had its time", got, sessOld, sessNew)
	}
	if info, _, err := cl.c.Session().Info(sessNew, nil); err != nil || info == nil {
		t.Fatalf("the new holder's session is gone (%v)", err)
	}
	mustSign(t, handleVote(newLeader, vote(cmtproto.PrecommitType, 2, 0, &blockA, t0)))
	const msg = "deposition: the lock changed hands during the park; the new holder is given time to sign"
	if ev := b.logs.events(msg); len(ev) != 1 || ev[0]["holder"] != sessNew || ev[0]["was"] != sessOld {
		t.Fatalf("change of hands log events: %v", ev)
	}
}
