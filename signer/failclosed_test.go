package signer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/valguard/valguard/internal/atomicfile"
)

// LastRequest feeds a duration that decides a node restart
// (time.Since(LastRequest()) in the supervisor): it must be on the
// monotonic clock, so that a step of the wall clock (NTP, an operator)
// neither fakes nor hides a silent node (S4).
func TestLastRequestIsMonotonic(t *testing.T) {
	s, err := New(Config{Key: testKey, ChainID: testChain, Store: consulStore{}, FloorFile: t.TempDir() + "/floor.json"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastRequest().IsZero() {
		t.Fatalf("last request %v before any request", s.LastRequest())
	}
	before := time.Now()
	// A vote request without a vote: refused at once, but a request.
	m := s.Handle(context.Background(), privvalproto.Message{Sum: &privvalproto.Message_SignVoteRequest{
		SignVoteRequest: &privvalproto.SignVoteRequest{ChainId: testChain}}})
	if r := m.GetSignedVoteResponse(); r == nil || r.Error == nil {
		t.Fatalf("got %v, want a refusal", m)
	}
	last := s.LastRequest()
	// time.Time.String ends in "m=±<seconds>" exactly when the time
	// carries a monotonic clock reading.
	if !strings.Contains(last.String(), " m=") {
		t.Fatalf("last request %v carries no monotonic clock reading: durations from it follow the wall clock", last)
	}
	if since := time.Since(last); since < 0 || last.Before(before) || since > time.Minute {
		t.Fatalf("last request %v, %v ago, request sent at %v", last, since, before)
	}
}

// within runs f and returns its result, or false when f has not returned
// after d (a generous bound: it is a hang being detected, not a speed).
func within[T any](d time.Duration, f func() T) (T, bool) {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, true
	case <-t.C:
		var zero T
		return zero, false
	}
}

// mutexFree fails the test unless the signing mutex can be taken within a
// generous bound. On failure it releases the mutex the panic left held,
// so that the test's clean-up (Run's watch takes it) can end.
func mutexFree(t *testing.T, n *node) {
	t.Helper()
	if _, ok := within(10*time.Second, n.s.Leading); !ok {
		n.s.mu.Unlock()
		t.Fatal("the signing mutex is still held 10s after the request was answered: every later request hangs")
	}
}

// panicFencer panics on its first call, after committing the fence when
// applied is set (the watermark moved, the reply never built).
type panicFencer struct {
	f       Fencer
	applied bool
	calls   atomic.Int32
}

func (p *panicFencer) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	if p.calls.Add(1) == 1 {
		if p.applied {
			if _, err := p.f.Fence(ctx, value, index); err != nil {
				return 0, err
			}
		}
		panic("fencer bug (test)")
	}
	return p.f.Fence(ctx, value, index)
}

// panicKey is the validator key whose Sign panics (an HSM library bug).
type panicKey struct{ crypto.PrivKey }

func (panicKey) Sign([]byte) ([]byte, error) { panic("key bug (test)") }

