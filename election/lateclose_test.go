package election_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/faultproxy"
)

// A leader whose Close finds Consul out of reach (its lease already lost
// to the outage, its node stopped) goes on closing in the background: once
// Consul answers again the lock is released with the clean-release marker
// and the session destroyed, so the standby takes the lock at once rather
// than after the session's expiry (TTL to 2×TTL) and lock-delay.
func TestCloseRetriedWhenConsulAnswersAgain(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	proxy := faultproxy.New(t, agent.Addr)
	var lateAttempts atomic.Int64
	var lateErr atomic.Value
	ra := newReplica(t, consultest.NewClient(t, proxy.Addr()), validatorID(t), "a", func(c *election.Config) {
		c.OnLateClose = func(attempts int, err error) {
			t.Logf("%s late close after %d attempts: %v", time.Now().Format("05.000"), attempts, err)
			if err != nil {
				lateErr.Store(err)
			}
			lateAttempts.Store(int64(attempts))
		}
	})
	v := ra.e.Config().ValidatorID
	rb := newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)

	proxy.Blackhole()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := sa.Close(ctx, nil)
	cancel()
	if err == nil {
		t.Fatal("Close succeeded through a blackhole")
	}
	// Consul answers again well before the session could expire.
	time.Sleep(1500 * time.Millisecond)
	passedAt := time.Now()
	proxy.Pass()
	res := waitResult(t, chb, ttl, "standby acquire after the late close")
	if res.err != nil {
		t.Fatalf("standby: %v", res.err)
	}
	took := res.at.Sub(passedAt)
	t.Logf("close failed (%v); Consul answered again; standby took the lock %s later", err, took.Round(time.Millisecond))
	// Without the retry: expiry (TTL to 2×TTL) and lock-delay, 20 s or more.
	if bound := 2*ra.e.Config().CallTimeout + election.CloseRetryInterval + time.Second; took > bound {
		t.Fatalf("standby took the lock %s after Consul answered again, want within %s: the close was not retried", took, bound)
	}
	if rb.unclean.Load() != 0 {
		t.Fatal("the late release left no clean-release marker: the standby waited the unclean-takeover wait")
	}
	for end := time.Now().Add(5 * time.Second); lateAttempts.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("OnLateClose not called")
		}
	}
	if e := lateErr.Load(); e != nil {
		t.Fatalf("OnLateClose reported %v", e)
	}
	if lateAttempts.Load() < 2 {
		t.Fatalf("OnLateClose after %d attempts, want at least 2", lateAttempts.Load())
	}
}
