package signer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
	"github.com/hashicorp/consul/api"
)

// casFencer is a test-only Fencer of the leaderless policy: a
// check-and-set of the sign record, no lock.
type casFencer struct {
	c   *api.Client
	key string
}

func (f casFencer) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: f.key, Value: value, Index: index}}}
	ok, resp, _, err := f.c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if !ok {
		var msgs []string
		for _, e := range resp.Errors {
			msgs = append(msgs, e.What)
		}
		return 0, fmt.Errorf("%w: %s", ErrMoved, strings.Join(msgs, "; "))
	}
	return resp.Results[0].KV.ModifyIndex, nil
}

func (cl *cluster) cas() casFencer { return casFencer{c: cl.c, key: cl.wmKey} }

// leaderless starts a granted signer of the leaderless policy.
func leaderless(t *testing.T, cl *cluster, name string, f Fencer) *node {
	t.Helper()
	n := newNode(t, cl, name, func(c *Config) { c.Leaderless = true })
	if f == nil {
		f = cl.cas()
	}
	if err := n.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return n
}

// Three signers of the leaderless policy, their nodes asking for the same
// heights at once with other timestamps, and at odd heights wanting
// another block on one of them: for every height/round/step exactly one
// signature leaves, whoever asks, and every signature leaves only once
// the record holds it.
func TestLeaderlessOneSignaturePerHRS(t *testing.T) {
	cl := newCluster(t)
	names := []string{"a", "b", "c"}
	var nodes []*node
	for _, name := range names {
		nodes = append(nodes, leaderless(t, cl, name, nil))
	}
	const heights = 12
	var mu sync.Mutex
	var all []given
	data := map[string][]byte{} // sign bytes without the timestamp, per HRS
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := int64(1); h <= heights; h++ {
				for _, typ := range []cmtproto.SignedMsgType{cmtproto.PrevoteType, cmtproto.PrecommitType} {
					blk := &blockA
					if i == 1 && h%2 == 1 {
						blk = &blockB
					}
					v := vote(typ, h, 0, blk, t0.Add(time.Duration(h)*time.Second+time.Duration(i)*time.Millisecond))
					r := handleVote(n, v)
					if r.kind != "signed" {
						continue
					}
					sv := mustSign(t, r)
					// The record held it before the reply.
					stored := cl.stored(t)
					if Compare(stored, Watermark{Height: h, Step: voteStep(typ)}) < 0 {
						t.Errorf("%s: record at %s after a signature for %d/%d", names[i], stored, h, voteStep(typ))
					}
					_, noTS, err := withoutTimestamp(false, types.VoteSignBytes(testChain, &sv))
					if err != nil {
						t.Error(err)
					}
					hrs := Watermark{Height: h, Step: voteStep(typ)}.String()
					mu.Lock()
					if d, ok := data[hrs]; ok && !bytes.Equal(d, noTS) {
						t.Errorf("%s: signatures for two different votes (not only the timestamp)", hrs)
					}
					data[hrs] = noTS
					all = append(all, given{hrs, sv.Signature, names[i]})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	by, hrs := onePerHRS(t, all)
	var won, lost uint64
	for _, n := range nodes {
		w, l := n.s.Races()
		won, lost = won+w, lost+l
	}
	if won != uint64(hrs) {
		t.Errorf("%d races won, want one per height/round/step signed (%d)", won, hrs)
	}
	if hrs < 2*heights-2 {
		t.Fatalf("only %d of %d height/round/steps signed: %v", hrs, 2*heights, by)
	}
	t.Logf("signatures given out by replica %v over %d HRS, one per HRS; races won %d, lost %d", by, hrs, won, lost)
}

// The same height/round/step and the same vote but for the timestamp: the
// other replica's node gets the recorded signature and timestamp; other
// data, or a lower step, is refused; nothing new is written.
func TestLeaderlessReservesRecordedSignature(t *testing.T) {
	cl := newCluster(t)
	a, b := leaderless(t, cl, "a", nil), leaderless(t, cl, "b", nil)
	va := mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 5, 0, &blockA, t0)))
	_, before, _ := cl.c.KV().Get(cl.wmKey, &api.QueryOptions{RequireConsistent: true})
	vb := mustSign(t, handleVote(b, vote(cmtproto.PrevoteType, 5, 0, &blockA, t0.Add(700*time.Millisecond))))
	if !bytes.Equal(va.Signature, vb.Signature) || !vb.Timestamp.Equal(t0) {
		t.Fatalf("b's node got signature %X at %v, want a's %X at %v", vb.Signature, vb.Timestamp, va.Signature, t0)
	}
	if r := handleVote(b, vote(cmtproto.PrevoteType, 5, 0, &blockB, t0)); r.kind != "refused" {
		t.Fatalf("other block at the recorded step: %s, want refused", r.kind)
	}
	if r := handleVote(b, vote(cmtproto.PrevoteType, 5, 0, nil, t0)); r.kind != "refused" {
		t.Fatalf("nil vote at the recorded step: %s, want refused", r.kind)
	}
	if r := handleVote(b, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("lower height: %s, want refused", r.kind)
	}
	_, after, _ := cl.c.KV().Get(cl.wmKey, &api.QueryOptions{RequireConsistent: true})
	if after.LastIndex != before.LastIndex {
		t.Fatalf("record written (index %d → %d) by a re-serve or a refusal", before.LastIndex, after.LastIndex)
	}
}

