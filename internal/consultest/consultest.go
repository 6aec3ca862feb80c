// Package consultest starts real Consul agents for tests.
//
// Every agent runs in dev mode (in-memory, a single server that elects
// itself) on loopback ports of its own, so tests may start as many as they
// like in parallel. The agent itself is started by internal/localnet (which
// the demo uses too); this package adds what tests need: skip or fail when
// consul is missing, a retry with new ports, cleanup. The consul binary
// comes from scripts/install-deps.sh.
package consultest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/internal/testnet"
)

// Binary returns the path of the consul binary: $VALGUARD_CONSUL if set,
// else ${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}/bin/consul
// if it exists, else consul on $PATH. When none is found the test fails if
// $CI is "true" (CI must run the integration tests) and is skipped
// otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := localnet.ConsulBinary()
	switch {
	case err == nil:
		return bin
	case os.Getenv("VALGUARD_CONSUL") != "":
		t.Fatalf("VALGUARD_CONSUL: %v", err)
	case os.Getenv("CI") == "true":
		t.Fatal(err)
	default:
		t.Skip(err)
	}
	return ""
}

// Agent is a running dev-mode Consul agent.
type Agent struct {
	// Addr is the host:port of the agent's HTTP API.
	Addr string
	// Node is the agent's node name.
	Node string
	// LogPath is the file that holds the agent's output.
	LogPath string

	p        *localnet.Process
	stopOnce sync.Once
}

// Start starts a dev-mode agent on free loopback ports, waits until it has
// elected itself leader and registered its node (so sessions can be
// created at once), and registers its stop with t.Cleanup. A start that
// fails, for instance because another process took one of the ports in the
// meantime, is retried once with new ports.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin := Binary(t)
	port := func() (int, error) { return testnet.FreePort(t), nil }
	var errs []error
	for attempt := 1; attempt <= 2; attempt++ {
		dir := filepath.Join(t.TempDir(), "consul-"+strconv.Itoa(attempt))
		c, err := localnet.StartConsul(context.Background(), bin, dir, port)
		if err == nil {
			a := &Agent{Addr: c.Addr, Node: c.Node, LogPath: c.LogPath, p: c.Process}
			t.Cleanup(a.Stop)
			return a
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	t.Fatalf("start consul agent: %v", errors.Join(errs...))
	return nil
}

// Client returns a new API client for the agent.
func (a *Agent) Client(t testing.TB) *api.Client {
	t.Helper()
	return NewClient(t, a.Addr)
}

// NewClient returns an API client for the Consul HTTP API at addr
// (host:port), for instance a fault proxy in front of an agent. It ignores
// CONSUL_* environment variables.
func NewClient(t testing.TB, addr string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: addr, Scheme: "http"})
	if err != nil {
		t.Fatalf("consul client for %s: %v", addr, err)
	}
	return c
}

// Stop kills the agent's process group and waits for it to be reaped. It
// is safe to call more than once; Start already registers it with
// t.Cleanup.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		if a.p != nil {
			_ = a.p.Kill()
		}
	})
}

// Cluster is a running Consul cluster of server agents (see
// localnet.StartConsulCluster), for tests that need Raft: a leader that
// can be killed, a quorum that can be lost.
type Cluster struct {
	*localnet.ConsulCluster
	t testing.TB
}

// StartCluster starts n server agents on free loopback ports, waits until
// they have a leader and every one is in the catalog, and registers their
// stop with t.Cleanup. On failure the test fails (or is skipped, see
// Binary).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Binary(t)
	port := func() (int, error) { return testnet.FreePort(t), nil }
	var errs []error
	for attempt := 1; attempt <= 2; attempt++ {
		dir := filepath.Join(t.TempDir(), "consul-cluster-"+strconv.Itoa(attempt))
		c, err := localnet.StartConsulCluster(context.Background(), bin, dir, n, port)
		if err == nil {
			t.Cleanup(c.Kill)
			return &Cluster{ConsulCluster: c, t: t}
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	t.Fatalf("start consul cluster: %v", errors.Join(errs...))
	return nil
}

// KillLeader SIGKILLs the server that is the Raft leader and returns its
// index.
func (c *Cluster) KillLeader() int {
	c.t.Helper()
	i, err := c.Leader(c.t.Context())
	if err != nil {
		c.t.Fatalf("find the consul leader: %v", err)
	}
	if err := c.Servers[i].Kill(); err != nil {
		c.t.Fatalf("kill consul server %d: %v", i, err)
	}
	return i
}

// Restart starts server i again with its data and waits until the cluster
// is whole (a leader, every running server in the catalog).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.Start(context.Background(), i); err != nil {
		c.t.Fatal(err)
	}
	if err := c.WaitReady(c.t.Context(), localnet.ConsulStartTimeout); err != nil {
		c.t.Fatal(err)
	}
}

// Agent returns server i as an Agent, for code that takes one (its Stop
// does nothing: the cluster owns the process).
func (c *Cluster) Agent(i int) *Agent {
	s := c.Servers[i]
	return &Agent{Addr: s.Addr, Node: s.Node, LogPath: s.LogPath}
}
