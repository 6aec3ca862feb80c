package election_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

// S5: the session Consul holds has no health checks of any kind, behavior
// release and the configured lock-delay and TTL. A session created with
// the api's Create (the node's serfHealth check by default) fails this.
func TestSessionIsTTLOnly(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", func(c *election.Config) { c.LockDelay = 7 * time.Second })
	s := r.session(t)
	entry, _, err := admin.Session().Info(s.ID(), &api.QueryOptions{RequireConsistent: true})
	if err != nil || entry == nil {
		t.Fatalf("session info: %+v, %v", entry, err)
	}
	if len(entry.Checks) != 0 || len(entry.NodeChecks) != 0 || len(entry.ServiceChecks) != 0 {
		t.Errorf("session has checks %v, node checks %v, service checks %v; want none (S5)", entry.Checks, entry.NodeChecks, entry.ServiceChecks)
	}
	if entry.Behavior != api.SessionBehaviorRelease {
		t.Errorf("Behavior = %q, want %q", entry.Behavior, api.SessionBehaviorRelease)
	}
	if entry.LockDelay != 7*time.Second {
		t.Errorf("LockDelay = %s, want 7s", entry.LockDelay)
	}
	if d, err := time.ParseDuration(entry.TTL); err != nil || d != ttl {
		t.Errorf("TTL = %q, want %s", entry.TTL, ttl)
	}
}

// The deadline counts from when a renew was sent, not from its answer: with
// every byte held 600ms each way, a deadline taken at the answer would be
// more than a second late against the test's record of the send time.
func TestDeadlineFromRenewSendTime(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	client, rec := recordingClient(t, agent.Addr)
	r := newReplica(t, client, validatorID(t), "a")
	s := r.session(t)
	mustAcquire(t, s, firstAcquire)
	// The delay applies to what the proxy carries; here the recorder is
	// the only path, so delay in the transport instead.
	rec.delay.Store(int64(600 * time.Millisecond))
	n0 := r.renews.Load()
	for deadline := time.Now().Add(2 * ttl); r.renews.Load() < n0+2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no two successful renews within 2×TTL with 600ms of delay")
		}
	}
	sent, _ := rec.lastRenew()
	cfg := r.e.Config()
	want := sent.Add(cfg.TTL - cfg.StopMargin)
	if d := s.Deadline().Sub(want); d > 0 || d < -50*time.Millisecond {
		t.Errorf("Deadline() = last renew sent + TTL − StopMargin %+v, want within [-50ms, 0]", d)
	}
}

// A holder whose renews succeed but whose lock checks fail must not keep
// moving its deadline: Done closes within TTL − StopMargin of the last
// renew followed by a check that saw the key held.
func TestFailedLockChecksDoNotExtendTheLease(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	client, rec := recordingClient(t, agent.Addr)
	r := newReplica(t, client, validatorID(t), "a")
	s := r.session(t)
	mustAcquire(t, s, firstAcquire)
	n0 := r.renews.Load()
	for deadline := time.Now().Add(ttl); r.renews.Load() == n0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no confirmed renew within one TTL")
		}
	}
	confirmed, _ := rec.lastRenew()
	key := r.e.LockKey()
	rec.failGet.Store(&key)
	cfg := r.e.Config()
	doneAt := waitDone(t, s, cfg.TTL, "holder whose lock checks fail")
	sent, calls := rec.lastRenew()
	if !sent.After(confirmed) {
		t.Fatalf("no renew succeeded after the reads began to fail (%d renew calls): the test proves nothing", calls)
	}
	if !errors.Is(s.Err(), election.ErrSessionExpired) {
		t.Errorf("Err = %v, want ErrSessionExpired", s.Err())
	}
	if late := doneAt.Sub(confirmed.Add(cfg.TTL - cfg.StopMargin)); late > 100*time.Millisecond {
		t.Errorf("Done closed %s after the last confirmed renew + TTL − StopMargin, want within 100ms", late)
	}
}