// A signer not granted (drained, not synced, stopping) refuses every sign
// request, even one it could re-serve; Revoke makes a granted one refuse.
func TestLeaderlessNotGrantedRefuses(t *testing.T) {
	cl := newCluster(t)
	a := leaderless(t, cl, "a", nil)
	b := newNode(t, cl, "b", func(c *Config) { c.Leaderless = true })
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 2, 0, &blockA, t0)))
	b.waitWatermark(t, Watermark{Height: 2, Step: StepPrevote})
	for _, v := range []*cmtproto.Vote{vote(cmtproto.PrevoteType, 2, 0, &blockA, t0), vote(cmtproto.PrecommitType, 2, 0, &blockA, t0)} {
		if r := handleVote(b, v); r.kind != "refused" || !strings.Contains(r.err, "does not sign now") {
			t.Fatalf("not granted: %s (%s), want refused", r.kind, r.err)
		}
	}
	a.s.Revoke()
	if r := handleVote(a, vote(cmtproto.PrecommitType, 2, 0, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("after Revoke: %s, want refused", r.kind)
	}
	if got := cl.stored(t); got.Step != StepPrevote {
		t.Fatalf("record moved to %s after Revoke", got)
	}
}

// A lost race is settled by a read and a new decision, never by replying
// with the signature made for the lost check-and-set: the record moved
// under a's stale index to b's vote for another block, so a's node is
// refused, and to the same vote, so a's node gets b's signature.
func TestLeaderlessLostRaceDecidesAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		blk  *cmtproto.BlockID
		at   time.Time // b's vote's timestamp
		want string
	}{
		{"other-block", &blockB, t0.Add(time.Second), "refused"},
		{"same-block", &blockA, t0.Add(time.Second), "signed"},
		// The very vote a sends (same block, same timestamp): the record
		// then holds byte for byte the value a's check-and-set carried,
		// yet it is b's, and a lost the race (a chaos drill saw both
		// replicas count it as their own signature).
		{"same-vote", &blockA, t0, "signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			b := leaderless(t, cl, "b", nil)
			var once sync.Once
			var vb cmtproto.Vote
			// a's check-and-set goes after b signed: a's index is stale.
			race := fencerFunc(func(ctx context.Context, value []byte, index uint64) (uint64, error) {
				once.Do(func() { vb = mustSign(t, handleVote(b, vote(cmtproto.PrevoteType, 3, 0, tc.blk, tc.at))) })
				return cl.cas().Fence(ctx, value, index)
			})
			a := newNode(t, cl, "a", func(c *Config) { c.Leaderless = true })
			if err := a.s.Grant(context.Background(), race); err != nil {
				t.Fatal(err)
			}
			r := handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0))
			if r.kind != tc.want {
				t.Fatalf("a's node: %s (%s), want %s", r.kind, r.err, tc.want)
			}
			if r.kind == "signed" && !bytes.Equal(r.vote.Signature, vb.Signature) {
				t.Fatal("a's node got another signature than the recorded one")
			}
			if won, lost := a.s.Races(); won != 0 || lost != 1 {
				t.Fatalf("a's races: won %d lost %d, want 0 and 1", won, lost)
			}
			if r.kind == "signed" {
				// Logged as a re-served signature, with the signature's
				// own digest (the drills' checker counts it by that).
				sum := sha256.Sum256(vb.Signature)
				evs := a.logs.events("sign request")
				if len(evs) == 0 || evs[len(evs)-1]["result"] != "reserved" || evs[len(evs)-1]["signature_sha256"] != hex.EncodeToString(sum[:]) {
					t.Fatalf("a's log: %v, want the last request reserved with b's signature's digest", evs)
				}
			}
			select {
			case <-a.s.Revoked():
				t.Fatal("a lost race stopped the signer")
			default:
			}
			if got := cl.stored(t); !bytes.Equal(got.Signature, vb.Signature) {
				t.Fatalf("record holds %s, want b's vote", got)
			}
			// a signs on at the next step, at the record's index.
			mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 3, 0, &blockA, t0)))
		})
	}
}

