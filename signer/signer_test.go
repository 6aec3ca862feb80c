package signer

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cryptoenc "github.com/cometbft/cometbft/crypto/encoding"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"
)

// reply is a Handle answer, classified.
type reply struct {
	kind string // "signed", "refused", "ping"
	vote cmtproto.Vote
	err  string
	took time.Duration
}

func handleVote(n *node, v *cmtproto.Vote) reply {
	c := *v
	start := time.Now()
	m := n.s.Handle(context.Background(), privvalproto.Message{Sum: &privvalproto.Message_SignVoteRequest{
		SignVoteRequest: &privvalproto.SignVoteRequest{Vote: &c, ChainId: testChain}}})
	r := reply{took: time.Since(start)}
	switch x := m.Sum.(type) {
	case *privvalproto.Message_PingResponse:
		r.kind = "ping"
	case *privvalproto.Message_SignedVoteResponse:
		if x.SignedVoteResponse.Error != nil {
			r.kind, r.err = "refused", x.SignedVoteResponse.Error.Description
		} else {
			r.kind, r.vote = "signed", x.SignedVoteResponse.Vote
		}
	default:
		r.kind = "unexpected"
	}
	return r
}

// mustSign asserts a signed vote whose signature verifies for its content.
func mustSign(t *testing.T, r reply) cmtproto.Vote {
	t.Helper()
	if r.kind != "signed" {
		t.Fatalf("got %s (%s), want a signature", r.kind, r.err)
	}
	if !testKey.PubKey().VerifySignature(types.VoteSignBytes(testChain, &r.vote), r.vote.Signature) {
		t.Fatal("returned signature does not verify for the returned vote")
	}
	return r.vote
}

func TestNewValidates(t *testing.T) {
	store := consulStore{}
	base := Config{Key: testKey, ChainID: testChain, Store: store, FloorFile: t.TempDir() + "/floor.json"}
	if _, err := New(base); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		unsafe bool
	}{
		{"no key", func(c *Config) { c.Key = nil }, false},
		{"no chain", func(c *Config) { c.ChainID = "" }, false},
		{"no store", func(c *Config) { c.Store = nil }, false},
		{"no floor file", func(c *Config) { c.FloorFile = "" }, false},
		{"park hold at the read timeout", func(c *Config) { c.ParkHold = 5 * time.Second }, true},
		{"fence timeout at park hold", func(c *Config) { c.ParkHold, c.FenceTimeout = 2*time.Second, 2*time.Second }, true},
		{"fence timeout above default park hold", func(c *Config) { c.FenceTimeout = 4500 * time.Millisecond }, true},
		{"deposition without depose", func(c *Config) { c.DeposeAfter = 2 * time.Second; c.Synced = func() bool { return true } }, false},
		{"deposition not above the fence timeout", func(c *Config) {
			c.DeposeAfter, c.Depose, c.Synced = time.Second, func(context.Context, string) (bool, error) { return true, nil }, func() bool { return true }
		}, true},
		{"negative", func(c *Config) { c.DeposeAfter = -1 }, false},
	} {
		cfg := base
		tc.edit(&cfg)
		_, err := New(cfg)
		if err == nil || errors.Is(err, ErrUnsafeTiming) != tc.unsafe {
			t.Errorf("%s: %v (unsafe timing wanted: %v)", tc.name, err, tc.unsafe)
		}
		if err != nil && strings.Contains(err.Error(), "--") {
			t.Errorf("%s: error names a flag: %v", tc.name, err)
		}
	}
}

func TestHandlePubKeyAndPing(t *testing.T) {
	s, err := New(Config{Key: testKey, ChainID: testChain, Store: consulStore{}, FloorFile: t.TempDir() + "/f"})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Handle(context.Background(), privvalproto.Message{Sum: &privvalproto.Message_PubKeyRequest{PubKeyRequest: &privvalproto.PubKeyRequest{ChainId: testChain}}})
	resp := m.GetPubKeyResponse()
	if resp == nil || resp.Error != nil {
		t.Fatalf("pubkey: %v", m)
	}
	pk, err := cryptoenc.PubKeyFromProto(resp.PubKey)
	if err != nil || !pk.Equals(testKey.PubKey()) {
		t.Fatalf("pubkey %v, %v", pk, err)
	}
	m = s.Handle(context.Background(), privvalproto.Message{Sum: &privvalproto.Message_PubKeyRequest{PubKeyRequest: &privvalproto.PubKeyRequest{ChainId: "other"}}})
	if r := m.GetPubKeyResponse(); r == nil || r.Error == nil {
		t.Fatalf("pubkey of another chain: %v", m)
	}
	if m := s.Handle(context.Background(), privvalproto.Message{Sum: &privvalproto.Message_PingRequest{PingRequest: &privvalproto.PingRequest{}}}); m.GetPingResponse() == nil {
		t.Fatalf("ping: %v", m)
	}
}

