package signer

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	raisedMsg = "watermark in consul raised above everything that may have been signed, and written back"
	lostMsg   = "watermark in consul went missing or down; kept the one in memory, the next leader raises it"
)

// chainAt makes a node's ChainHeight report h, and gives it metrics.
func chainAt(h int64, m *Metrics) func(*Config) {
	return func(c *Config) {
		c.ChainHeight = func(context.Context) (int64, error) { return h, nil }
		c.Metrics = m
	}
}

// chainFrom makes a node's ChainHeight report what h holds, and gives it
// metrics.
func chainFrom(h *atomic.Int64, m *Metrics) func(*Config) {
	return func(c *Config) {
		c.ChainHeight = func(context.Context) (int64, error) { return h.Load(), nil }
		c.Metrics = m
	}
}

// blocked is the watermark that blocks the whole height h.
func blocked(h int64) Watermark {
	return Watermark{ChainID: testChain, Height: h, Round: math.MaxInt32, Step: StepPrecommit}
}

// storedPair reads the watermark key with its index; nil when absent.
func (cl *cluster) storedPair(t *testing.T) *api.KVPair {
	t.Helper()
	p, _, err := cl.c.KV().Get(cl.wmKey, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signUpTo makes a lead and sign prevotes at heights 1..h, then follow and
// release the lock, with b following until it saw height h.
func signUpTo(t *testing.T, cl *cluster, a, b *node, h int64) {
	t.Helper()
	sess, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= h; i++ {
		mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, i, 0, &blockA, t0)))
	}
	top := Watermark{Height: h, Step: StepPrevote}
	b.waitWatermark(t, top)
	for deadline := time.Now().Add(2 * time.Second); Compare(b.s.Floor(), top) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("standby floor %s, want %s", b.s.Floor(), top)
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.s.Revoke()
	cl.unlock(t, sess)
}

// The watermark key deleted between two leaders, with two real signers
// over one real Consul. The standby keeps what it saw (it does not take
// the missing key as "nothing signed"); a new leader raises the key above
// the chain (the whole next height), its floor file and its memory,
// re-creates it, logs and counts it, instead of stopping; and a leader
// whose floor file was moved aside and that never saw the old watermark
// does not sign below what was signed.
func TestLeadRestoresMissingWatermark(t *testing.T) {
	cl := newCluster(t)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	mA, mB := NewMetrics(regA), NewMetrics(regB)
	var height atomic.Int64 // a new chain: a new validator's first lead raises nothing
	a, b := newNode(t, cl, "a", chainFrom(&height, mA)), newNode(t, cl, "b", chainFrom(&height, mB))
	signUpTo(t, cl, a, b, 5)
	height.Store(7)
	if _, err := cl.c.KV().Delete(cl.wmKey, nil); err != nil {
		t.Fatal(err)
	}

	// The standby keeps 5/0/2: a request below is refused (a standby that
	// took the missing key as the zero watermark would park it).
	for deadline := time.Now().Add(5 * time.Second); len(b.logs.events(lostMsg)) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not report the missing key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w := b.s.Watermark(); w.Height != 5 || w.Step != StepPrevote {
		t.Fatalf("standby watermark after the key was deleted: %s, want 5/0/2 kept", w)
	}
	if r := handleVote(b, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("standby, height 3 after the key was deleted: %s, want refused", r.kind)
	}
	if n := testutil.ToFloat64(mB.lost.WithLabelValues("missing")); n != 1 {
		t.Fatalf("valguard_signer_watermark_lost_total{reason=missing} = %v, want 1", n)
	}

	// B leads: the key is re-created at the whole height above the chain.
	_, f := cl.lock(t)
	if err := b.s.Grant(context.Background(), f); err != nil {
		t.Fatalf("Grant on a missing key: %v", err)
	}
	if got := cl.stored(t); Compare(got, blocked(8)) != 0 || got.ChainID != testChain {
		t.Fatalf("re-created watermark %s (chain %q), want %s", got, got.ChainID, blocked(8))
	}
	ev := b.logs.events(raisedMsg)
	if len(ev) != 1 || ev[0]["level"] != "error" || ev[0]["reason"] != "missing" || ev[0]["absent"] != true {
		t.Fatalf("restore log events: %v", ev)
	}
	if n := testutil.ToFloat64(mB.restored.WithLabelValues("missing")); n != 1 {
		t.Fatalf("valguard_signer_watermark_restored_total{reason=missing} = %v, want 1", n)
	}
	for _, h := range []int64{6, 8} {
		if r := handleVote(b, vote(cmtproto.PrevoteType, h, 0, &blockA, t0)); r.kind != "refused" {
			t.Fatalf("leader, height %d at or below the raised watermark: %s, want refused", h, r.kind)
		}
	}
	mustSign(t, handleVote(b, vote(cmtproto.PrevoteType, 9, 0, &blockA, t0)))
	a.waitWatermark(t, Watermark{Height: 9, Step: StepPrevote})
}

