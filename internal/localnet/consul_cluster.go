package localnet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClusterRaftMultiplier is the raft_multiplier the cluster's servers run
// with. Consul's default (5) scales every Raft timeout by five, so after a
// leader dies the new one is elected only after seconds — longer than a
// renew's margin; 1 is what Consul recommends for production servers and
// what docs/operations.md recommends for valguard.
const ClusterRaftMultiplier = 1

// ServerSettings are the settings docs/operations.md recommends for the Consul
// servers of an n-server cluster under valguard, as agent flags:
//   - raft_multiplier 1 (ClusterRaftMultiplier);
//   - leave_on_terminate false and skip_leave_on_interrupt true: a
//     restarted server rejoins as the voter it was;
//   - autopilot min_quorum n: autopilot does not remove a dead server
//     (by default it does, within seconds of its death, and deregisters
//     its node — which ends every session created through that server's
//     HTTP API, a leader's lock included: a failover for a server that
//     died, measured in the drills).
func ServerSettings(n int) []string {
	return []string{
		"-hcl", fmt.Sprintf("performance { raft_multiplier = %d }", ClusterRaftMultiplier),
		"-hcl", "leave_on_terminate = false", "-hcl", "skip_leave_on_interrupt = true",
		"-hcl", fmt.Sprintf("autopilot { min_quorum = %d }", n),
	}
}

// ConsulCluster is a Consul cluster of server agents on loopback, each
// with its own ports and data directory, as production runs it (3 or 5
// servers), for tests and benchmarks that need Raft: a leader that can be
// killed, a quorum that can be lost.
type ConsulCluster struct {
	Servers []*ConsulServer
	dir     string
	bin     string
}

// ConsulServer is one server agent of a ConsulCluster.
type ConsulServer struct {
	Addr       string // host:port of the HTTP API
	Node       string // the agent's node name
	RaftAddr   string // host:port of the server RPC (Raft) port, as /v1/status/leader names it
	LogPath    string
	DataDir    string
	args       []string
	*Process   // nil while stopped
	generation int
}

// StartConsulCluster starts n server agents (n ≥ 1; 3 or 5 for a real
// quorum) with -bootstrap-expect n, joined to each other over loopback, and
// waits (at most ConsulStartTimeout) until they have elected a leader and
// every agent has registered its node. freePort picks each port (nil: a
// free loopback port). The agents stop when ctx is done; on error every
// one started has been killed.
func StartConsulCluster(ctx context.Context, bin, dir string, n int, freePort func() (int, error)) (*ConsulCluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("a Consul cluster needs at least one server, not %d", n)
	}
	if freePort == nil {
		freePort = pickPort
	}
	type ports struct{ http, lan, wan, server int }
	ps := make([]ports, n)
	for i := range ps {
		var err error
		for _, p := range []*int{&ps[i].http, &ps[i].lan, &ps[i].wan, &ps[i].server} {
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	c := &ConsulCluster{dir: dir, bin: bin}
	for i, p := range ps {
		sdir := filepath.Join(dir, "server-"+strconv.Itoa(i))
		s := &ConsulServer{
			Addr:     "127.0.0.1:" + strconv.Itoa(p.http),
			Node:     "valguard-server-" + strconv.Itoa(i) + "-" + strconv.Itoa(p.http),
			RaftAddr: "127.0.0.1:" + strconv.Itoa(p.server),
			DataDir:  filepath.Join(sdir, "data"),
		}
		s.args = []string{"agent", "-server", "-bootstrap-expect", strconv.Itoa(n),
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-node", s.Node, "-data-dir", s.DataDir,
			"-http-port", strconv.Itoa(p.http), "-serf-lan-port", strconv.Itoa(p.lan),
			"-serf-wan-port", strconv.Itoa(p.wan), "-server-port", strconv.Itoa(p.server),
			"-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
		}
		s.args = append(s.args, ServerSettings(n)...)
		for j, q := range ps {
			if j != i {
				s.args = append(s.args, "-retry-join", "127.0.0.1:"+strconv.Itoa(q.lan))
			}
		}
		c.Servers = append(c.Servers, s)
	}
	for i := range c.Servers {
		if err := c.Start(ctx, i); err != nil {
			c.Kill()
			return nil, err
		}
	}
	if err := c.waitReady(ctx, ConsulStartTimeout, true); err != nil {
		c.Kill()
		return nil, err
	}
	return c, nil
}

// Start starts server i (again). Its data directory is kept: a restarted
// server rejoins with its Raft log. It does not wait for the cluster.
func (c *ConsulCluster) Start(ctx context.Context, i int) error {
	s := c.Servers[i]
	if s.Process != nil && !s.Exited() {
		return fmt.Errorf("consul server %d is running", i)
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return err
	}
	s.generation++
	s.LogPath = filepath.Join(filepath.Dir(s.DataDir), "consul-"+strconv.Itoa(s.generation)+".log")
	p, err := StartProcess(ctx, s.LogPath, []string{"CHECKPOINT_DISABLE=1"}, c.bin, s.args...)
	if err != nil {
		return fmt.Errorf("start consul server %d: %w", i, err)
	}
	s.Process = p
	return nil
}

// Kill kills every running server.
func (c *ConsulCluster) Kill() {
	for _, s := range c.Servers {
		if s.Process != nil {
			_ = s.Process.Kill()
		}
	}
}

// Addrs returns the HTTP addresses of the servers, in order.
func (c *ConsulCluster) Addrs() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.Addr)
	}
	return out
}