// An unknown outcome is never a success: a check-and-set that applied but
// whose answer was lost is found by the read and its signature returned;
// one that did not apply, after which another replica signed other data,
// gives no signature, and the value sent never lands later.
func TestLeaderlessUnknownOutcome(t *testing.T) {
	t.Run("applied", func(t *testing.T) {
		cl := newCluster(t)
		ff := &flakyFencer{f: cl.cas(), lost: 1, applied: true}
		a := leaderless(t, cl, "a", ff)
		v := mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)))
		if got := cl.stored(t); !bytes.Equal(got.Signature, v.Signature) {
			t.Fatalf("record %s does not hold the signature returned", got)
		}
	})
	t.Run("not-applied-then-other", func(t *testing.T) {
		cl := newCluster(t)
		b := leaderless(t, cl, "b", nil)
		ff := &flakyFencer{f: cl.cas(), lost: 1 << 30, before: func() {
			mustSign(t, handleVote(b, vote(cmtproto.PrevoteType, 4, 0, &blockB, t0)))
		}}
		a := leaderless(t, cl, "a", ff)
		if r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)); r.kind == "signed" {
			t.Fatal("a signature for other data left after an unknown outcome")
		}
		if ff.attempts() != 1 {
			t.Fatalf("%d check-and-sets, want 1: the read shows the other replica's vote", ff.attempts())
		}
		time.Sleep(200 * time.Millisecond)
		if got := cl.stored(t); !bytes.Equal(got.SignBytes, types.VoteSignBytes(testChain, vote(cmtproto.PrevoteType, 4, 0, &blockB, t0))) {
			t.Fatalf("record holds %s, want b's vote", got)
		}
	})
}

// blindStore is a Store whose watch never sees anything: a replica whose
// view of the record lags (its watch has not delivered yet).
type blindStore struct{ Store }

func (b blindStore) Watch(ctx context.Context, index uint64) ([]byte, uint64, error) {
	<-ctx.Done()
	return nil, index, ctx.Err()
}

// A record deleted while replicas sign is never written back from one
// replica's memory, which may miss another replica's last signature: a
// sees its own prevote at 7/0/2, b signs a precommit for block A at 7/0
// that a has not seen, the record is deleted, and a's node asks for a nil
// precommit at 7/0: written back from a's memory, the record would let a
// sign it (two precommits at 7/0). a stops signing instead, and its next
// Grant raises the record above the chain (S8) before it signs again.
func TestLeaderlessDeletedRecordNotRestoredFromMemory(t *testing.T) {
	cl := newCluster(t)
	var chainHeight atomic.Int64 // no block at the first grant: a new validator
	a := newNode(t, cl, "a", func(c *Config) {
		c.Leaderless = true
		c.Store = blindStore{c.Store}
		c.ChainHeight = func(context.Context) (int64, error) { return chainHeight.Load(), nil }
	})
	if err := a.s.Grant(context.Background(), cl.cas()); err != nil {
		t.Fatal(err)
	}
	b := leaderless(t, cl, "b", nil)
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 7, 0, &blockA, t0)))
	mustSign(t, handleVote(b, vote(cmtproto.PrecommitType, 7, 0, &blockA, t0)))
	chainHeight.Store(6)
	if _, err := cl.c.KV().Delete(cl.wmKey, nil); err != nil {
		t.Fatal(err)
	}
	if r := handleVote(a, vote(cmtproto.PrecommitType, 7, 0, nil, t0)); r.kind == "signed" {
		t.Fatal("a nil precommit at 7/0 left after the record was deleted: b's precommit for block A is already out")
	}
	select {
	case <-a.s.Revoked():
	default:
		t.Fatal("a goes on signing with the record gone")
	}
	if got := cl.stored(t); got.Height != 0 {
		t.Fatalf("record re-created at %s from a replica's memory", got)
	}
	if n := len(a.logs.events("sign record in consul missing or below what this replica saw committed: signing stops until a new grant raises it above the chain")); n != 1 {
		t.Fatalf("%d lost-record events, want 1", n)
	}
	// The next grant raises the record above the chain's latest height:
	// the whole height 7 is blocked, then 8 signs.
	if err := a.s.Grant(context.Background(), cl.cas()); err != nil {
		t.Fatal(err)
	}
	if got := cl.stored(t); got.Height != 7 || got.Step != StepPrecommit {
		t.Fatalf("record raised to %s, want the whole height 7", got)
	}
	if r := handleVote(a, vote(cmtproto.PrecommitType, 7, 0, nil, t0)); r.kind != "refused" {
		t.Fatalf("nil precommit at 7/0 after the raise: %s, want refused", r.kind)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 8, 0, &blockA, t0)))
}