// A replica whose floor file was moved aside and that never saw the
// watermark (a restart on a new state directory) leads on a deleted key:
// it must not sign the heights the old leader signed.
func TestLeadMissingWatermarkWithoutFloor(t *testing.T) {
	cl := newCluster(t)
	a, b := newNode(t, cl, "a"), newNode(t, cl, "b")
	signUpTo(t, cl, a, b, 5)
	if _, err := cl.c.KV().Delete(cl.wmKey, nil); err != nil {
		t.Fatal(err)
	}
	cfg := b.cfg
	cfg.FloorFile = filepath.Join(t.TempDir(), "floor.json") // the old one moved aside
	cfg.ChainHeight = func(context.Context) (int64, error) { return 5, nil }
	fresh, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{s: fresh, logs: b.logs, cfg: cfg}
	_, f := cl.lock(t)
	if err := fresh.Grant(context.Background(), f); err != nil {
		t.Fatalf("Grant: %v", err)
	}
	for h := int64(1); h <= 6; h++ {
		if r := handleVote(n, vote(cmtproto.PrecommitType, h, 0, &blockA, t0)); r.kind == "signed" {
			t.Fatalf("signed a precommit at height %d, at or below what the chain shows (latest 5)", h)
		}
	}
	if got := cl.stored(t); Compare(got, blocked(6)) != 0 {
		t.Fatalf("re-created watermark %s, want %s", got, blocked(6))
	}
	mustSign(t, handleVote(n, vote(cmtproto.PrevoteType, 7, 0, &blockA, t0)))

	// The chain's height unknown: a missing key is not led from.
	if _, err := cl.c.KV().Delete(cl.wmKey, nil); err != nil {
		t.Fatal(err)
	}
	fresh.Revoke()
	cfg.FloorFile = filepath.Join(t.TempDir(), "floor.json")
	cfg.ChainHeight = func(context.Context) (int64, error) { return 0, errors.New("node down") }
	blind, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := blind.Grant(context.Background(), f); err == nil || !strings.Contains(err.Error(), "node down") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Grant on a missing key with the chain's height unknown: %v", err)
	}
	if blind.Leading() || cl.storedPair(t) != nil {
		t.Fatal("led, or wrote the key, with the chain's height unknown")
	}
}