// Leader returns the index of the server that is the Raft leader, as the
// running servers report it, or an error when they name none or disagree.
func (c *ConsulCluster) Leader(ctx context.Context) (int, error) {
	client := &http.Client{Timeout: time.Second}
	var seen string
	for _, s := range c.Servers {
		if s.Process == nil || s.Exited() {
			continue
		}
		var leader string
		if err := getJSON(ctx, client, "http://"+s.Addr+"/v1/status/leader", &leader); err != nil {
			return -1, fmt.Errorf("server %s: %w", s.Node, err)
		}
		if leader == "" {
			return -1, fmt.Errorf("server %s knows no leader", s.Node)
		}
		if seen != "" && leader != seen {
			return -1, fmt.Errorf("servers disagree on the leader: %s and %s", seen, leader)
		}
		seen = leader
	}
	for i, s := range c.Servers {
		if s.RaftAddr == seen {
			return i, nil
		}
	}
	if seen == "" {
		return -1, errors.New("no server is running")
	}
	return -1, fmt.Errorf("the leader %s is none of the cluster's servers", seen)
}

// WaitReady waits until every running server agrees on a leader and has
// its node in the catalog (sessions are bound to a node), or d passes.
// Servers that are stopped (killed on purpose) are left out.
func (c *ConsulCluster) WaitReady(ctx context.Context, d time.Duration) error {
	return c.waitReady(ctx, d, false)
}

// waitReady is WaitReady; starting makes a server that exited an error at
// once (a cluster being started has none stopped on purpose).
func (c *ConsulCluster) waitReady(ctx context.Context, d time.Duration, starting bool) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = func() error {
			if _, err := c.Leader(ctx); err != nil {
				return err
			}
			for _, s := range c.Servers {
				if s.Process == nil || s.Exited() {
					continue
				}
				var node *struct{ Node struct{ Node string } }
				if err := getJSON(ctx, client, "http://"+s.Addr+"/v1/catalog/node/"+s.Node, &node); err != nil {
					return err
				}
				if node == nil || node.Node.Node != s.Node {
					return fmt.Errorf("server %s not yet in the catalog", s.Node)
				}
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		if starting {
			for i, s := range c.Servers {
				if s.Process != nil && s.Exited() {
					return fmt.Errorf("consul server %d exited: %v; log %s:\n%s", i, s.Wait(), s.LogPath, logTail(s.LogPath, 30))
				}
			}
		}
		select {
		case <-ctx.Done():
			var logs []string
			for _, s := range c.Servers {
				logs = append(logs, s.LogPath+":\n"+logTail(s.LogPath, 10))
			}
			return fmt.Errorf("consul cluster not ready within %s: %v\n%s", d, last, strings.Join(logs, "\n"))
		case <-tick.C:
		}
	}
}
