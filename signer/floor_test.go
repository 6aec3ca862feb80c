package signer

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

func TestLeadRefusesAnotherChain(t *testing.T) {
	cl := newCluster(t)
	if err := cl.putRaw(`{"chain_id":"other","height":"3","round":0,"step":1}`); err != nil {
		t.Fatal(err)
	}
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); !errors.Is(err, ErrChainID) {
		t.Fatalf("Grant on another chain's watermark: %v", err)
	}
	if err := cl.putRaw(`{"height":"3","round":0,"step":1}`); err != nil { // the restart mode's
		t.Fatal(err)
	}
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatalf("Grant on the restart mode's watermark: %v", err)
	}
	if r := handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)); r.kind != "signed" {
		t.Fatalf("above the restart mode's watermark: %s %s", r.kind, r.err)
	}
}

// Deposition fires after DeposeAfter of parking above an unmoved
// watermark, not before, and never while the node is not synced.
func TestDeposition(t *testing.T) {
	cl := newCluster(t)
	holder := newNode(t, cl, "holder")
	sess, f := cl.lock(t)
	if err := holder.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(holder, vote(cmtproto.PrevoteType, 2, 0, &blockA, t0)))

	const after = 1500 * time.Millisecond
	var synced atomic.Bool
	var deposed atomic.Int64 // unix nanos of the first depose
	var calls atomic.Int32
	b := newNode(t, cl, "b", func(c *Config) {
		c.DeposeAfter, c.DeposeHoldoff = after, time.Hour
		c.Synced = synced.Load
		c.Holder = cl.holder
		c.Depose = func(ctx context.Context, holder string) (bool, error) {
			calls.Add(1)
			deposed.CompareAndSwap(0, time.Now().UnixNano())
			if holder != sess {
				t.Errorf("deposed %q, want the holder %s", holder, sess)
			}
			_, err := cl.c.Session().Destroy(sess, nil)
			return err == nil, err
		}
	})
	b.waitWatermark(t, Watermark{Height: 2, Step: StepPrevote})
	// B's node keeps asking for a step the holder never signs, as a node
	// re-sends after each ping reply.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	asking := func() {
		for ctx.Err() == nil {
			handleVote(b, vote(cmtproto.PrecommitType, 2, 0, &blockA, t0))
			time.Sleep(100 * time.Millisecond)
		}
	}
	go asking()
	time.Sleep(3 * after)
	if n := calls.Load(); n != 0 {
		t.Fatalf("deposed %d times while the node was not synced", n)
	}
	synced.Store(true)
	syncedAt := time.Now()
	deadline := syncedAt.Add(3 * after)
	for deposed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if deposed.Load() == 0 {
		t.Fatal("no deposition")
	}
	// The park began long before synced: deposition follows at once.
	t.Logf("deposed %v after synced (parked for %v)", time.Unix(0, deposed.Load()).Sub(syncedAt), time.Unix(0, deposed.Load()).Sub(syncedAt)+3*after)
	time.Sleep(time.Second) // still parked, still synced: the hold-off holds
	cancel()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d depositions within the hold-off", n)
	}

	// Not before DeposeAfter: a fresh park, synced from the start.
	cl2 := newCluster(t)
	h2 := newNode(t, cl2, "h2")
	sess2, f2 := cl2.lock(t)
	if err := h2.s.Grant(context.Background(), f2); err != nil {
		t.Fatal(err)
	}
	var first atomic.Int64
	c := newNode(t, cl2, "c", func(c *Config) {
		c.DeposeAfter = after
		c.Synced = func() bool { return true }
		c.Holder = cl2.holder
		c.Depose = func(ctx context.Context, holder string) (bool, error) {
			first.CompareAndSwap(0, time.Now().UnixNano())
			_, err := cl2.c.Session().Destroy(sess2, nil)
			return err == nil, err
		}
	})
	start := time.Now()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		for ctx2.Err() == nil {
			handleVote(c, vote(cmtproto.PrevoteType, 1, 0, &blockA, t0))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for first.Load() == 0 && time.Since(start) < 4*after {
		time.Sleep(10 * time.Millisecond)
	}
	if first.Load() == 0 {
		t.Fatal("no deposition")
	}
	at := time.Unix(0, first.Load()).Sub(start)
	if at < after || at > after+time.Second {
		t.Fatalf("deposed %v after the first park, want after %v (and within 1s more)", at, after)
	}
	t.Logf("deposition %v after the first park (DeposeAfter %v)", at, after)
	const msg = "deposed the holder: own node parked above a watermark that did not move"
	for wait := time.Now().Add(2 * time.Second); len(c.logs.events(msg)) == 0 && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond) // logged once Depose returned
	}
	if got := c.logs.events(msg); len(got) != 1 {
		t.Fatalf("%d deposition log events", len(got))
	}
}

// A floor file written for one validator is refused for another key: the
// node home signed for someone else.
func TestFloorOfAnotherValidatorRefused(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 2, 0, &blockA, t0)))
	a.s.Revoke()
	data, err := os.ReadFile(a.cfg.FloorFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), testKey.PubKey().Address().String()) {
		t.Fatalf("floor file names no validator: %s", data)
	}
	if _, err := New(a.cfg); err != nil {
		t.Fatalf("same key, same floor file: %v", err)
	}
	other := a.cfg
	other.Key = ed25519.GenPrivKey()
	if _, err := New(other); err == nil || !strings.Contains(err.Error(), "belongs to validator") {
		t.Fatalf("another key on the floor file: %v", err)
	}
}
