package election_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/faultproxy"
)

// fenced is the signer mode with its default lock-delay.
func fenced(c *election.Config) { c.Fenced, c.LockDelay = true, 0 }

// fencedAcquire bounds a Fenced Acquire: no unclean-takeover wait.
const fencedAcquire = 3 * time.Second

// fence runs s.Fence with a 5 s bound.
func fence(s *election.Session, value string, index uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Fence(ctx, []byte(value), index)
}

// mustFence fences value at index and checks the stored key against the
// returned index.
func mustFence(t *testing.T, admin *api.Client, r *replica, s *election.Session, value string, index uint64) uint64 {
	t.Helper()
	next, err := fence(s, value, index)
	if err != nil {
		t.Fatalf("Fence(%q, %d): %v", value, index, err)
	}
	if p := watermarkPair(t, admin, r.e); p == nil || string(p.Value) != value || p.ModifyIndex != next {
		t.Fatalf("after Fence(%q, %d) = %d: watermark key %+v", value, index, next, p)
	}
	return next
}

// wantStored fails unless the watermark key holds value at index.
func wantStored(t *testing.T, admin *api.Client, r *replica, value string, index uint64, what string) {
	t.Helper()
	if p := watermarkPair(t, admin, r.e); p == nil || string(p.Value) != value || p.ModifyIndex != index {
		t.Errorf("%s: watermark key %+v, want %q at index %d", what, p, value, index)
	}
}

func TestFencedLockDelayDefault(t *testing.T) {
	t.Parallel()
	client, err := api.NewClient(&api.Config{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		fenced bool
		set    time.Duration
		want   time.Duration
	}{
		{"fenced default", true, 0, election.FencedLockDelay},
		{"fenced explicit", true, 3 * time.Second, 3 * time.Second},
		{"restart default", false, 0, election.DefaultTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := election.New(election.Config{Client: client, ValidatorID: "v", ReplicaID: "r", Fenced: tc.fenced, LockDelay: tc.set})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Config().LockDelay; got != tc.want {
				t.Errorf("LockDelay = %s, want %s", got, tc.want)
			}
		})
	}
}

// The 1 ms lock-delay reaches Consul and stays 1 ms (the api drops a zero,
// which would give the server's 15 s).
func TestFencedSessionLockDelayInConsul(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	s := r.session(t)
	entry, _, err := agent.Client(t).Session().Info(s.ID(), &api.QueryOptions{RequireConsistent: true})
	if err != nil || entry == nil {
		t.Fatalf("session info: %+v, %v", entry, err)
	}
	if entry.LockDelay != time.Millisecond {
		t.Errorf("session LockDelay in consul = %s, want 1ms", entry.LockDelay)
	}
}

func TestFenceOnlyWhileHoldingLock(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	s := r.session(t)

	if _, err := fence(s, "early", 0); !errors.Is(err, election.ErrLockTaken) {
		t.Fatalf("Fence before Acquire = %v, want ErrLockTaken", err)
	}
	if s.Err() != nil {
		t.Fatalf("a fence refused before Acquire ended the session: %v", s.Err())
	}
	if p := watermarkPair(t, admin, r.e); p != nil {
		t.Fatalf("Fence before Acquire wrote %+v", p)
	}
	start := time.Now()
	mustAcquire(t, s, fencedAcquire) // a new key: restart mode would wait a TTL
	t.Logf("first Fenced Acquire of an absent key took %s", time.Since(start).Round(time.Millisecond))
	if r.unclean.Load() != 0 {
		t.Errorf("OnUncleanTakeover called %d times in a Fenced election", r.unclean.Load())
	}

	i1 := mustFence(t, admin, r, s, "v1", 0)
	i2 := mustFence(t, admin, r, s, "v2", i1)
	if i2 <= i1 {
		t.Errorf("second fence index %d not above the first %d", i2, i1)
	}
	if v, i, err := r.e.ReadWatermark(context.Background()); err != nil || string(v) != "v2" || i != i2 {
		t.Errorf("ReadWatermark = %q, %d, %v; want v2, %d", v, i, err, i2)
	}
	for _, at := range []uint64{0, i1} {
		if _, err := fence(s, "stale", at); !errors.Is(err, election.ErrWatermarkMoved) {
			t.Errorf("Fence at the stale index %d = %v, want ErrWatermarkMoved", at, err)
		}
	}
	wantStored(t, admin, r, "v2", i2, "after stale fences")
	if !s.Leader() {
		t.Errorf("a moved watermark ended the lease: %v", s.Err())
	}
}