// A panic while the signing mutex is held — in the key, or in the Fencer
// before or after its transaction applied — never leaves the mutex held:
// the request gets an error reply and no signature, the leader steps down
// (whether a fence applied is unknown), and later requests, Revoke and
// Leading are answered.
func TestPanicUnderSigningMutexFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     bool
		applied bool
	}{
		{"key panics", true, false},
		{"fencer panics before its transaction", false, false},
		{"fencer panics after its transaction applied", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			reg := prometheus.NewRegistry()
			a := newNode(t, cl, "a", func(c *Config) {
				c.Metrics = NewMetrics(reg)
				if tc.key {
					c.Key = panicKey{testKey}
				}
			})
			_, f := cl.lock(t)
			pf := &panicFencer{f: f, applied: tc.applied}
			if err := a.s.Grant(context.Background(), pf); err != nil {
				t.Fatal(err)
			}
			r, ok := within(10*time.Second, func() reply { return handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)) })
			if !ok {
				a.s.mu.Unlock()
				t.Fatal("the request that panicked got no reply")
			}
			mutexFree(t, a)
			if r.kind != "refused" || !strings.Contains(r.err, "panic") {
				t.Fatalf("got %s (%s), want an error reply naming the panic", r.kind, r.err)
			}
			if a.s.Leading() {
				t.Fatal("still leading after a panic under the signing mutex")
			}
			select {
			case <-a.s.Revoked():
			default:
				t.Fatal("not demoted: the lease is kept after a panic under the signing mutex")
			}
			if evs := a.logs.events("panic under the signing mutex; a leader steps down"); len(evs) != 1 || evs[0]["stack"] == "" {
				t.Fatalf("%d panic events (%v), want 1 with its stack", len(evs), evs)
			}
			if got := testutil.ToFloat64(a.cfg.Metrics.panics); got != 1 {
				t.Fatalf("valguard_signer_panics_total %v, want 1", got)
			}
			// A standby now: the next request is answered (parked: the
			// standby waits for a leader), and Revoke returns.
			if r, ok := within(10*time.Second, func() reply { return handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)) }); !ok || r.kind == "signed" {
				t.Fatalf("next request: %s (answered: %v)", r.kind, ok)
			}
			if _, ok := within(10*time.Second, func() bool { a.s.Revoke(); return true }); !ok {
				t.Fatal("Revoke hangs")
			}
			if got := cl.stored(t); tc.applied != (got.Height == 4) {
				t.Fatalf("consul holds %s (fence applied: %v)", got, tc.applied)
			}
		})
	}
}

// flakyStore fails the next failReads reads, as a Consul that does not
// answer for a moment; Watch passes through.
type flakyStore struct {
	Store
	failReads atomic.Int32
	reads     atomic.Int32
}

func (f *flakyStore) Read(ctx context.Context) ([]byte, uint64, error) {
	f.reads.Add(1)
	if f.failReads.Add(-1) >= 0 {
		return nil, 0, errors.New("consul did not answer the read (test)")
	}
	return f.Store.Read(ctx)
}

// leadWithLateFence makes a lead with ff (unknown outcomes until told),
// has a prevote at 4 parked with its fence unresolved, then lands that
// first transaction in Consul, as Raft applying it late does. It returns
// the landed watermark.
func leadWithLateFence(t *testing.T, cl *cluster, a *node, ff *flakyFencer, f Fencer) Watermark {
	t.Helper()
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
	ff.mu.Unlock()
	if _, err := f.Fence(context.Background(), first, index0); err != nil { // the first transaction lands
		t.Fatal(err)
	}
	return cl.stored(t)
}

// The leader's own late fence makes its next fence fail with ErrMoved,
// and the read that settles it is not answered at first (Consul slow for
// a moment): the leader reads again, finds its own value, adopts it and
// re-serves it, instead of stepping down.
func TestOwnLateFenceWithFailedReadIsReadAgain(t *testing.T) {
	cl := newCluster(t)
	fs := &flakyStore{Store: cl.store()}
	a := newNode(t, cl, "a", func(c *Config) { c.Store = fs })
	_, f := cl.lock(t)
	ff := &flakyFencer{f: f, lost: 1 << 30}
	landed := leadWithLateFence(t, cl, a, ff, f)
	ff.mu.Lock()
	ff.lost = 0
	ff.mu.Unlock()
	fs.failReads.Store(2)
	reads := fs.reads.Load()
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0.Add(time.Second)))
	v := mustSign(t, r)
	stillLeading(t, a)
	if !bytes.Equal(v.Signature, landed.Signature) || !v.Timestamp.Equal(t0) {
		t.Fatalf("got the signature for %v, want the landed one with the first timestamp %v", v.Timestamp, t0)
	}
	if n := fs.reads.Load() - reads; n != 3 {
		t.Fatalf("%d reads, want 3 (two unanswered, then the one that settled it)", n)
	}
	if r.took >= NodeReadTimeout {
		t.Fatalf("answered after %s, beyond the node's read timeout", r.took)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
}