// The leader's signature leaves only after its watermark is in Consul, and
// after the floor file holds it.
func TestLeaderFencesBeforeReply(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	var took []time.Duration
	for h := int64(1); h <= 30; h++ {
		for _, typ := range []cmtproto.SignedMsgType{cmtproto.PrevoteType, cmtproto.PrecommitType} {
			r := handleVote(a, vote(typ, h, 0, &blockA, t0.Add(time.Duration(h)*time.Second)))
			v := mustSign(t, r)
			took = append(took, r.took)
			got := cl.stored(t)
			if got.Height != h || !bytes.Equal(got.Signature, v.Signature) || !bytes.Equal(got.SignBytes, types.VoteSignBytes(testChain, &v)) {
				t.Fatalf("height %d: consul holds %s sig %x when Handle returned sig %x", h, got, got.Signature, v.Signature)
			}
			if fl := a.s.Floor(); Compare(fl, got) != 0 {
				t.Fatalf("floor %s, want %s", fl, got)
			}
			if typ == cmtproto.PrecommitType && len(v.ExtensionSignature) == 0 {
				t.Fatal("non-nil precommit without extension signature")
			}
		}
	}
	stored, _ := loadFloor(a.cfg.FloorFile, testChain, testKey.PubKey().Address().String())
	if Compare(stored, Watermark{Height: 30, Step: 3}) != 0 {
		t.Fatalf("floor file holds %s", stored)
	}
	var fence, floor []float64
	for _, e := range a.logs.events("sign request") {
		for _, k := range []string{"type", "height", "round", "step", "result", "reason", "sign_bytes_sha256", "signature_sha256", "took"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("log event without %q: %v", k, e)
			}
		}
		fence = append(fence, e["fence_took"].(float64))
		floor = append(floor, e["floor_took"].(float64))
	}
	t.Logf("60 signatures: Handle p50 %v max %v; fence p50 %.2f ms; floor file write p50 %.2f ms max %.2f ms",
		pct(took, 50), pct(took, 100), pctF(fence, 50), pctF(floor, 50), pctF(floor, 100))
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[(len(s)-1)*p/100]
}

func pctF(f []float64, p int) float64 {
	d := make([]time.Duration, len(f))
	for i, x := range f {
		d[i] = time.Duration(x * float64(time.Millisecond))
	}
	return float64(pct(d, p)) / float64(time.Millisecond)
}