// Item 3: the lock key is deleted under a leader. The standby takes the key
// at once but its Acquire returns only max(LockDelay, TTL) later, and the
// old leader's Done (ErrLockTaken) closes before that: the two never lead
// at once. Times are the test's own readings.
func TestDeletedLockKeyFencedByWait(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)
	time.Sleep(500 * time.Millisecond) // the standby settles into its blocking query

	deleted := time.Now()
	if _, err := admin.KV().Delete(ra.e.LockKey(), nil); err != nil {
		t.Fatalf("delete the lock key: %v", err)
	}
	cfg := ra.e.Config()
	doneAt := waitDone(t, sa, cfg.RenewInterval+2*cfg.CallTimeout+time.Second, "leader whose key was deleted")
	if !errors.Is(sa.Err(), election.ErrLockTaken) {
		t.Errorf("old leader: Err = %v, want ErrLockTaken", sa.Err())
	}
	r := waitResult(t, chb, time.Until(deleted.Add(uncleanWait+5*time.Second)), "standby after the delete")
	if r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	tookAt, why := rb.lastUnclean()
	if rb.unclean.Load() != 1 {
		t.Fatalf("OnUncleanTakeover called %d times, want once", rb.unclean.Load())
	}
	// The old leader's bound to stop runs from the delete (its deadline
	// moves only after a lock check that saw the key held): the standby
	// may lead no earlier than max(LockDelay, TTL) after it, and, the key
	// being absent, no earlier than that after its own take.
	if wait := r.at.Sub(deleted); wait < max(cfg.LockDelay, cfg.TTL) {
		t.Errorf("standby's Acquire returned %s after the delete, want at least max(LockDelay, TTL) = %s", wait, max(cfg.LockDelay, cfg.TTL))
	}
	if wait := r.at.Sub(tookAt); wait < max(cfg.LockDelay, cfg.TTL)-50*time.Millisecond {
		t.Errorf("standby's Acquire returned %s after it took the absent key, want about max(LockDelay, TTL) = %s", wait, max(cfg.LockDelay, cfg.TTL))
	}
	if !doneAt.Before(r.at) {
		t.Errorf("old leader's Done at %s is not before the standby's Acquire returned at %s", doneAt, r.at)
	}
	t.Logf("delete → standby took the key %s (%s); delete → old leader's Done %s; delete → standby's Acquire returned %s",
		tookAt.Sub(deleted).Round(time.Millisecond), why, doneAt.Sub(deleted).Round(time.Millisecond), r.at.Sub(deleted).Round(time.Millisecond))
	if info := leader(t, ra.e); info == nil || info.Session != sb.ID() {
		t.Errorf("Election.Leader = %+v, want the standby's session", info)
	}
}

// A clean release leaves the key, free, with a fresh clean-release marker.
func TestCloseLeavesCleanReleaseMarker(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a", func(c *election.Config) { c.PublicKey, c.Label = "ed25519:AAAA", "val-a" })
	s := r.session(t)
	mustAcquire(t, s, firstAcquire)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := time.Now()
	if err := s.Close(ctx, nil); err != nil {
		t.Fatalf("Close: %v", err)
	}
	after := time.Now()
	pair, info := lockPair(t, admin, r.e)
	if pair == nil || pair.Session != "" {
		t.Fatalf("lock key after Close: %+v, want present and free", pair)
	}
	if !info.Released || info.ReleasedAt.Before(before.Add(-time.Millisecond)) || info.ReleasedAt.After(after) {
		t.Errorf("marker: released %v at %s, want true between %s and %s", info.Released, info.ReleasedAt, before, after)
	}
	if info.ReplicaID != "a" || info.PublicKey != "ed25519:AAAA" || info.Label != "val-a" {
		t.Errorf("released value %+v, want replica a, its public key and label", info)
	}
}

// writeLockValue writes info into the free lock key, as an operator or a
// snapshot restore would.
func writeLockValue(t *testing.T, client *api.Client, e *election.Election, info election.LeaderInfo) {
	t.Helper()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.KV().Put(&api.KVPair{Key: e.LockKey(), Value: b}, nil); err != nil {
		t.Fatalf("write lock value: %v", err)
	}
}

// A fresh marker lets a take through at once; a stale one (a snapshot
// restore) makes it wait.
func TestMarkerFreshness(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	for _, tc := range []struct {
		name  string
		age   time.Duration
		clean bool
	}{{"fresh", time.Second, true}, {"stale", 3 * ttl, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newReplica(t, agent.Client(t), validatorID(t), "b")
			writeLockValue(t, admin, r.e, election.LeaderInfo{ReplicaID: "a", Since: time.Now().Add(-time.Hour),
				Released: true, ReleasedAt: time.Now().Add(-tc.age)})
			s := r.session(t)
			start := time.Now()
			mustAcquire(t, s, firstAcquire)
			took := time.Since(start)
			if tc.clean && (took > 2*time.Second || r.unclean.Load() != 0) {
				t.Errorf("fresh marker: Acquire took %s, unclean reports %d; want at once, none", took, r.unclean.Load())
			}
			if !tc.clean && (took < uncleanWait || r.unclean.Load() != 1) {
				t.Errorf("stale marker: Acquire took %s, unclean reports %d; want at least %s, one", took, r.unclean.Load(), uncleanWait)
			}
		})
	}
}