// Another write to the watermark key between two fences: the CAS fails,
// nothing is written, the lease stays; a fence at the new index works.
func TestFenceAfterWatermarkDrift(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	s := r.session(t)
	mustAcquire(t, s, fencedAcquire)
	i1 := mustFence(t, admin, r, s, "v1", 0)
	if _, err := admin.KV().Put(&api.KVPair{Key: r.e.WatermarkKey(), Value: []byte("other")}, nil); err != nil {
		t.Fatal(err)
	}
	drift := watermarkPair(t, admin, r.e).ModifyIndex
	if _, err := fence(s, "v2", i1); !errors.Is(err, election.ErrWatermarkMoved) || errors.Is(err, election.ErrLockTaken) {
		t.Fatalf("Fence after drift = %v, want ErrWatermarkMoved only", err)
	}
	wantStored(t, admin, r, "other", drift, "after the drifted fence")
	if s.Err() != nil {
		t.Fatalf("drift ended the session: %v", s.Err())
	}
	_, i, err := r.e.ReadWatermark(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mustFence(t, admin, r, s, "v2", i)
}

// A session destroyed from outside: its next fence fails and writes
// nothing, and Done closes.
func TestFenceFailsAfterDestroy(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	s := r.session(t)
	mustAcquire(t, s, fencedAcquire)
	i1 := mustFence(t, admin, r, s, "v1", 0)
	if _, err := admin.Session().Destroy(s.ID(), nil); err != nil {
		t.Fatal(err)
	}
	_, err := fence(s, "v2", i1)
	if !errors.Is(err, election.ErrLockTaken) && !errors.Is(err, election.ErrSessionInvalidated) {
		t.Fatalf("Fence after destroy = %v, want ErrLockTaken or ErrSessionInvalidated", err)
	}
	wantStored(t, admin, r, "v1", i1, "after the destroyed session's fence")
	waitDone(t, s, 100*time.Millisecond, "after a fence refused for the lock")
	t.Logf("fence after destroy: %v; Err %v", err, s.Err())
}

// lyingTransport, once lying, answers the session's renews with success
// without sending them, and its reads of the lock key with "held by the
// session": the local lease never ends while Consul expires the session.
type lyingTransport struct {
	next             http.RoundTripper
	session, lockKey string
	lying            atomic.Bool
	txnStatus        atomic.Int32 // status of the last /v1/txn answer
}

func (l *lyingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	answer := func(body string, h http.Header) *http.Response {
		return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}
	}
	if l.lying.Load() && req.URL.Path == "/v1/session/renew/"+l.session {
		return answer(`[{"ID":"`+l.session+`","TTL":"10s","Behavior":"release"}]`, http.Header{}), nil
	}
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if req.URL.Path == "/v1/txn" {
		l.txnStatus.Store(int32(resp.StatusCode))
	}
	if l.lying.Load() && req.Method == http.MethodGet && req.URL.Path == "/v1/kv/"+l.lockKey {
		_ = resp.Body.Close()
		held, _ := json.Marshal([]api.KVPair{{Key: l.lockKey, Session: l.session, CreateIndex: 1, ModifyIndex: 1, LockIndex: 1}})
		return answer(string(held), resp.Header), nil
	}
	return resp, nil
}

