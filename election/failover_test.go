package election_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/faultproxy"
)

// A leader cut off from Consul by silently dropped packets must see Done at
// its local deadline, and the standby must get the lock only after the
// server expired the session and lock-delay passed: never both at once.
func TestBlackholedLeaderStepsDownBeforeStandbyTakesOver(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	proxy := faultproxy.New(t, agent.Addr)
	v := validatorID(t)
	ra := newReplica(t, consultest.NewClient(t, proxy.Addr()), v, "a")
	rb := newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, 5*time.Second)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)

	// Let one renew go through so the leader's deadline comes from a renew.
	for deadline := time.Now().Add(ttl); ra.renews.Load() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("leader made no successful renew within one TTL")
		}
	}
	proxy.Blackhole()
	blackholedAt := time.Now()

	cfg := ra.e.Config()
	doneAt := waitDone(t, sa, cfg.TTL, "blackholed leader")
	if !errors.Is(sa.Err(), election.ErrSessionExpired) {
		t.Fatalf("blackholed leader: Err = %v, want ErrSessionExpired", sa.Err())
	}
	deadline := sa.Deadline()
	if doneAt.Before(deadline) {
		t.Errorf("Done closed %s before the local deadline: nothing but the deadline should have closed it", deadline.Sub(doneAt))
	}
	if late := doneAt.Sub(deadline); late > 100*time.Millisecond {
		t.Errorf("Done closed %s after the local deadline, want within 100ms", late)
	}
	if sa.Leader() {
		t.Error("Leader() true after Done")
	}
	// The last renew the server can have seen was sent at the earliest here.
	lastRenewSent := deadline.Add(-(cfg.TTL - cfg.StopMargin))

	// Consul expires at up to 2×TTL after the last renew, then holds the
	// lock for lock-delay; the standby retries every 500ms.
	limit := time.Until(lastRenewSent.Add(2*cfg.TTL + cfg.LockDelay + 3*time.Second))
	r := waitResult(t, chb, limit, "standby after leader blackholed")
	if r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	if !r.at.After(doneAt) {
		t.Fatalf("standby acquired at %s, not after the old leader's Done at %s", r.at, doneAt)
	}
	if earliest := lastRenewSent.Add(cfg.TTL + cfg.LockDelay); r.at.Before(earliest) {
		t.Errorf("standby acquired %s before last renew + TTL + lock-delay", earliest.Sub(r.at))
	}
	t.Logf("blackholed %s after the last renew sent; Done %s after the blackhole, %s after the local deadline; "+
		"standby acquired %s after the old leader's Done (%s after the last renew sent)",
		blackholedAt.Sub(lastRenewSent).Round(time.Millisecond), doneAt.Sub(blackholedAt).Round(time.Millisecond),
		doneAt.Sub(deadline), r.at.Sub(doneAt).Round(time.Millisecond), r.at.Sub(lastRenewSent).Round(time.Millisecond))
	if info := leader(t, rb.e); info == nil || info.ReplicaID != "b" {
		t.Errorf("Election.Leader = %+v, want replica b", info)
	}
	proxy.Pass() // let the old leader's cleanup reach Consul
}

// A leader whose session is destroyed behind its back sees Done within a
// renew interval; the standby gets the lock only after lock-delay.
func TestInvalidatedLeaderStepsDownAndLockDelayHolds(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, 5*time.Second)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)

	admin := agent.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	destroyStart := time.Now()
	if _, err := admin.Session().Destroy(sa.ID(), nil); err != nil {
		t.Fatalf("destroy the leader's session: %v", err)
	}
	destroyed := time.Now()

	cfg := ra.e.Config()
	doneAt := waitDone(t, sa, cfg.RenewInterval+cfg.CallTimeout+time.Second, "invalidated leader")
	if err := sa.Err(); !errors.Is(err, election.ErrSessionInvalidated) && !errors.Is(err, election.ErrLockTaken) {
		t.Fatalf("invalidated leader: Err = %v, want ErrSessionInvalidated or ErrLockTaken", err)
	}

	r := waitResult(t, chb, time.Until(destroyed.Add(cfg.LockDelay+3*time.Second)), "standby after invalidation")
	if r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	if earliest := destroyStart.Add(cfg.LockDelay); r.at.Before(earliest) {
		t.Errorf("standby acquired %s before lock-delay ended", earliest.Sub(r.at))
	}
	if !r.at.After(doneAt) {
		t.Errorf("standby acquired at %s, not after the old leader's Done at %s", r.at, doneAt)
	}
	t.Logf("Done %s after the destroy (%v); standby acquired %s after the destroy (lock-delay %s)",
		doneAt.Sub(destroyed).Round(time.Millisecond), sa.Err(), r.at.Sub(destroyed).Round(time.Millisecond), cfg.LockDelay)

	if err := sa.Publish(ctx, []byte("stale")); err == nil {
		t.Error("Publish by the invalidated leader succeeded")
	}
	if w := watermark(t, rb.e); w != nil {
		t.Errorf("Watermark = %q after a stale leader's publish, want none", w)
	}
}