// A new replica with nothing in memory and no floor raises a missing
// record above the chain (S8), never starts from zero.
func TestLeaderlessMissingRecordRaised(t *testing.T) {
	cl := newCluster(t)
	c := newNode(t, cl, "c", func(c *Config) {
		c.Leaderless = true
		c.ChainFloor = func(context.Context) (int64, int32, error) { return 9, 0, nil }
		c.ChainHeight = func(context.Context) (int64, error) { return 9, nil }
	})
	if err := c.s.Grant(context.Background(), cl.cas()); err != nil {
		t.Fatal(err)
	}
	if got := cl.stored(t); got.Height != 10 {
		t.Fatalf("record created at %s, want the whole height 10 blocked", got)
	}
	if r := handleVote(c, vote(cmtproto.PrevoteType, 10, 0, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("height 10 after the raise: %s, want refused", r.kind)
	}
}

// The leaderless policy has no holder to depose.
func TestLeaderlessRefusesDeposition(t *testing.T) {
	_, err := New(Config{Key: testKey, ChainID: testChain, Store: consulStore{}, FloorFile: t.TempDir() + "/f", Leaderless: true, DeposeAfter: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "leaderless") {
		t.Fatalf("New: %v, want a refusal naming the leaderless policy", err)
	}
}

// A signer whose grant ended by itself (a failed write) parks requests
// above the record while it is not held out, since CometBFT never asks
// again for a refused step, and refuses them once it is (drained).
func TestLeaderlessNotGrantedParksUnlessHeldOut(t *testing.T) {
	cl := newCluster(t)
	var held atomic.Bool
	refusing := fencerFunc(func(context.Context, []byte, uint64) (uint64, error) {
		return 0, errors.New("rolled back: permission denied (test)")
	})
	a := newNode(t, cl, "a", func(c *Config) {
		c.Leaderless = true
		c.HeldOut = held.Load
	})
	if err := a.s.Grant(context.Background(), refusing); err != nil {
		t.Fatal(err)
	}
	if r := handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)); r.kind != "ping" {
		t.Fatalf("after a refused write: %s (%s), want parked (ping)", r.kind, r.err)
	}
	select {
	case <-a.s.Revoked():
	default:
		t.Fatal("a refused write did not end the grant")
	}
	held.Store(true)
	if r := handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("held out: %s, want refused", r.kind)
	}
}

// A record re-created from a raise computed before the create is raised
// again when the chain moved meanwhile (finding F6 in model/README.md: a
// create cannot tell "absent since read" from "created, signed above and
// deleted again").
func TestLeaderlessRecreatedRecordRaisedAgain(t *testing.T) {
	cl := newCluster(t)
	var calls atomic.Int64
	c := newNode(t, cl, "c", func(c *Config) {
		c.Leaderless = true
		c.ChainHeight = func(context.Context) (int64, error) {
			if calls.Add(1) == 1 {
				return 5, nil // read before the create
			}
			return 8, nil // the chain moved on
		}
	})
	if err := c.s.Grant(context.Background(), cl.cas()); err != nil {
		t.Fatal(err)
	}
	if got := cl.stored(t); got.Height != 9 || c.s.Watermark().Height != 9 {
		t.Fatalf("record %s, memory %s after the create; want both raised to the whole height 9", got, c.s.Watermark())
	}
	if r := handleVote(c, vote(cmtproto.PrevoteType, 9, 0, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("height 9: %s, want refused", r.kind)
	}
}