// The leader's own late fence plus an unknown outcome of its next fence:
// the read finds the watermark at another index, holding a value this
// leader sent itself with an unknown outcome. That is its own fence, not
// another leader's: adopted and re-served, no step-down. (Another
// leader's value there still demotes:
// TestUnknownFenceAfterAnotherLeaderFenced.)
func TestOwnLateFenceAfterUnknownOutcomeIsAdopted(t *testing.T) {
	cl := newCluster(t)
	a := newNode(t, cl, "a")
	_, f := cl.lock(t)
	ff := &flakyFencer{f: f, lost: 1 << 30}
	landed := leadWithLateFence(t, cl, a, ff, f)
	// Still no answer from the fencer: the next fence is unknown too.
	r := handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0.Add(time.Second)))
	v := mustSign(t, r)
	stillLeading(t, a)
	if !bytes.Equal(v.Signature, landed.Signature) || !v.Timestamp.Equal(t0) {
		t.Fatalf("got the signature for %v, want the landed one with the first timestamp %v", v.Timestamp, t0)
	}
	if evs := a.logs.events("an own earlier fence applied late: adopted, the request is decided again"); len(evs) != 1 {
		t.Fatalf("%d adoption events, want 1", len(evs))
	}
	ff.mu.Lock()
	ff.lost = 0
	ff.mu.Unlock()
	mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
}

// The watermark key deleted in Consul while a replica leads (by hand, or
// Consul lost it): the leader's next fence finds it absent — at once
// (ErrMoved) or after an unknown outcome — and never takes that as
// "nothing signed": it writes back the watermark it holds in memory
// (create-only, under the lock), logs it at error level, counts it, and
// fences on. The validator keeps signing; the standby follows.
func TestLeaderWritesBackDeletedWatermark(t *testing.T) {
	for _, tc := range []struct {
		name string
		lost int // fences answered "unknown" (not applied) after the deletion
	}{
		{"fence refused: the key moved", 0},
		{"fence outcome unknown", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t)
			reg := prometheus.NewRegistry()
			a := newNode(t, cl, "a", func(c *Config) { c.Metrics = NewMetrics(reg) })
			b := newNode(t, cl, "b")
			_, f := cl.lock(t)
			ff := &flakyFencer{f: f}
			if err := a.s.Grant(context.Background(), ff); err != nil {
				t.Fatal(err)
			}
			mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)))
			if _, err := cl.c.KV().Delete(cl.wmKey, nil); err != nil {
				t.Fatal(err)
			}
			ff.mu.Lock()
			ff.lost, ff.calls = tc.lost, 0
			ff.mu.Unlock()
			v := mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
			stillLeading(t, a)
			if got := cl.stored(t); got.Height != 4 || got.Step != StepPrecommit || !bytes.Equal(got.Signature, v.Signature) {
				t.Fatalf("consul holds %s, want the returned precommit at 4", got)
			}
			evs := a.logs.events("watermark key absent in consul while leading: wrote back the watermark held in memory")
			if len(evs) != 1 || evs[0]["level"] != "error" || evs[0]["watermark"] != "4/0/2" {
				t.Fatalf("write-back events %v, want one at error level naming 4/0/2", evs)
			}
			if got := testutil.ToFloat64(a.cfg.Metrics.writtenBack); got != 1 {
				t.Fatalf("valguard_signer_watermark_written_back_total %v, want 1", got)
			}
			// The standby re-serves the leader's precommit, and both the
			// prevote and the precommit stay refused below it.
			b.waitWatermark(t, Watermark{Height: 4, Step: StepPrecommit})
			if got := mustSign(t, handleVote(b, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0))); !bytes.Equal(got.Signature, v.Signature) {
				t.Fatal("the standby re-served another signature")
			}
			if r := handleVote(b, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)); r.kind != "refused" {
				t.Fatalf("the standby answered the prevote below the watermark with %s", r.kind)
			}
			mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 5, 0, &blockA, t0)))
		})
	}
}

