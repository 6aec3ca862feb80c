package election_test

import (
	"context"
	"strings"
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
}

func newReplica(t *testing.T, client *api.Client, validator, id string) *replica {
	t.Helper()
	r := &replica{}
	e, err := election.New(election.Config{
		Client: client, ValidatorID: validator, ReplicaID: id, Hostname: "host-" + id,
		TTL: ttl, LockDelay: lockDelay,
		OnRenew:       func() { r.renews.Add(1) },
		OnConsulError: func(error) { r.cErrors.Add(1) },
	})
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
