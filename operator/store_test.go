package operator

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/roster"
)

// TestConsulStore: the real Store over a real Consul agent: the lock
// holder, and a drain mark refused to the lock holder (and to anyone
// while the lock value cannot be read), written for any other replica.
func TestConsulStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Consul agent")
	}
	agent := consultest.Start(t)
	client := agent.Client(t)
	el, err := election.New(election.Config{Client: client, ValidatorID: "store", ReplicaID: "operator", CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := roster.New(roster.Config{Client: client, ValidatorID: "store", CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &ConsulStore{Roster: ro, El: el, URL: "http://" + agent.Addr}
	var _ Store = s
	ctx := t.Context()
	if s.LockKey() != "valguard/store/leader" {
		t.Fatalf("lock key %s", s.LockKey())
	}
	if l, err := s.Leader(ctx); err != nil || l != nil {
		t.Fatalf("leader %+v, %v; want none", l, err)
	}
	session, _, err := client.Session().CreateNoChecks(&api.SessionEntry{TTL: "60s", Behavior: api.SessionBehaviorRelease, LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hold := func(value []byte) {
		t.Helper()
		if ok, _, err := client.KV().Acquire(&api.KVPair{Key: s.LockKey(), Value: value, Session: session}, nil); err != nil || !ok {
			t.Fatalf("acquire: %v, %v", ok, err)
		}
	}
	b, _ := json.Marshal(election.LeaderInfo{ReplicaID: "a", Since: time.Now()})
	hold(b)
	if l, err := s.Leader(ctx); err != nil || l == nil || l.ReplicaID != "a" {
		t.Fatalf("leader %+v, %v; want a", l, err)
	}
	if err := s.SetDrainUnlessLeading(ctx, "a", roster.Drain{At: time.Now()}); !errors.Is(err, roster.ErrLeading) {
		t.Fatalf("drain of the leader: %v, want ErrLeading", err)
	}
	if err := s.SetDrainUnlessLeading(ctx, "b", roster.Drain{At: time.Now(), Reason: "test"}); err != nil {
		t.Fatalf("drain of a standby: %v", err)
	}
	if d, err := s.Drains(ctx); err != nil || d["b"].Reason != "test" || len(d) != 1 {
		t.Fatalf("drains %+v, %v; want b's", d, err)
	}
	hold([]byte("not json"))
	err = s.SetDrainUnlessLeading(ctx, "c", roster.Drain{At: time.Now()})
	if err == nil || !strings.Contains(err.Error(), "the leader is unknown, nothing changed (valguard status)") {
		t.Fatalf("drain with an unreadable lock value: %v", err)
	}
}

func TestHint(t *testing.T) {
	s := &ConsulStore{URL: "http://127.0.0.1:1"}
	cases := []struct {
		err  error
		hint string
	}{
		{errors.New("Unexpected response code: 403 (Permission denied)"), "Consul refused the token: give --consul-token-file"},
		{errors.New("ACL not found"), "Consul refused the token"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "Consul does not answer at http://127.0.0.1:1: check --consul-url"},
		{errors.New("something else"), ""},
	}
	for _, tc := range cases {
		got := s.Hint(tc.err)
		if !errors.Is(got, tc.err) {
			t.Errorf("Hint(%q) does not wrap it", tc.err)
		}
		if tc.hint == "" && got.Error() != tc.err.Error() || !strings.Contains(got.Error(), tc.hint) {
			t.Errorf("Hint(%q) = %q, want %q", tc.err, got, tc.hint)
		}
	}
	if s.Hint(nil) != nil {
		t.Error("Hint(nil) is not nil")
	}
}
