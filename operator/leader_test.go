package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jonboulle/clockwork"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

// fakeLock is a LockReader.
type fakeLock struct{ l *election.LeaderInfo }

func (f fakeLock) LockKey() string { return "valguard/X/leader" }
func (f fakeLock) Leader(context.Context) (*election.LeaderInfo, error) {
	return f.l, nil
}

func TestShowLeader(t *testing.T) {
	since := epoch.Add(-90 * time.Second)
	clock := clockwork.NewFakeClockAt(epoch)
	var out bytes.Buffer
	held, err := ShowLeader(context.Background(), fakeLock{&election.LeaderInfo{ReplicaID: "a", Hostname: "h", Since: since}}, "X", &out, clock, false)
	if err != nil || !held || out.String() != "X: replica a on h, since 2026-01-01T11:58:30Z (1m30s ago)\n" {
		t.Fatalf("held: %v %v %q", held, err, out.String())
	}
	out.Reset()
	held, err = ShowLeader(context.Background(), fakeLock{}, "X", &out, clock, false)
	if err != nil || held || out.String() != "X: no active validator\n" {
		t.Fatalf("none: %v %v %q", held, err, out.String())
	}
	out.Reset()
	if _, err := ShowLeader(context.Background(), fakeLock{}, "X", &out, clock, true); err != nil || !strings.Contains(out.String(), `"leader": null`) {
		t.Fatalf("json: %v %q", err, out.String())
	}
}

// TestLockIDForLabel: --validator-id is a lock id when its lock key
// exists, else the lock id whose holder carries it as its label (case
// aside), else itself.
func TestLockIDForLabel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Consul agent")
	}
	agent := consultest.Start(t)
	client := agent.Client(t)
	b, err := json.Marshal(election.LeaderInfo{ReplicaID: "a", Label: "pool.near"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.KV().Put(&api.KVPair{Key: "valguard/ABC/leader", Value: b}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, want string }{
		{"ABC", "ABC"},
		{"pool.near", "ABC"},
		{"POOL.NEAR", "ABC"},
		{"other", "other"},
	} {
		if got, err := LockIDForLabel(t.Context(), client, tc.id); err != nil || got != tc.want {
			t.Errorf("LockIDForLabel(%q) = %q, %v; want %q", tc.id, got, err, tc.want)
		}
	}
}
