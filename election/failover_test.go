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
// The deadline is checked against the send time of the last successful
// renew as the test's own transport saw it, not against Deadline().
func TestBlackholedLeaderStepsDownBeforeStandbyTakesOver(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	proxy := faultproxy.New(t, agent.Addr)
	client, rec := recordingClient(t, proxy.Addr())
	v := validatorID(t)
	ra := newReplica(t, client, v, "a")
	rb := newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)

	// Let one more renew go through so the leader's deadline comes from a
	// renew sent while it held the lock.
	n0 := ra.renews.Load()
	for deadline := time.Now().Add(ttl); ra.renews.Load() == n0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("leader made no successful renew within one TTL")
		}
	}
	proxy.Blackhole()
	blackholedAt := time.Now()
	lastRenewSent, _ := rec.lastRenew()

	cfg := ra.e.Config()
	doneAt := waitDone(t, sa, cfg.TTL, "blackholed leader")
	if !errors.Is(sa.Err(), election.ErrSessionExpired) {
		t.Fatalf("blackholed leader: Err = %v, want ErrSessionExpired", sa.Err())
	}
	// The code reads its clock before handing the renew to the transport,
	// so its deadline is at most this; the server expires the session no
	// sooner than TTL after it received the renew, later still.
	want := lastRenewSent.Add(cfg.TTL - cfg.StopMargin)
	if late := doneAt.Sub(want); late > 100*time.Millisecond {
		t.Errorf("Done closed %s after last renew sent + TTL − StopMargin, want within 100ms", late)
	}
	if early := want.Sub(doneAt); early > 100*time.Millisecond {
		t.Errorf("Done closed %s before last renew sent + TTL − StopMargin: not from the deadline", early)
	}
	if sa.Leader() {
		t.Error("Leader() true after Done")
	}

	// Consul expires at up to 2×TTL after the last renew, then holds the
	// lock for lock-delay; the standby retries every 500ms, then waits
	// (no clean-release marker) before Acquire returns.
	limit := time.Until(lastRenewSent.Add(2*cfg.TTL + cfg.LockDelay + uncleanWait + 3*time.Second))
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
	t.Logf("blackholed %s after the last renew sent; Done %s after the blackhole, %s after last renew sent + TTL − StopMargin; "+
		"standby acquired %s after the old leader's Done (%s after the last renew sent)",
		blackholedAt.Sub(lastRenewSent).Round(time.Millisecond), doneAt.Sub(blackholedAt).Round(time.Millisecond),
		doneAt.Sub(want).Round(time.Millisecond), r.at.Sub(doneAt).Round(time.Millisecond), r.at.Sub(lastRenewSent).Round(time.Millisecond))
	if info := leader(t, rb.e); info == nil || info.ReplicaID != "b" {
		t.Errorf("Election.Leader = %+v, want replica b", info)
	}
	proxy.Pass() // let the old leader's cleanup reach Consul
}

// A leader whose session is destroyed behind its back sees Done within a
// renew interval. Behavior "release" keeps the key, free and without a
// clean-release marker; the standby gets it only after lock-delay, and its
// Acquire returns only after the unclean-takeover wait on top.
func TestInvalidatedLeaderStepsDownAndLockDelayHolds(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	admin := agent.Client(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	destroyStart := time.Now()
	if _, err := admin.Session().Destroy(sa.ID(), nil); err != nil {
		t.Fatalf("destroy the leader's session: %v", err)
	}
	destroyed := time.Now()
	if pair, info := lockPair(t, admin, ra.e); pair == nil || pair.Session != "" || info.ReplicaID != "a" || info.Released {
		t.Fatalf("lock key after the destroy: %+v %+v; want a's value kept, free, no clean-release marker", pair, info)
	}

	cfg := ra.e.Config()
	doneAt := waitDone(t, sa, cfg.RenewInterval+cfg.CallTimeout+time.Second, "invalidated leader")
	if err := sa.Err(); !errors.Is(err, election.ErrSessionInvalidated) && !errors.Is(err, election.ErrLockTaken) {
		t.Fatalf("invalidated leader: Err = %v, want ErrSessionInvalidated or ErrLockTaken", err)
	}

	r := waitResult(t, chb, time.Until(destroyed.Add(cfg.LockDelay+uncleanWait+3*time.Second)), "standby after invalidation")
	if r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	tookAt, why := rb.lastUnclean()
	if rb.unclean.Load() != 1 {
		t.Fatalf("OnUncleanTakeover called %d times, want once", rb.unclean.Load())
	}
	if earliest := destroyStart.Add(cfg.LockDelay); tookAt.Before(earliest) {
		t.Errorf("standby took the key %s before lock-delay ended", earliest.Sub(tookAt))
	}
	// The wait runs from when the standby first saw the key free, which is
	// after the destroy: it returns no earlier than the destroy + the wait
	// (here the lock-delay had already run it down).
	if got := r.at.Sub(destroyStart); got < uncleanWait {
		t.Errorf("standby's Acquire returned %s after the destroy, want at least %s", got, uncleanWait)
	}
	if !r.at.After(doneAt) {
		t.Errorf("standby acquired at %s, not after the old leader's Done at %s", r.at, doneAt)
	}
	t.Logf("Done %s after the destroy (%v); standby took the key %s after the destroy (lock-delay %s, %q), Acquire returned %s after the take",
		doneAt.Sub(destroyed).Round(time.Millisecond), sa.Err(), tookAt.Sub(destroyed).Round(time.Millisecond), cfg.LockDelay,
		why, r.at.Sub(tookAt).Round(time.Millisecond))

	if err := sa.Publish(ctx, []byte("stale")); err == nil {
		t.Error("Publish by the invalidated leader succeeded")
	}
	if w := watermark(t, rb.e); w != nil {
		t.Errorf("Watermark = %q after a stale leader's publish, want none", w)
	}
}