func TestStandbyReservesRefusesParks(t *testing.T) {
	cl := newCluster(t)
	a, b := newNode(t, cl, "a"), newNode(t, cl, "b")
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	leaderVote := mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 7, 0, &blockA, t0)))
	b.waitWatermark(t, Watermark{Height: 7, Step: StepPrevote})

	// Same data, the standby's own timestamp: the leader's vote, byte for byte.
	r := handleVote(b, vote(cmtproto.PrevoteType, 7, 0, &blockA, t0.Add(700*time.Millisecond)))
	got := mustSign(t, r)
	if !bytes.Equal(got.Signature, leaderVote.Signature) || !got.Timestamp.Equal(leaderVote.Timestamp) {
		t.Fatalf("standby re-served sig %x ts %v, leader gave %x ts %v", got.Signature, got.Timestamp, leaderVote.Signature, leaderVote.Timestamp)
	}
	// Conflicting data at the same HRS: refused.
	if r := handleVote(b, vote(cmtproto.PrevoteType, 7, 0, &blockB, t0)); r.kind != "refused" {
		t.Fatalf("conflicting prevote: %s", r.kind)
	}
	if r := handleVote(b, vote(cmtproto.PrevoteType, 7, 0, nil, t0)); r.kind != "refused" {
		t.Fatalf("nil prevote against a block prevote: %s", r.kind)
	}

	// Above: parks; the leader's fence of the same data while parked turns
	// it into a re-serve.
	pc := vote(cmtproto.PrecommitType, 7, 0, &blockA, t0.Add(time.Second))
	parked := make(chan reply, 1)
	go func() { parked <- handleVote(b, vote(cmtproto.PrecommitType, 7, 0, &blockA, t0.Add(2*time.Second))) }()
	time.Sleep(400 * time.Millisecond)
	select {
	case r := <-parked:
		t.Fatalf("standby answered %s before the leader signed", r.kind)
	default:
	}
	signedAt := time.Now()
	leaderPC := mustSign(t, handleVote(a, pc))
	r = <-parked
	wake := time.Since(signedAt)
	got = mustSign(t, r)
	if !bytes.Equal(got.Signature, leaderPC.Signature) || !got.Timestamp.Equal(leaderPC.Timestamp) {
		t.Fatal("parked precommit not re-served with the leader's signature and timestamp")
	}
	if len(got.ExtensionSignature) == 0 {
		t.Fatal("re-served non-nil precommit without a fresh extension signature")
	}
	if r.took >= b.cfg.ParkHold {
		t.Fatalf("parked request answered after %v, park hold %v", r.took, b.cfg.ParkHold)
	}
	t.Logf("parked precommit re-served %v after the leader's fence returned (request took %v)", wake, r.took)

	// Above, and the leader does not sign: a ping reply at the park hold.
	r = handleVote(b, vote(cmtproto.PrevoteType, 8, 0, &blockA, t0))
	if r.kind != "ping" {
		t.Fatalf("unsigned height: %s, want ping", r.kind)
	}
	if r.took < b.cfg.ParkHold-50*time.Millisecond || r.took > b.cfg.ParkHold+time.Second {
		t.Fatalf("ping after %v, park hold %v", r.took, b.cfg.ParkHold)
	}
	t.Logf("park hold %v: ping reply after %v", b.cfg.ParkHold, r.took)
}

// S3′: after Revoke nothing new is signed; a request above parks.
func TestRevokeStopsSigning(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)))
	a.s.Revoke()
	if a.s.Leading() {
		t.Fatal("leading after Revoke")
	}
	if r := handleVote(a, vote(cmtproto.PrecommitType, 3, 0, &blockA, t0)); r.kind != "ping" {
		t.Fatalf("after Revoke: %s, want a parked request's ping", r.kind)
	}
	if got := cl.stored(t); got.Step != StepPrevote {
		t.Fatalf("consul watermark moved to %s after Revoke", got)
	}
	select {
	case <-a.s.Revoked():
		t.Fatal("Revoke closed Revoked")
	default:
	}
}

// A fence after the session was destroyed fails: the signer demotes and
// the signature is not returned.
func TestFenceFailureDemotes(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	sess, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)))
	demoted := a.s.Revoked()
	if _, err := cl.c.Session().Destroy(sess, nil); err != nil {
		t.Fatal(err)
	}
	r := handleVote(a, vote(cmtproto.PrecommitType, 3, 0, &blockA, t0))
	if r.kind != "ping" {
		t.Fatalf("after a failed fence: %s, want the parked request's ping", r.kind)
	}
	select {
	case <-demoted:
	case <-time.After(time.Second):
		t.Fatal("Revoked not closed")
	}
	if a.s.Leading() {
		t.Fatal("still leading")
	}
	if got := cl.stored(t); got.Step != StepPrevote {
		t.Fatalf("consul watermark moved to %s", got)
	}
}