// A floor file write that hangs after a fence (a state directory whose
// fsync never returns) is given up on after FloorTimeout: the request is
// refused — the signature never leaves without its floor — and the leader
// steps down, well before the node's read timeout; the signing mutex stays
// free (Revoke returns), and Grant fails at once while the write hangs.
// Once the disk answers, the floor is raised and the replica leads again.
func TestFloorWriteHangRefusesAndStepsDown(t *testing.T) {
	cl := newCluster(t)
	reg := prometheus.NewRegistry()
	var hanging atomic.Bool
	disk := make(chan struct{}) // closed: the disk answers again
	var once sync.Once
	answer := func() { once.Do(func() { close(disk) }) }
	t.Cleanup(answer)
	a := newNode(t, cl, "a", func(c *Config) {
		c.Metrics = NewMetrics(reg)
		c.FloorTimeout = 300 * time.Millisecond
		c.writeFile = func(path string, data []byte, perm os.FileMode) error {
			if hanging.Load() {
				<-disk
			}
			return atomicfile.Write(path, data, perm)
		}
	})
	_, f := cl.lock(t)
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrevoteType, 3, 0, &blockA, t0)))
	floor3 := a.s.Floor()

	hanging.Store(true)
	r, ok := within(10*time.Second, func() reply { return handleVote(a, vote(cmtproto.PrevoteType, 4, 0, &blockA, t0)) })
	if !ok {
		answer()
		t.Fatal("no reply 10s after the request: the reply waits for a hung floor file write")
	}
	if r.kind != "refused" || !strings.Contains(r.err, "floor file") {
		t.Fatalf("got %s (%s), want a refusal naming the floor file", r.kind, r.err)
	}
	if r.took >= NodeReadTimeout {
		t.Fatalf("refused after %s, beyond the node's read timeout", r.took)
	}
	select {
	case <-a.s.Revoked():
	default:
		t.Fatal("not demoted: the leader keeps the lock while it cannot persist its floor")
	}
	if _, ok := within(10*time.Second, func() bool { a.s.Revoke(); return a.s.Leading() }); !ok {
		answer()
		t.Fatal("Revoke hangs behind the floor file write")
	}
	if got := a.s.Floor(); Compare(got, floor3) != 0 {
		t.Fatalf("floor %s, want %s: the floor in memory is only what the file holds", got, floor3)
	}
	if got := cl.stored(t); got.Height != 4 || got.Step != StepPrevote {
		t.Fatalf("consul holds %s, want the fenced prevote at 4", got)
	}
	if evs := a.logs.events("floor file not written after a fence: request refused, leader steps down"); len(evs) != 1 {
		t.Fatalf("%d floor failure events, want 1", len(evs))
	}
	if got := testutil.ToFloat64(a.cfg.Metrics.floorFailures.WithLabelValues("timeout")); got < 1 {
		t.Fatalf("valguard_signer_floor_failures_total{reason=timeout} %v, want at least 1", got)
	}
	// While the write hangs, Grant cannot persist the watermark it would
	// lead from: it fails, within its bound.
	err, ok := within(10*time.Second, func() error { return a.s.Grant(context.Background(), f) })
	if !ok {
		answer()
		t.Fatal("Grant hangs behind the floor file write")
	}
	if !errors.Is(err, ErrFloorTimeout) {
		t.Fatalf("Grant while the floor file write hangs: %v, want ErrFloorTimeout", err)
	}
	// The disk answers: the write that hung ends and raises the floor;
	// the replica leads again and re-serves nothing it did not fence.
	hanging.Store(false)
	answer()
	deadline := time.Now().Add(10 * time.Second)
	for Compare(a.s.Floor(), Watermark{Height: 4, Step: StepPrevote}) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("floor %s after the disk answered, want 4/0/2", a.s.Floor())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.s.Grant(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	mustSign(t, handleVote(a, vote(cmtproto.PrecommitType, 4, 0, &blockA, t0)))
}

// A floor timeout that, with the fence timeout, leaves a signed reply no
// time before the node's read timeout is refused at start, naming both.
func TestNewRefusesFloorTimeoutBeyondReplyBudget(t *testing.T) {
	base := Config{Key: testKey, ChainID: testChain, Store: consulStore{}, FloorFile: t.TempDir() + "/floor.json"}
	cfg := base
	cfg.ParkHold, cfg.FenceTimeout, cfg.FloorTimeout = 4*time.Second, 3*time.Second, 2*time.Second
	_, err := New(cfg)
	if !errors.Is(err, ErrUnsafeTiming) || !strings.Contains(err.Error(), "floor file timeout 2s") || !strings.Contains(err.Error(), "fence timeout 3s") {
		t.Fatalf("New: %v, want ErrUnsafeTiming naming both timeouts", err)
	}
	cfg.FloorTimeout = -time.Second
	if _, err := New(cfg); err == nil {
		t.Fatal("a negative floor timeout accepted")
	}
	cfg.FloorTimeout = 0 // the default fits with the default fence timeout
	cfg.FenceTimeout = 0
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
}
