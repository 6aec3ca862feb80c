package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/hashicorp/consul/api"
)

// flakyFencer answers the first lost fences with ErrOutcomeUnknown: each
// is applied first when applied is set (the answer was lost), or never
// sent (Consul between two leaders). Then it fences for real. before, if
// set, runs before the first attempt.
type flakyFencer struct {
	f       Fencer
	lost    int
	applied bool
	before  func()
	// lateAt: on this call, the value is applied first at the index the
	// call names (an earlier transaction of the same value landing late),
	// then the fence is sent as asked.
	lateAt int

	mu    sync.Mutex
	calls int
	last  []byte // the value of the last call
}

func (f *flakyFencer) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	f.mu.Lock()
	f.calls++
	n, lost, late := f.calls, f.lost, f.lateAt
	f.last = append([]byte(nil), value...)
	f.mu.Unlock()
	if n == 1 && f.before != nil {
		f.before()
	}
	if n == late {
		if _, err := f.f.Fence(ctx, value, index); err != nil {
			return 0, err
		}
	}
	if n > lost {
		return f.f.Fence(ctx, value, index)
	}
	if f.applied {
		if _, err := f.f.Fence(ctx, value, index); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: no cluster leader (test, attempt %d)", ErrOutcomeUnknown, n)
}

func (f *flakyFencer) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// stillLeading fails the test unless n leads and was not demoted.
func stillLeading(t *testing.T, n *node) {
	t.Helper()
	select {
	case <-n.s.Revoked():
		t.Fatal("demoted")
	default:
	}
	if !n.s.Leading() {
		t.Fatal("not leading")
	}
}

// An unknown outcome that Consul did not apply (the transaction never
// reached a Raft leader) is fenced again at the same index once a read
// shows the watermark unmoved: the leader keeps leading and the request is
// answered with the signature, within the node's read timeout.
func TestUnknownFenceNotAppliedIsRetried(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	ff := &flakyFencer{f: f, lost: 3}
	if err := a.s.Grant(context.Background(), ff); err != nil {
		t.Fatal(err)
	}
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0))
	v := mustSign(t, r)
	if r.took >= NodeReadTimeout {
		t.Fatalf("answered after %s, beyond the node's read timeout", r.took)
	}
	stillLeading(t, a)
	if got := cl.stored(t); got.Height != 4 || got.Step != StepPrevote || !bytes.Equal(got.Signature, v.Signature) {
		t.Fatalf("consul holds %s, want the returned prevote at 4", got)
	}
	if ff.attempts() != 4 {
		t.Fatalf("%d fence attempts, want 4", ff.attempts())
	}
	if evs := a.logs.events("fence outcome was unknown; resolved by reading the watermark back"); len(evs) != 1 {
		t.Fatalf("%d resolution events, want 1", len(evs))
	}
	// The next height fences at the new index: the index was taken from
	// the successful attempt.
	mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
	t.Logf("3 lost fences resolved and retried: signature after %s", r.took.Round(time.Millisecond))
}

// An unknown outcome resolved by the read-back: the transaction Consul
// applied though its answer was lost (the read finds this value: the retry
// is never sent), or one that a read showed not applied and that then
// landed while the same value was fenced again, whose check-and-set fails
// (ErrMoved: the read-back finds this very value). Either way the
// signature is returned and the leader stays.
func TestUnknownFenceResolvedByRead(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ff       *flakyFencer
		attempts int
	}{
		{"applied, answer lost", &flakyFencer{lost: 1, applied: true}, 1},
		{"landing late during the retry", &flakyFencer{lost: 1, lateAt: 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			a := newNode(t, cl, "a")
			_, f := cl.lock(t)
			ff := tc.ff
			ff.f = f
			if err := a.s.Grant(context.Background(), ff); err != nil {
				t.Fatal(err)
			}
			v := mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)))
			stillLeading(t, a)
			if got := cl.stored(t); !bytes.Equal(got.Signature, v.Signature) {
				t.Fatalf("consul holds %s, not the returned signature", got)
			}
			if ff.attempts() != tc.attempts {
				t.Fatalf("%d fence attempts, want %d", ff.attempts(), tc.attempts)
			}
			mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
		})
	}
}