// A watermark that went down (rewritten below what was signed, or below
// what the chain shows) is raised and written back with a check-and-set on
// its index, not fatal.
func TestLeadRestoresLoweredWatermark(t *testing.T) {
	cl := newCluster(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a, b := newNode(t, cl, "a"), newNode(t, cl, "b", chainAt(6, m))
	signUpTo(t, cl, a, b, 5)
	if err := cl.putRaw(`{"chain_id":"` + testChain + `","height":"2","round":0,"step":2}`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(b.logs.events(lostMsg)) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not report the lowered key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w := b.s.Watermark(); w.Height != 5 {
		t.Fatalf("standby adopted the lowered watermark: %s", w)
	}
	before := cl.storedPair(t).ModifyIndex
	_, f := cl.lock(t)
	if err := b.s.Grant(context.Background(), f); err != nil {
		t.Fatalf("Grant on a lowered key: %v", err)
	}
	after := cl.storedPair(t)
	if got := cl.stored(t); Compare(got, blocked(7)) != 0 || after.ModifyIndex <= before {
		t.Fatalf("written back %s at index %d (was %d), want %s", got, after.ModifyIndex, before, blocked(7))
	}
	if ev := b.logs.events(raisedMsg); len(ev) != 1 || ev[0]["reason"] != "lowered" || ev[0]["known"] != "5/0/2" {
		t.Fatalf("restore log events: %v", ev)
	}
	if n := testutil.ToFloat64(m.restored.WithLabelValues("lowered")); n != 1 {
		t.Fatalf("restored{reason=lowered} = %v, want 1", n)
	}
	mustSign(t, handleVote(b, vote(cmtproto.PrevoteType, 8, 0, &blockA, t0)))

	// Below the chain floor only (the replica knows nothing else): Consul
	// holds 3/0/2, the chain shows a precommit at 9/2; no chain height.
	cl2 := newCluster(t)
	if err := cl2.putRaw(`{"chain_id":"` + testChain + `","height":"3","round":0,"step":2}`); err != nil {
		t.Fatal(err)
	}
	c := newNode(t, cl2, "c", func(c *Config) { c.ChainFloor = func(context.Context) (int64, int32, error) { return 9, 2, nil } })
	_, f2 := cl2.lock(t)
	if err := c.s.Grant(context.Background(), f2); err != nil {
		t.Fatalf("Grant below the chain floor: %v", err)
	}
	want := Watermark{Height: 9, Round: 2, Step: StepPrecommit}
	if got := cl2.stored(t); Compare(got, want) != 0 {
		t.Fatalf("written back %s, want the chain floor %s", got, want)
	}
	if r := handleVote(c, vote(cmtproto.PrecommitType, 9, 2, &blockA, t0)); r.kind != "refused" {
		t.Fatalf("the chain floor's precommit: %s, want refused", r.kind)
	}
	mustSign(t, handleVote(c, vote(cmtproto.PrevoteType, 9, 3, &blockA, t0)))
}

// A signer-mode replica that takes over from a restart-mode (key-file)
// leader, whose watermark has no chain ID and only says what its node had
// signed at its last publish, raises it above the chain (S8).
func TestLeadRaisesRestartModeWatermark(t *testing.T) {
	cl := newCluster(t)
	if err := cl.putRaw(`{"height":"3","round":0,"step":1}`); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	a := newNode(t, cl, "a", chainAt(10, m))
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatalf("Grant on the restart mode's watermark: %v", err)
	}
	if got := cl.stored(t); Compare(got, blocked(11)) != 0 || got.ChainID != testChain {
		t.Fatalf("written back %s (chain %q), want %s", got, got.ChainID, blocked(11))
	}
	if ev := a.logs.events(raisedMsg); len(ev) != 1 || ev[0]["level"] != "warn" || ev[0]["reason"] != "restart_mode" {
		t.Fatalf("restore log events: %v", ev)
	}
	if n := testutil.ToFloat64(m.restored.WithLabelValues("restart_mode")); n != 1 {
		t.Fatalf("restored{reason=restart_mode} = %v, want 1", n)
	}
	for _, h := range []int64{4, 10, 11} {
		if r := handleVote(a, vote(cmtproto.PrevoteType, h, 0, &blockA, t0)); r.kind != "refused" {
			t.Fatalf("height %d, which the key-file leader may have signed: %s, want refused", h, r.kind)
		}
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 12, 0, &blockA, t0)))
}

// A new validator (no key, no floor, nothing on chain, no block) leads
// from the zero watermark and writes nothing; on a running chain the first
// lead raises above it.
func TestLeadNewValidator(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a", chainAt(0, nil))
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if cl.storedPair(t) != nil || len(a.logs.events(raisedMsg)) != 0 {
		t.Fatal("a new validator's first lead wrote or logged a restore")
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 1, 0, &blockA, t0)))

	cl2 := newCluster(t)
	b := newNode(t, cl2, "b", chainAt(40, nil))
	_, f2 := cl2.lock(t)
	if err := b.s.Grant(context.Background(), f2); err != nil {
		t.Fatal(err)
	}
	if got := cl2.stored(t); Compare(got, blocked(41)) != 0 {
		t.Fatalf("first lead on a running chain wrote %s, want %s", got, blocked(41))
	}
}