// A hand-over with both nodes asking at once never gives out two
// signatures for one height/round/step: the old leader's node and the new
// leader's node want different blocks at even heights, and the new
// leader's node asks again from height 1 as soon as it leads (a lagging
// node, or one replaying its WAL) while the old one's node keeps asking.
func TestHandOverOneSignaturePerHRS(t *testing.T) {
	cl := newCluster(t)
	a, b := newNode(t, cl, "a"), newNode(t, cl, "b")
	sessA, fA := cl.lock(t)
	if err := a.s.Grant(context.Background(), fA); err != nil {
		t.Fatal(err)
	}
	const handover, heights = 8, 16
	var mu sync.Mutex
	var all []given
	// run is a node asking for heights from..to, re-sending after a ping.
	run := func(n *node, name string, from, to int64, tsOffset time.Duration) {
		for h := from; h <= to; h++ {
			for _, typ := range []cmtproto.SignedMsgType{cmtproto.PrevoteType, cmtproto.PrecommitType} {
				blk := &blockA
				if name == "b" && h%2 == 0 {
					blk = &blockB
				}
				v := vote(typ, h, 0, blk, t0.Add(time.Duration(h)*time.Second+tsOffset))
				for try := 0; try < 8; try++ {
					r := handleVote(n, v)
					if r.kind == "ping" {
						continue
					}
					if r.kind == "signed" {
						sv := mustSign(t, r)
						mu.Lock()
						all = append(all, given{Watermark{Height: h, Step: voteStep(typ)}.String(), sv.Signature, name})
						mu.Unlock()
					}
					break
				}
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); run(a, "a", 1, handover, 0) }()
	go func() { defer wg.Done(); run(b, "b", 1, handover, 300*time.Millisecond) }()
	wg.Wait()
	if w := a.s.Watermark(); w.Height != handover {
		t.Fatalf("old leader at %s before the hand-over", w)
	}
	// Hand-over while both nodes keep asking.
	wg.Add(2)
	go func() { defer wg.Done(); run(a, "a", handover+1, heights, 0) }()
	go func() {
		defer wg.Done()
		for !b.s.Leading() {
			time.Sleep(time.Millisecond)
		}
		run(b, "b", 1, heights, 1100*time.Millisecond)
	}()
	a.s.Revoke()
	cl.unlock(t, sessA)
	_, fB := cl.lock(t)
	if err := b.s.Grant(context.Background(), fB); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	by, hrs := onePerHRS(t, all)
	if by["a"] == 0 || by["b"] == 0 || hrs < heights {
		t.Fatalf("too little signed to show anything: by replica %v, %d HRS", by, hrs)
	}
	t.Logf("signatures given out: %v over %d HRS, each HRS one signature", by, hrs)
}

func voteStep(typ cmtproto.SignedMsgType) int8 {
	if typ == cmtproto.PrecommitType {
		return StepPrecommit
	}
	return StepPrevote
}

// appliedUnknown is a fence whose transaction Consul applied but whose
// answer never came: the outcome is unknown to the leader.
type appliedUnknown struct{ f Fencer }

func (a appliedUnknown) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	if _, err := a.f.Fence(ctx, value, index); err != nil {
		return 0, err
	}
	time.Sleep(300 * time.Millisecond) // the watch sees the write while this replica still leads
	return 0, errors.New("fence outcome unknown (test)")
}

// A leader demoted by a fence with an unknown outcome that Consul did
// apply: the signature is not returned from the fence, but the request,
// now parked, is re-served the fenced signature as soon as the watch shows
// it (its answer waits for the signing mutex, so it is seen after the
// demotion), well before the park hold.
func TestDemotedLeaderReadsTheStoreAtOnce(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), appliedUnknown{f}); err != nil {
		t.Fatal(err)
	}
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0))
	if r.kind != "signed" || r.took > time.Second {
		t.Fatalf("got %s after %s, want the fenced signature re-served at once (park hold %s)", r.kind, r.took, a.cfg.ParkHold)
	}
	stored, _, err := cl.store().Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if w, err := ParseWatermark(stored); err != nil || !bytes.Equal(w.Signature, r.vote.Signature) {
		t.Fatalf("re-served signature is not the fenced one (%v)", err)
	}
	select {
	case <-a.s.Revoked():
	default:
		t.Fatal("not demoted after the unknown fence")
	}
	want := Watermark{Height: 4, Step: StepPrevote}
	deadline := time.Now().Add(2 * time.Second)
	for Compare(a.s.Watermark(), want) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ex-leader's watermark %s 2s after its demotion; consul holds %s", a.s.Watermark(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// given is one signature a replica gave out, at a height/round/step.
type given struct {
	hrs string
	sig []byte
	by  string
}

// onePerHRS fails the test for every height/round/step given out with
// more than one distinct signature, and returns the signatures each
// replica gave and the number of height/round/steps.
func onePerHRS(t *testing.T, all []given) (by map[string]int, hrs int) {
	t.Helper()
	sigs := map[string][][]byte{}
	by = map[string]int{}
	for _, g := range all {
		by[g.by]++
		if !slices.ContainsFunc(sigs[g.hrs], func(s []byte) bool { return bytes.Equal(s, g.sig) }) {
			sigs[g.hrs] = append(sigs[g.hrs], g.sig)
		}
	}
	for h, s := range sigs {
		if len(s) > 1 {
			t.Errorf("%s: %d distinct signatures", h, len(s))
		}
	}
	return by, len(sigs)
}