// A replica that stops waiting (ctx) and closes releases without a marker:
// the previous leader may not have stopped, so the next taker waits too.
func TestCloseDuringWaitLeavesNoMarker(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	r := newReplica(t, agent.Client(t), validatorID(t), "a")
	s := r.session(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire of an absent key with 3s: %v, want DeadlineExceeded during the wait", err)
	}
	if pair, _ := lockPair(t, admin, r.e); pair == nil || pair.Session != s.ID() {
		t.Fatalf("lock key during the wait: %+v, want held by the waiting session", pair)
	}
	if s.Leader() {
		t.Error("Leader() true during the unclean-takeover wait")
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if err := s.Close(cctx, nil); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if pair, info := lockPair(t, admin, r.e); pair == nil || pair.Session != "" || info.Released {
		t.Errorf("lock key after Close during the wait: %+v %+v, want free, no marker", pair, info)
	}
}

// Item 4: a lock whose value names another public key is refused, held or
// free.
func TestForeignPublicKeyRefused(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	pk := func(k string) func(*election.Config) { return func(c *election.Config) { c.PublicKey = k } }
	ra := newReplica(t, agent.Client(t), v, "a", pk("ed25519:AAAA"))
	rb := newReplica(t, agent.Client(t), v, "b", pk("ed25519:BBBB"))
	rn := newReplica(t, agent.Client(t), v, "n") // no public key configured
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	for _, r := range []*replica{rb, rn} {
		s := r.session(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Acquire(ctx)
		cancel()
		if !errors.Is(err, election.ErrForeignLock) {
			t.Errorf("replica %s, lock held by another key: Acquire = %v, want ErrForeignLock", r.e.Config().ReplicaID, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sa.Close(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sb := rb.session(t)
	if err := sb.Acquire(ctx); !errors.Is(err, election.ErrForeignLock) {
		t.Errorf("free lock released by another key: Acquire = %v, want ErrForeignLock", err)
	}
	ra2 := newReplica(t, agent.Client(t), v, "a2", pk("ed25519:AAAA"))
	start := time.Now()
	mustAcquire(t, ra2.session(t), 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("same key after a clean release: Acquire took %s, want at once", took)
	}
}

// Abandon leaves the lock held by the session until Consul expires it; a
// standby's Acquire returns only after expiry, lock-delay and the wait.
func TestAbandonLeavesLockToExpire(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	client, rec := recordingClient(t, agent.Addr)
	v := validatorID(t)
	ra, rb := newReplica(t, client, v, "a"), newReplica(t, agent.Client(t), v, "b")
	created := time.Now()
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)

	sa.Abandon()
	abandoned := time.Now()
	// Consul counts the TTL from the last renew it received, or from the
	// create: no sooner than either was sent.
	lastRenew, _ := rec.lastRenew()
	if lastRenew.Before(created) {
		lastRenew = created
	}
	if !errors.Is(sa.Err(), election.ErrAbandoned) || sa.Leader() {
		t.Errorf("after Abandon: Err %v, Leader %v; want ErrAbandoned, false", sa.Err(), sa.Leader())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sa.Close(ctx, []byte("final")); !errors.Is(err, election.ErrAbandoned) {
		t.Errorf("Close after Abandon = %v, want ErrAbandoned", err)
	}
	if pair, _ := lockPair(t, admin, ra.e); pair == nil || pair.Session != sa.ID() {
		t.Fatalf("lock key after Abandon and Close: %+v, want still held by the abandoned session", pair)
	}
	if w := watermark(t, ra.e); w != nil {
		t.Errorf("Close after Abandon wrote the watermark %q", w)
	}
	cfg := ra.e.Config()
	r := waitResult(t, chb, time.Until(abandoned.Add(2*cfg.TTL+cfg.LockDelay+uncleanWait+5*time.Second)), "standby after Abandon")
	if r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	tookAt, _ := rb.lastUnclean()
	if earliest := lastRenew.Add(cfg.TTL + cfg.LockDelay); tookAt.Before(earliest) {
		t.Errorf("standby took the key %s before the last renew + TTL + lock-delay", earliest.Sub(tookAt))
	}
	// The key was free at the earliest at the last renew + TTL (Consul's
	// expiry); the wait runs from the standby's first sighting after that.
	if earliest := lastRenew.Add(cfg.TTL + uncleanWait); r.at.Before(earliest) {
		t.Errorf("standby's Acquire returned %s before the last renew + TTL + the unclean-takeover wait", earliest.Sub(r.at))
	}
	t.Logf("abandon → standby took the key %s, → Acquire returned %s (last renew %s before the abandon)",
		tookAt.Sub(abandoned).Round(time.Millisecond), r.at.Sub(abandoned).Round(time.Millisecond), abandoned.Sub(lastRenew).Round(time.Millisecond))
}
