package signer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

// TestStandbyRefusesAtOnceWithoutHolder: a standby whose last read found
// no session holding the lock refuses a request above the watermark at
// once (no leader can answer it soon; parking would hold the node's
// consensus back, as at a chain's launch); while the lock is held it parks
// as before; and once it leads it signs.
func TestStandbyRefusesAtOnceWithoutHolder(t *testing.T) {
	cl := newCluster(t)
	var free atomic.Bool
	free.Store(true)
	b := newNode(t, cl, "b", func(c *Config) {
		c.LockFree = func(context.Context) (bool, error) { return free.Load(), nil }
	})
	time.Sleep(200 * time.Millisecond) // the first read
	r := handleVote(b, vote(cmtproto.PrevoteType, 1, 0, &blockA, t0))
	if r.kind != "refused" || r.took > 500*time.Millisecond {
		t.Fatalf("no holder: %s after %s, want refused at once", r.kind, r.took)
	}
	free.Store(false)
	time.Sleep(lockFreeEvery + 200*time.Millisecond)
	r = handleVote(b, vote(cmtproto.PrevoteType, 1, 0, &blockA, t0))
	if r.kind != "ping" || r.took < b.cfg.ParkHold-50*time.Millisecond {
		t.Fatalf("lock held: %s after %s, want parked for the hold %s", r.kind, r.took, b.cfg.ParkHold)
	}
	free.Store(true)
	time.Sleep(lockFreeEvery + 200*time.Millisecond)
	_, f := cl.lock(t)
	if err := b.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(b, vote(cmtproto.PrevoteType, 1, 0, &blockA, t0)))
}

// TestInElectionParksWithoutHolder: a replica that takes part in the
// election parks its node's request even with no holder: it may take the
// lock any moment and answer it itself (a refused step is lost to its
// node).
func TestInElectionParksWithoutHolder(t *testing.T) {
	cl := newCluster(t)
	b := newNode(t, cl, "b", func(c *Config) {
		c.LockFree = func(context.Context) (bool, error) { return true, nil }
		c.Synced = func() bool { return true }
	})
	time.Sleep(200 * time.Millisecond) // the first read
	r := handleVote(b, vote(cmtproto.PrevoteType, 1, 0, &blockA, t0))
	if r.kind != "ping" || r.took < b.cfg.ParkHold-50*time.Millisecond {
		t.Fatalf("in the election, no holder: %s after %s, want parked for the hold %s", r.kind, r.took, b.cfg.ParkHold)
	}
}