// An unknown outcome that never resolves (Consul unreachable) parks the
// request before the node's read timeout: the signature stays in valguard,
// nothing is stored, and the leader keeps leading (its lease, not the
// fence, decides that). When Consul answers again, the node's next request
// for the same vote is fenced at the same index and signed.
func TestUnknownFenceUnresolvedParks(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	ff := &flakyFencer{f: f, lost: 1 << 30}
	if err := a.s.Grant(context.Background(), ff); err != nil {
		t.Fatal(err)
	}
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0))
	if r.kind != "ping" {
		t.Fatalf("got %s, want the parked request's ping reply", r.kind)
	}
	if r.took >= NodeReadTimeout {
		t.Fatalf("answered after %s, beyond the node's read timeout", r.took)
	}
	stillLeading(t, a)
	if got := cl.stored(t); got.Height != 0 {
		t.Fatalf("consul holds %s, want nothing", got)
	}
	n := ff.attempts()
	if n < 2 {
		t.Fatalf("%d fence attempts, want retries before the reply", n)
	}
	t.Logf("unresolved: %d attempts, ping reply after %s", n, r.took.Round(time.Millisecond))
	// Consul answers again: the re-sent request is signed.
	ff.mu.Lock()
	ff.lost = 0
	ff.mu.Unlock()
	v := mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)))
	if got := cl.stored(t); !bytes.Equal(got.Signature, v.Signature) {
		t.Fatalf("consul holds %s, not the returned signature", got)
	}
	stillLeading(t, a)
}

// An unknown outcome after which the read finds another leader's
// watermark (the lock moved meanwhile) is a failure: the leader is
// demoted and its signature never leaves, though it has another
// sign-bytes value for the same height/round/step.
func TestUnknownFenceAfterAnotherLeaderFenced(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	sessA, f := cl.lock(t)
	other := Watermark{ChainID: testChain, Height: 4, Step: StepPrevote, SignBytes: []byte("other leader's vote"), Signature: []byte("other signature")}
	ff := &flakyFencer{f: f, lost: 1 << 30, before: func() {
		// The lock moves to another session, which fences its own vote.
		if _, err := cl.c.Session().Destroy(sessA, nil); err != nil {
			t.Error(err)
			return
		}
		_, fb := cl.lock(t)
		value, err := json.Marshal(other)
		if err != nil {
			t.Error(err)
			return
		}
		p, _, err := cl.c.KV().Get(cl.wmKey, &api.QueryOptions{RequireConsistent: true})
		var at uint64
		if err == nil && p != nil {
			at = p.ModifyIndex
		}
		if _, err := fb.Fence(context.Background(), value, at); err != nil {
			t.Error(err)
		}
	}}
	if err := a.s.Grant(context.Background(), ff); err != nil {
		t.Fatal(err)
	}
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0))
	if r.kind == "signed" {
		t.Fatal("a signature left after another leader fenced the same height/round/step")
	}
	select {
	case <-a.s.Revoked():
	default:
		t.Fatal("not demoted")
	}
	if ff.attempts() != 1 {
		t.Fatalf("%d fence attempts, want 1: the read shows another leader's watermark", ff.attempts())
	}
	if got := cl.stored(t); !bytes.Equal(got.SignBytes, other.SignBytes) {
		t.Fatalf("consul holds %s, want the other leader's vote", got)
	}
}

// A refusal (not ErrOutcomeUnknown) is never retried.
func TestFenceRefusalIsNotRetried(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	cl.lock(t)
	calls := 0
	refusing := fencerFunc(func(ctx context.Context, value []byte, index uint64) (uint64, error) {
		calls++
		return 0, errors.New("the lock key is held by another session (test)")
	})
	if err := a.s.Grant(context.Background(), refusing); err != nil {
		t.Fatal(err)
	}
	if r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)); r.kind == "signed" {
		t.Fatal("signed after a refused fence")
	}
	if calls != 1 {
		t.Fatalf("%d fence attempts after a refusal, want 1", calls)
	}
}

type fencerFunc func(ctx context.Context, value []byte, index uint64) (uint64, error)

func (f fencerFunc) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	return f(ctx, value, index)
}

// A fence still unknown when the reply was due parks the request; the
// transaction lands later; the node asks again with a new timestamp (other
// sign bytes), whose fence finds the watermark moved (ErrMoved): the
// leader adopts its own late fence and re-serves its signature, with the
// first timestamp, instead of demoting.
func TestOwnLateFenceWithOtherTimestampIsReserved(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	ff := &flakyFencer{f: f, lost: 1 << 30}
	if err := a.s.Grant(context.Background(), ff); err != nil {
		t.Fatal(err)
	}
	_, index0, err := cl.store().Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)); r.kind != "ping" {
		t.Fatalf("got %s, want the parked request's ping reply", r.kind)
	}
	ff.mu.Lock()
	first := ff.last
	ff.lost = 0
	ff.mu.Unlock()
	if _, err := f.Fence(context.Background(), first, index0); err != nil { // the first transaction lands
		t.Fatal(err)
	}
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0.Add(time.Second)))
	v := mustSign(t, r)
	stillLeading(t, a)
	stored := cl.stored(t)
	if !bytes.Equal(v.Signature, stored.Signature) || !v.Timestamp.Equal(t0) {
		t.Fatalf("got signature for %v, want the stored one with the first timestamp %v", v.Timestamp, t0)
	}
	if evs := a.logs.events("an own earlier fence applied late: adopted, the request is decided again"); len(evs) != 1 {
		t.Fatalf("%d adoption events, want 1", len(evs))
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
}
