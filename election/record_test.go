package election_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/faultproxy"
)

// TestCheckAndSet: against a real Consul, the sign record is created only
// at index 0, written only at its current index, and a write at an index
// the key has left is refused as moved (nothing written), whoever holds
// the lock (no session is involved).
func TestCheckAndSet(t *testing.T) {
	agent := consultest.Start(t)
	client := agent.Client(t)
	ra := newReplica(t, client, validatorID(t), "a")
	rb := newReplica(t, client, validatorID(t), "b")
	ctx := t.Context()
	a, err := ra.e.NewRecordFence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rb.e.NewRecordFence(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := a.CheckAndSet(ctx, []byte(`{"height":"1"}`), 7); !errors.Is(err, election.ErrWatermarkMoved) {
		t.Fatalf("check-and-set of an absent key at index 7: %v, want ErrWatermarkMoved", err)
	}
	i1, err := a.CheckAndSet(ctx, []byte(`{"height":"1"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	// b raced with a stale view (absent): refused, nothing written.
	if _, err := b.CheckAndSet(ctx, []byte(`{"height":"1","other":true}`), 0); !errors.Is(err, election.ErrWatermarkMoved) {
		t.Fatalf("second create: %v, want ErrWatermarkMoved", err)
	}
	value, index, err := rb.e.ReadWatermark(ctx)
	if err != nil || string(value) != `{"height":"1"}` || index != i1 {
		t.Fatalf("read back %q at %d (%v), want a's value at %d", value, index, err, i1)
	}
	i2, err := b.CheckAndSet(ctx, []byte(`{"height":"2"}`), index)
	if err != nil || i2 <= i1 {
		t.Fatalf("check-and-set at the read index: %d, %v", i2, err)
	}
	if _, err := a.CheckAndSet(ctx, []byte(`{"height":"2","a":true}`), i1); !errors.Is(err, election.ErrWatermarkMoved) {
		t.Fatalf("check-and-set at an index the key left: %v, want ErrWatermarkMoved", err)
	}
	// The index a watch returns for the key is the one to write at.
	_, watched, err := ra.e.WatchWatermark(ctx, 0)
	if err != nil || watched != i2 {
		t.Fatalf("watch index %d (%v), want the key's ModifyIndex %d", watched, err, i2)
	}
	if err := ra.e.CheckRecordWritable(ctx); err != nil {
		t.Fatalf("CheckRecordWritable on an open agent: %v", err)
	}
	if value, _, _ := ra.e.ReadWatermark(ctx); string(value) != `{"height":"2"}` {
		t.Fatalf("the probe changed the record: %q", value)
	}
}

// TestCheckAndSetUnknown: a check-and-set with no answer (Consul
// blackholed) is ErrFenceUnknown, never a refusal or a success.
func TestCheckAndSetUnknown(t *testing.T) {
	agent := consultest.Start(t)
	p := faultproxy.New(t, agent.Addr)
	client, err := api.NewClient(&api.Config{Address: p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	a := newReplica(t, client, validatorID(t), "a", func(c *election.Config) { c.CallTimeout = 300 * time.Millisecond })
	f, err := a.e.NewRecordFence(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	if _, err := f.CheckAndSet(t.Context(), []byte(`{}`), 0); !errors.Is(err, election.ErrFenceUnknown) {
		t.Fatalf("blackholed check-and-set: %v, want ErrFenceUnknown", err)
	}
}

// TestCheckRecordWritableACL: with ACLs on, a token that may read but not
// write the validator's keys is refused at start, naming the denial; a
// token with write passes.
func TestCheckRecordWritableACL(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{ACL: true})
	acl := agent.Client(t).ACL()
	token := func(rules string) *api.Client {
		t.Helper()
		p, _, err := acl.PolicyCreate(&api.ACLPolicy{Name: "p-" + strconv.Itoa(len(rules)), Rules: rules}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := acl.TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := api.NewClient(&api.Config{Address: agent.Addr, Token: tok.SecretID})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	id := validatorID(t)
	ro := newReplica(t, token(`key_prefix "valguard/" { policy = "read" }`), id, "ro")
	err := ro.e.CheckRecordWritable(t.Context())
	if !errors.Is(err, election.ErrRecordDenied) {
		t.Fatalf("read-only token: %v, want ErrRecordDenied", err)
	}
	t.Logf("read-only token: %v", err)
	rw := newReplica(t, token(`key_prefix "valguard/" { policy = "write" }`), id, "rw")
	if err := rw.e.CheckRecordWritable(t.Context()); err != nil {
		t.Fatalf("write token: %v", err)
	}
}

// TestRecordFenceStopsAtTheLock: a replica of another policy taking the
// lock stops every leaderless write from its take on, and a leaderless
// replica does not start while the lock is held (one validator, one
// policy); the error names the holder.
func TestRecordFenceStopsAtTheLock(t *testing.T) {
	agent := consultest.Start(t)
	client := agent.Client(t)
	id := validatorID(t)
	any := newReplica(t, client, id, "any")
	leader := newReplica(t, client, id, "leader", func(c *election.Config) { c.Fenced = true; c.LockDelay = time.Millisecond })
	ctx := t.Context()
	f, err := any.e.NewRecordFence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i1, err := f.CheckAndSet(ctx, []byte(`{"height":"1"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := leader.e.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(ctx, nil)
	if err := sess.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CheckAndSet(ctx, []byte(`{"height":"2"}`), i1); !errors.Is(err, election.ErrLockHeld) {
		t.Fatalf("check-and-set after a leader took the lock: %v, want ErrLockHeld", err)
	}
	if value, _, _ := any.e.ReadWatermark(ctx); string(value) != `{"height":"1"}` {
		t.Fatalf("record %q after the refused write", value)
	}
	_, err = any.e.NewRecordFence(ctx)
	if !errors.Is(err, election.ErrLockHeld) || !strings.Contains(err.Error(), "replica leader") {
		t.Fatalf("NewRecordFence with the lock held: %v, want ErrLockHeld naming replica leader", err)
	}
	if err := any.e.CheckRecordWritable(ctx); !errors.Is(err, election.ErrLockHeld) {
		t.Fatalf("CheckRecordWritable with the lock held: %v", err)
	}
}

// TestRecordFenceWaitsForUncleanKeyFileLock: a lock a key-file replica
// held and lost without a clean release (its node may still sign) keeps
// a leaderless grant out until the unclean-takeover wait has passed since
// it was first seen so; a lock a fenced (signer-mode) replica left does
// not, nor does the start-time probe.
func TestRecordFenceWaitsForUncleanKeyFileLock(t *testing.T) {
	agent := consultest.Start(t)
	client := agent.Client(t)
	id := validatorID(t)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	any := newReplica(t, client, id, "any", func(c *election.Config) { c.Now = now })
	ctx := t.Context()
	// A key-file replica's hold of the lock (its value without "fenced"),
	// then its session destroyed under it: the lock is free, unmarked.
	sid, _, err := client.Session().CreateNoChecks(&api.SessionEntry{TTL: "10s", Behavior: api.SessionBehaviorRelease, LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	value, _ := json.Marshal(election.LeaderInfo{ReplicaID: "kf", Hostname: "host-kf", Since: time.Now()})
	if ok, _, err := client.KV().Acquire(&api.KVPair{Key: any.e.LockKey(), Value: value, Session: sid}, nil); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if _, err := client.Session().Destroy(sid, nil); err != nil {
		t.Fatal(err)
	}
	_, err = any.e.NewRecordFence(ctx)
	if !errors.Is(err, election.ErrUncleanLock) {
		t.Fatalf("NewRecordFence after an unclean key-file holder: %v, want ErrUncleanLock", err)
	}
	t.Logf("refused: %v", err)
	if err := any.e.CheckRecordWritable(ctx); err != nil {
		t.Fatalf("the start-time probe must not wait: %v", err)
	}
	skew.Add(int64(uncleanWait - time.Second))
	if _, err := any.e.NewRecordFence(ctx); !errors.Is(err, election.ErrUncleanLock) {
		t.Fatalf("a second before the wait ends: %v, want ErrUncleanLock", err)
	}
	skew.Add(int64(2 * time.Second))
	if _, err := any.e.NewRecordFence(ctx); err != nil {
		t.Fatalf("after the unclean-takeover wait: %v", err)
	}
}
