package election_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
)

// Integration timing: Consul's minimum TTL, lock-delay = TTL.
const (
	ttl       = 10 * time.Second
	lockDelay = 10 * time.Second
	// uncleanWait is what Acquire waits after a take without a fresh
	// clean-release marker, such as the first take of a new key.
	uncleanWait = ttl
	// firstAcquire bounds an Acquire of a key nobody released cleanly.
	firstAcquire = uncleanWait + 5*time.Second
)

// validatorID is unique per test, so tests may share an agent.
func validatorID(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// replica is one replica's view of the election under test.
type replica struct {
	e       *election.Election
	renews  atomic.Int32
	cErrors atomic.Int32
	unclean atomic.Int32 // OnUncleanTakeover calls

	mu         sync.Mutex
	uncleanAt  time.Time // when OnUncleanTakeover was last called (test clock)
	uncleanWhy string
}

// lastUnclean is when and why OnUncleanTakeover was last called.
func (r *replica) lastUnclean() (time.Time, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uncleanAt, r.uncleanWhy
}

// newReplica builds a replica's Election; edits adjust its Config.
func newReplica(t *testing.T, client *api.Client, validator, id string, edits ...func(*election.Config)) *replica {
	t.Helper()
	r := &replica{}
	cfg := election.Config{
		Client: client, ValidatorID: validator, ReplicaID: id, Hostname: "host-" + id,
		TTL: ttl, LockDelay: lockDelay,
		OnRenew:       func() { r.renews.Add(1) },
		OnConsulError: func(error) { r.cErrors.Add(1) },
		OnUncleanTakeover: func(reason string, wait time.Duration) {
			r.unclean.Add(1)
			r.mu.Lock()
			r.uncleanAt, r.uncleanWhy = time.Now(), reason
			r.mu.Unlock()
		},
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	e, err := election.New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	r.e = e
	return r
}

// session creates a session and closes it at the end of the test.
func (r *replica) session(t *testing.T) *election.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := r.e.NewSession(ctx)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx, nil); err != nil {
			t.Logf("cleanup: close session %s: %v", s.ID(), err)
		}
	})
	return s
}

// acquireResult is what an Acquire running in the background returned.
type acquireResult struct {
	err error
	at  time.Time
}

// acquireAsync runs s.Acquire(ctx) in the background.
func acquireAsync(ctx context.Context, s *election.Session) <-chan acquireResult {
	ch := make(chan acquireResult, 1)
	go func() {
		err := s.Acquire(ctx)
		ch <- acquireResult{err: err, at: time.Now()}
	}()
	return ch
}

// mustAcquire acquires the lock within timeout.
func mustAcquire(t *testing.T, s *election.Session, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
}

// waitResult waits at most timeout for an Acquire running in the background.
func waitResult(t *testing.T, ch <-chan acquireResult, timeout time.Duration, what string) acquireResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("%s: Acquire did not return within %s", what, timeout)
		return acquireResult{}
	}
}

// waitDone waits at most timeout for s.Done and returns when it closed.
func waitDone(t *testing.T, s *election.Session, timeout time.Duration, what string) time.Time {
	t.Helper()
	select {
	case <-s.Done():
		return time.Now()
	case <-time.After(timeout):
		t.Fatalf("%s: Done not closed within %s", what, timeout)
		return time.Time{}
	}
}

// leader reads the lock holder within a bounded time.
func leader(t *testing.T, e *election.Election) *election.LeaderInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := e.Leader(ctx)
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	return info
}

// watermark reads the watermark within a bounded time.
func watermark(t *testing.T, e *election.Election) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := e.Watermark(ctx)
	if err != nil {
		t.Fatalf("Watermark: %v", err)
	}
	return w
}

// lockPair reads the lock key's raw pair (held or free) within a bounded
// time; nil when absent.
func lockPair(t *testing.T, client *api.Client, e *election.Election) (*api.KVPair, election.LeaderInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pair, _, err := client.KV().Get(e.LockKey(), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		t.Fatalf("read lock key: %v", err)
	}
	var info election.LeaderInfo
	if pair != nil {
		if err := json.Unmarshal(pair.Value, &info); err != nil {
			t.Fatalf("lock value %q: %v", pair.Value, err)
		}
	}
	return pair, info
}

// call is one HTTP request a recorder saw: when the client handed it over
// (before it went on the wire) and whether Consul answered 200.
type call struct {
	start time.Time
	ok    bool
}

// recorder is an http.RoundTripper in front of a Consul client that
// records, on the test's own clock, when each session renew was handed to
// it, can fail the GETs of one key and can delay every request both ways.
type recorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	renews  []call
	failGet atomic.Pointer[string] // a KV key whose GETs fail
	delay   atomic.Int64           // held before sending and after answering, in ns
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if k := r.failGet.Load(); k != nil && req.Method == http.MethodGet && req.URL.Path == "/v1/kv/"+*k {
		return nil, errors.New("injected read failure")
	}
	start := time.Now()
	d := time.Duration(r.delay.Load())
	time.Sleep(d)
	resp, err := r.next.RoundTrip(req)
	time.Sleep(d)
	if strings.HasPrefix(req.URL.Path, "/v1/session/renew/") {
		r.mu.Lock()
		r.renews = append(r.renews, call{start: start, ok: err == nil && resp.StatusCode == http.StatusOK})
		r.mu.Unlock()
	}
	return resp, err
}

// lastRenew is the send time of the last renew Consul answered with 200.
func (r *recorder) lastRenew() (time.Time, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.renews) - 1; i >= 0; i-- {
		if r.renews[i].ok {
			return r.renews[i].start, len(r.renews)
		}
	}
	return time.Time{}, len(r.renews)
}

// recordingClient is a Consul client for addr whose requests go through a
// recorder.
func recordingClient(t *testing.T, addr string) (*api.Client, *recorder) {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport.(*http.Transport).Clone()}
	c, err := api.NewClient(&api.Config{Address: addr, Scheme: "http", HttpClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatalf("consul client for %s: %v", addr, err)
	}
	return c, rec
}
