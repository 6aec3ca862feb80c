package election

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// These tests run the session's lease machinery against an address where
// no Consul listens, with timings shorter than Consul would accept (so the
// Election is built without New). Every renew fails at once.

func unreachableElection(t *testing.T, consulErrors *atomic.Int32) *Election {
	t.Helper()
	return &Election{
		cfg: Config{
			Client: testClient(t), ValidatorID: "val1", ReplicaID: "a", Hostname: "host-a",
			TTL: time.Second, LockDelay: time.Second, RenewInterval: 200 * time.Millisecond,
			CallTimeout: 100 * time.Millisecond, StopMargin: 300 * time.Millisecond,
			Now:           time.Now,
			OnConsulError: func(error) { consulErrors.Add(1) },
		},
		lockKey:      "valguard/val1/leader",
		watermarkKey: "valguard/val1/watermark",
	}
}

func TestDoneClosesAtDeadlineWhenRenewsFail(t *testing.T) {
	t.Parallel()
	var consulErrors atomic.Int32
	e := unreachableElection(t, &consulErrors)
	created := time.Now()
	s := startSession(e, "no-such-session", created)
	want := created.Add(e.cfg.TTL - e.cfg.StopMargin)
	if got := s.Deadline(); !got.Equal(want) {
		t.Fatalf("Deadline() = create time + %s, want + %s", got.Sub(created), want.Sub(created))
	}
	select {
	case <-s.Done():
	case <-time.After(2 * e.cfg.TTL):
		t.Fatal("Done not closed within 2×TTL while every renew failed")
	}
	closedAt := time.Now()
	if !errors.Is(s.Err(), ErrSessionExpired) {
		t.Fatalf("Err() = %v, want ErrSessionExpired", s.Err())
	}
	if closedAt.Before(want) {
		t.Errorf("Done closed %s before the deadline", want.Sub(closedAt))
	}
	if late := closedAt.Sub(want); late > 100*time.Millisecond {
		t.Errorf("Done closed %s after the deadline, want within 100ms", late)
	}
	if !s.Deadline().Equal(want) {
		t.Errorf("deadline moved without a successful renew")
	}
	if n := consulErrors.Load(); n < 2 {
		t.Errorf("OnConsulError called %d times, want one per failed renew (at least 2)", n)
	}
	if s.Leader() {
		t.Error("Leader() true after Done")
	}
	select {
	case <-s.loopDone:
	case <-time.After(time.Second):
		t.Error("renew loop still running 1s after Done")
	}
}

func TestLateRenewDoesNotReopenLease(t *testing.T) {
	t.Parallel()
	var consulErrors atomic.Int32
	e := unreachableElection(t, &consulErrors)
	s := startSession(e, "no-such-session", time.Now())
	<-s.Done()
	if s.renewed(time.Now(), e.cfg.TTL) {
		t.Fatal("renewed() accepted a renew after Done")
	}
	if !errors.Is(s.Err(), ErrSessionExpired) {
		t.Fatalf("Err() = %v, want ErrSessionExpired", s.Err())
	}

	// A renew answered after the deadline passed, before the timer fired.
	s2 := startSession(e, "no-such-session", time.Now())
	s2.mu.Lock()
	s2.timer.Stop()
	s2.gen++ // a timer callback already on its way is ignored
	s2.deadline = time.Now().Add(-time.Millisecond)
	s2.mu.Unlock()
	if s2.renewed(time.Now(), e.cfg.TTL) {
		t.Fatal("renewed() extended a lease whose deadline had passed")
	}
	if !errors.Is(s2.Err(), ErrSessionExpired) {
		t.Fatalf("Err() = %v, want ErrSessionExpired", s2.Err())
	}
}

func TestServerTTLOnlyShortensTheLease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reported string
		want     time.Duration
	}{
		{"10s", 10 * time.Second},
		{"30s", 10 * time.Second}, // a longer server TTL never lengthens the local lease
		{"", 10 * time.Second},
		{"garbage", 10 * time.Second},
		{"8s", 8 * time.Second},
	} {
		if got := serverTTL(&api.SessionEntry{TTL: tc.reported}, 10*time.Second); got != tc.want {
			t.Errorf("serverTTL(%q) = %s, want %s", tc.reported, got, tc.want)
		}
	}
}