// A leader whose renews and lock checks are faked (a lying network, or a
// process that believes it still leads): Consul expires its session
// (up to 2×TTL), its Done stays open, and its fence still fails at Consul.
func TestFenceFailsAfterExpiry(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	lie := &lyingTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	client, err := api.NewClient(&api.Config{Address: agent.Addr, Scheme: "http", HttpClient: &http.Client{Transport: lie}})
	if err != nil {
		t.Fatal(err)
	}
	r := newReplica(t, client, validatorID(t), "a", fenced)
	s := r.session(t)
	lie.session, lie.lockKey = s.ID(), r.e.LockKey()
	mustAcquire(t, s, fencedAcquire)
	i1 := mustFence(t, admin, r, s, "v1", 0)

	lie.lying.Store(true)
	defer lie.lying.Store(false)
	from := time.Now()
	for {
		entry, _, err := admin.Session().Info(s.ID(), &api.QueryOptions{RequireConsistent: true})
		if err != nil {
			t.Fatal(err)
		}
		if entry == nil {
			break
		}
		if time.Since(from) > 2*ttl+5*time.Second {
			t.Fatalf("consul did not expire the unrenewed session within 2×TTL + 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("consul expired the session %s after renews stopped reaching it", time.Since(from).Round(time.Millisecond))
	if s.Err() != nil {
		t.Fatalf("precondition: the fooled session ended locally (%v); the fence would not reach consul", s.Err())
	}
	if _, err := fence(s, "v2", i1); !errors.Is(err, election.ErrLockTaken) {
		t.Fatalf("Fence of an expired session = %v, want ErrLockTaken", err)
	}
	if got := lie.txnStatus.Load(); got != http.StatusConflict {
		t.Errorf("the fence's transaction was answered %d, want 409 (rolled back by consul)", got)
	}
	wantStored(t, admin, r, "v1", i1, "after the expired session's fence")
	if !errors.Is(s.Err(), election.ErrLockTaken) {
		t.Errorf("after the refused fence: Err = %v, want ErrLockTaken", s.Err())
	}
}

// A fence with no answer: ErrFenceUnknown within the caller's timeout,
// nothing written (the blackhole drops the request), the lock kept.
func TestBlackholedFenceIsUnknown(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	proxy := faultproxy.New(t, agent.Addr)
	r := newReplica(t, consultest.NewClient(t, proxy.Addr()), validatorID(t), "a", fenced)
	s := r.session(t)
	mustAcquire(t, s, fencedAcquire)
	i1 := mustFence(t, admin, r, s, "v1", 0)

	proxy.Blackhole()
	defer proxy.Pass()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Fence(ctx, []byte("v2"), i1)
	took := time.Since(start)
	if !errors.Is(err, election.ErrFenceUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blackholed Fence = %v, want ErrFenceUnknown wrapping context.DeadlineExceeded", err)
	}
	if took > 2*time.Second {
		t.Errorf("blackholed Fence took %s, want about the 1s timeout", took)
	}
	t.Logf("blackholed fence returned after %s: %v", took.Round(time.Millisecond), err)
	wantStored(t, admin, r, "v1", i1, "after the blackholed fence")
	if pair, _ := lockPair(t, admin, r.e); pair == nil || pair.Session != s.ID() {
		t.Errorf("lock key after the blackholed fence: %+v, want still held by %s", pair, s.ID())
	}
	if s.Err() != nil {
		t.Errorf("the blackholed fence ended the session: %v", s.Err())
	}
}

// Deposition: a standby destroys the holder's session and, with the 1 ms
// lock-delay and no unclean-takeover wait, leads at once; the deposed
// leader's fence fails.
func TestDestroyStaleHolderHandsOverWithFencedLockDelay(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a", fenced), newReplica(t, agent.Client(t), v, "b", fenced)
	sa, sb := ra.session(t), rb.session(t)
	if ok, err := rb.e.DestroyStaleHolder(context.Background(), sa.ID()); err != nil || ok {
		t.Fatalf("DestroyStaleHolder of an absent lock = %v, %v; want false, nil", ok, err)
	}
	mustAcquire(t, sa, fencedAcquire)
	i1 := mustFence(t, admin, ra, sa, "v1", 0)
	if ok, err := ra.e.DestroyStaleHolder(context.Background(), sb.ID()); err != nil || ok || sa.Err() != nil {
		t.Fatalf("DestroyStaleHolder of a session that does not hold the lock = %v, %v (holder's Err %v); want nothing destroyed", ok, err, sa.Err())
	}
	chb := acquireAsync(context.Background(), sb)
	time.Sleep(200 * time.Millisecond) // b is in its blocking query

	start := time.Now()
	ok, err := rb.e.DestroyStaleHolder(context.Background(), sa.ID())
	if err != nil || !ok {
		t.Fatalf("DestroyStaleHolder(a's session %s) = %v, %v; want destroyed", sa.ID(), ok, err)
	}
	res := waitResult(t, chb, fencedAcquire, "standby after deposition")
	if res.err != nil {
		t.Fatalf("standby Acquire: %v", res.err)
	}
	t.Logf("deposition: destroy → standby leads in %s", res.at.Sub(start).Round(time.Millisecond))
	if _, err := fence(sa, "v2-a", i1); !errors.Is(err, election.ErrLockTaken) && !errors.Is(err, election.ErrSessionInvalidated) {
		t.Errorf("deposed leader's Fence = %v, want ErrLockTaken or ErrSessionInvalidated", err)
	}
	wantStored(t, admin, ra, "v1", i1, "after the deposed leader's fence")
	v1, i, err := rb.e.ReadWatermark(context.Background())
	if err != nil || string(v1) != "v1" || i != i1 {
		t.Fatalf("new leader's ReadWatermark = %q, %d, %v; want v1, %d", v1, i, err, i1)
	}
	mustFence(t, admin, rb, sb, "v2-b", i)
}

// A take refused inside a Fenced lock-delay is retried after lock-delay +
// 5 ms, not after 500 ms.
func TestFencedTakeRetriesAfterLockDelay(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	const delay = 100 * time.Millisecond
	withDelay := func(c *election.Config) { c.Fenced, c.LockDelay = true, delay }
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a", withDelay), newReplica(t, agent.Client(t), v, "b", withDelay)
	sa, sb := ra.session(t), rb.session(t)
	mustAcquire(t, sa, fencedAcquire)
	chb := acquireAsync(context.Background(), sb)
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	if _, err := agent.Client(t).Session().Destroy(sa.ID(), nil); err != nil {
		t.Fatal(err)
	}
	res := waitResult(t, chb, fencedAcquire, "standby after the destroy")
	if res.err != nil {
		t.Fatalf("standby Acquire: %v", res.err)
	}
	took := res.at.Sub(start)
	t.Logf("destroy → standby leads in %s (lock-delay %s)", took.Round(time.Millisecond), delay)
	if took < delay {
		t.Errorf("standby led %s after the destroy, inside the %s lock-delay", took, delay)
	}
	if took > 400*time.Millisecond {
		t.Errorf("standby led %s after the destroy, want about lock-delay + 5ms (a 500ms retry would be later)", took)
	}
}

// A deleted lock key under a Fenced leader: another Fenced replica leads
// with no unclean-takeover wait, and the old leader's next fence fails.
func TestFencedTakeoverSkipsUncleanWait(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	v := validatorID(t)
	allFenced := func(c *election.Config) { c.WrittenFenced = func([]byte) bool { return true } } // "v1" is a Fenced replica's
	ra, rb := newReplica(t, agent.Client(t), v, "a", fenced), newReplica(t, agent.Client(t), v, "b", fenced, allFenced)
	sa, sb := ra.session(t), rb.session(t)
	mustAcquire(t, sa, fencedAcquire)
	i1 := mustFence(t, admin, ra, sa, "v1", 0)
	chb := acquireAsync(context.Background(), sb)
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	if _, err := admin.KV().Delete(ra.e.LockKey(), nil); err != nil {
		t.Fatal(err)
	}
	res := waitResult(t, chb, fencedAcquire, "standby after the delete")
	if res.err != nil {
		t.Fatalf("standby Acquire: %v", res.err)
	}
	t.Logf("lock key deleted → standby leads in %s (restart mode waits %s)", res.at.Sub(start).Round(time.Millisecond), uncleanWait)
	if n := rb.unclean.Load(); n != 0 {
		t.Errorf("OnUncleanTakeover called %d times in a Fenced election", n)
	}
	if _, err := fence(sa, "v2-a", i1); !errors.Is(err, election.ErrLockTaken) {
		t.Errorf("old leader's Fence after the delete = %v, want ErrLockTaken", err)
	}
	wantStored(t, admin, ra, "v1", i1, "after the old leader's fence")
	mustFence(t, admin, rb, sb, "v2-b", i1)
}

func TestReadWatermark(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	ctx := context.Background()
	if v, i, err := r.e.ReadWatermark(ctx); v != nil || i != 0 || err != nil {
		t.Fatalf("ReadWatermark of an absent key = %q, %d, %v; want nil, 0, nil", v, i, err)
	}
	if _, err := admin.KV().Put(&api.KVPair{Key: r.e.WatermarkKey()}, nil); err != nil {
		t.Fatal(err)
	}
	p := watermarkPair(t, admin, r.e)
	if v, i, err := r.e.ReadWatermark(ctx); v == nil || len(v) != 0 || i != p.ModifyIndex || err != nil {
		t.Errorf("ReadWatermark of an empty key = %q (nil %v), %d, %v; want empty, %d", v, v == nil, i, err, p.ModifyIndex)
	}
}

func TestWatchWatermark(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	s := r.session(t)
	mustAcquire(t, s, fencedAcquire)
	ctx := context.Background()
	v, i0, err := r.e.WatchWatermark(ctx, 0)
	if err != nil || v != nil || i0 == 0 {
		t.Fatalf("WatchWatermark(0) of an absent key = %q, %d, %v; want nil, an index, nil", v, i0, err)
	}

	type watched struct {
		v     []byte
		index uint64
		err   error
		at    time.Time
	}
	watch := func(index uint64) <-chan watched {
		ch := make(chan watched, 1)
		go func() {
			v, i, err := r.e.WatchWatermark(ctx, index)
			ch <- watched{v, i, err, time.Now()}
		}()
		return ch
	}
	ch := watch(i0)
	time.Sleep(300 * time.Millisecond)
	select {
	case w := <-ch:
		t.Fatalf("watch returned before any change: %+v", w)
	default:
	}
	fencedAt := time.Now()
	i1 := mustFence(t, admin, r, s, "v1", 0)
	var w watched
	select {
	case w = <-ch:
	case <-time.After(2 * time.Second):
		t.Fatal("watch did not wake within 2s of the fence")
	}
	if w.err != nil || string(w.v) != "v1" || w.index != i1 {
		t.Fatalf("watch after the fence = %q, %d, %v; want v1, %d", w.v, w.index, w.err, i1)
	}
	t.Logf("watch woke %s after the fence was sent", w.at.Sub(fencedAt).Round(time.Microsecond))

	// No change of the key (a write to another key meanwhile): the watch
	// returns after its wait with the same value and index.
	start := time.Now()
	ch = watch(i1)
	time.Sleep(500 * time.Millisecond)
	if _, err := admin.KV().Put(&api.KVPair{Key: "valguard/" + validatorID(t) + "/other", Value: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	wait := ttl // min(TTL, 1m)
	select {
	case w = <-ch:
	case <-time.After(wait + wait/16 + 3*time.Second):
		t.Fatal("watch did not return after its wait")
	}
	took := w.at.Sub(start)
	if w.err != nil || string(w.v) != "v1" || w.index != i1 {
		t.Errorf("watch with no change = %q, %d, %v; want v1, %d", w.v, w.index, w.err, i1)
	}
	if took < wait-time.Second {
		t.Errorf("watch with no change returned after %s, before its %s wait", took, wait)
	}
	t.Logf("watch with no change returned after %s", took.Round(time.Millisecond))
}

// Fence latency on the dev agent (logged, not asserted).
func TestFenceLatency(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	measureFences(t, agent.Client(t), "a -dev agent")
}

// TestFenceLatencyCluster measures the fence on a 3-server cluster, as
// production runs it (Raft commits to a quorum, log fsynced), through a
// follower, as a replica whose local agent is not the Raft leader does.
func TestFenceLatencyCluster(t *testing.T) {
	t.Parallel()
	c := consultest.StartCluster(t, 3)
	leader, err := c.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	measureFences(t, consultest.NewClient(t, c.Servers[(leader+1)%3].Addr), "3 servers, through a follower")
}

func measureFences(t *testing.T, client *api.Client, what string) {
	r := newReplica(t, client, validatorID(t), "a", fenced)
	s := r.session(t)
	mustAcquire(t, s, fencedAcquire)
	value := bytes.Repeat([]byte("x"), 300)
	var index uint64
	var took []time.Duration
	for range 500 {
		start := time.Now()
		next, err := s.Fence(context.Background(), value, index)
		d := time.Since(start)
		if err != nil {
			t.Fatalf("fence %d: %v", len(took), err)
		}
		index, took = next, append(took, d)
	}
	slices.Sort(took)
	t.Logf("%s: 500 fences of 300 bytes: p50 %s, p99 %s, max %s", what,
		took[len(took)/2].Round(time.Microsecond), took[len(took)*99/100].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))
}

// A snapshot restore takes Consul's index for the key backwards. Measured:
// a watch in flight returns at once with the state before the restore;
// the next watch at that index is held for its whole wait, then returns
// the restored value at the lower index, as it is; ReadWatermark gives the
// same index to fence at.
func TestWatchWatermarkIndexBackwards(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", fenced)
	s := r.session(t)
	mustAcquire(t, s, fencedAcquire)
	i1 := mustFence(t, admin, r, s, "v1", 0)
	snap, _, err := admin.Snapshot().Save(nil)
	if err != nil {
		t.Fatalf("snapshot save: %v", err)
	}
	saved, err := io.ReadAll(snap)
	_ = snap.Close()
	if err != nil {
		t.Fatal(err)
	}
	i2 := mustFence(t, admin, r, s, "v2", i1)
	if err := admin.Snapshot().Restore(nil, bytes.NewReader(saved)); err != nil {
		t.Fatalf("snapshot restore: %v", err)
	}
	restored := time.Now()
	// Watch as a follower does: on the returned index, until it moves.
	index := i2
	for index == i2 {
		if time.Since(restored) > 2*(ttl+ttl/16)+5*time.Second {
			t.Fatalf("no watch showed the index going back from %d within two waits of the restore", i2)
		}
		v, next, err := r.e.WatchWatermark(context.Background(), index)
		if err != nil {
			t.Fatalf("watch after the restore: %v", err)
		}
		t.Logf("watch at %d, %s after the restore: %q at %d", index, time.Since(restored).Round(time.Millisecond), v, next)
		if next != i2 && (next >= i2 || string(v) != "v1") {
			t.Fatalf("watch after the restore = %q at %d; want v1 at an index below %d", v, next, i2)
		}
		index = next
	}
	rv, ri, err := r.e.ReadWatermark(context.Background())
	if err != nil || string(rv) != "v1" || ri != index {
		t.Errorf("ReadWatermark after the restore = %q, %d, %v; want v1, %d", rv, ri, err, index)
	}
	if _, err := fence(s, "v3", i2); !errors.Is(err, election.ErrWatermarkMoved) {
		t.Errorf("Fence at the index before the restore = %v, want ErrWatermarkMoved", err)
	}
}

// A Fenced replica that takes the lock from a restart-mode holder (a
// rolling migration between the modes) still waits: that holder's node may
// run on with its key file, which no fence stops.
func TestFencedTakeoverFromRestartModeHolderWaits(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	v := validatorID(t)
	ra := newReplica(t, agent.Client(t), v, "a", func(c *election.Config) { c.LockDelay = time.Millisecond })
	rb := newReplica(t, agent.Client(t), v, "b", fenced)
	sa, sb := ra.session(t), rb.session(t)
	mustAcquire(t, sa, 30*time.Second)
	chb := acquireAsync(context.Background(), sb)
	time.Sleep(200 * time.Millisecond)
	if _, err := admin.Session().Destroy(sa.ID(), nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := waitResult(t, chb, 30*time.Second, "fenced standby after a restart-mode holder")
	if res.err != nil {
		t.Fatalf("standby Acquire: %v", res.err)
	}
	took := res.at.Sub(start)
	t.Logf("restart-mode holder's session destroyed → Fenced standby leads after %s", took.Round(time.Millisecond))
	if n := rb.unclean.Load(); n != 1 {
		t.Fatalf("OnUncleanTakeover called %d times, want 1: a restart-mode holder must be waited for", n)
	}
	if took < 5*time.Second {
		t.Fatalf("Fenced standby led %s after a restart-mode holder lost its session: no unclean-takeover wait", took)
	}
}
