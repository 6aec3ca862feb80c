package replica

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/supervisor"
)

// fakeNode is a node that is always synced at height 5 and runs sleep.
type fakeNode struct{}

func (fakeNode) Prepare(context.Context, supervisor.Role, []byte) error { return nil }
func (fakeNode) Command(supervisor.Role) (*exec.Cmd, error)             { return exec.Command("sleep", "600"), nil }
func (fakeNode) Watermark() ([]byte, error)                             { return nil, nil }
func (fakeNode) Status(context.Context) (supervisor.Status, error) {
	return supervisor.Status{Height: 5, Synced: true, BlockTime: time.Now()}, nil
}

// TestRunTakesTheLockAndReleasesIt: one replica over a real Consul agent
// and a fake node takes the lock, and when its context ends stops its
// node and releases the lock, returning nil.
func TestRunTakesTheLockAndReleasesIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Consul agent")
	}
	agent := consultest.Start(t)
	client := agent.Client(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Node:     chain.Setup{Node: fakeNode{}, Status: "fake", LockID: "RUN", Labels: []string{"RUN"}},
			NodeKind: "fake", SignMode: chain.SignRestart,
			StateDir: t.TempDir(),
			Label:    "RUN", ReplicaID: "a", Hostname: "host", Version: "test",
			Consul: client, ConsulTimeout: 2 * time.Second, SessionTTL: 10 * time.Second,
			Registry: prometheus.NewRegistry(),
			Log:      zerolog.New(zerolog.NewTestWriter(t)),
		})
	}()
	el, err := election.New(election.Config{Client: client, ValidatorID: "RUN", ReplicaID: "test", CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	leader := func() string {
		l, err := el.Leader(t.Context())
		if err != nil || l == nil {
			return ""
		}
		return l.ReplicaID
	}
	if !within(30*time.Second, func() bool { return leader() == "a" }) {
		t.Fatal("replica a did not take the lock within 30s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
	if l := leader(); l != "" {
		t.Fatalf("lock still held by %s after Run returned", l)
	}
}

// TestRunRefusesUnsafeTiming: settings the election refuses end Run
// before anything is started.
func TestRunRefusesUnsafeTiming(t *testing.T) {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = "127.0.0.1:1"
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), Config{
		Node:     chain.Setup{Node: fakeNode{}, LockID: "RUN", Labels: []string{"RUN"}},
		StateDir: t.TempDir(), ReplicaID: "a",
		Consul: client, ConsulTimeout: 2 * time.Second, SessionTTL: 10 * time.Second, RenewInterval: 9 * time.Second,
		Registry: prometheus.NewRegistry(),
		Log:      zerolog.Nop(),
	})
	if err == nil || !strings.Contains(err.Error(), "TTL") {
		t.Fatalf("Run: %v, want a refusal of the timing", err)
	}
}
