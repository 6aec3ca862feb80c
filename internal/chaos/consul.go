package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// consulServer is one Consul server agent in a namespace of its own.
type consulServer struct {
	ns      string
	ip      string
	dataDir string
	logDir  string
	args    []string
	gen     int
	proc    *localnet.Process
}

// HTTP is the server's HTTP API address.
func (s *consulServer) HTTP() string { return s.ip + ":8500" }

// Cluster is a 3-server Consul cluster, each server in its own namespace
// on the Consul bridge, with the default ports (each namespace has its
// own).
type Cluster struct {
	bin     string
	Servers []*consulServer
}

func startCluster(ctx context.Context, n *Network, bin, dir string, size int) (*Cluster, error) {
	c := &Cluster{bin: bin}
	var ips []string
	for j := range size {
		ips = append(ips, n.ConsulIP(20+j))
	}
	for j := range size {
		ns, err := n.AddHost(ctx, "c"+strconv.Itoa(j), 20+j, false, true)
		if err != nil {
			return nil, err
		}
		s := &consulServer{ns: ns, ip: ips[j], dataDir: filepath.Join(dir, "consul-"+strconv.Itoa(j), "data"), logDir: filepath.Join(dir, "consul-"+strconv.Itoa(j))}
		s.args = []string{"agent", "-server", "-bootstrap-expect", strconv.Itoa(size),
			"-bind", s.ip, "-client", s.ip + " 127.0.0.1", "-node", "server-" + strconv.Itoa(j),
			"-data-dir", s.dataDir, "-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
		}
		s.args = append(s.args, localnet.ServerSettings(size)...)
		for k, ip := range ips {
			if k != j {
				s.args = append(s.args, "-retry-join", ip)
			}
		}
		c.Servers = append(c.Servers, s)
	}
	for j := range c.Servers {
		if err := c.Start(ctx, j); err != nil {
			return nil, err
		}
	}
	return c, c.WaitLeader(ctx, 60*time.Second)
}

// Start starts server j (again), keeping its data directory.
func (c *Cluster) Start(ctx context.Context, j int) error {
	s := c.Servers[j]
	if s.proc != nil && !s.proc.Exited() {
		return fmt.Errorf("consul server %d runs", j)
	}
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return err
	}
	s.gen++
	p, err := localnet.StartProcess(ctx, filepath.Join(s.logDir, "consul-"+strconv.Itoa(s.gen)+".log"),
		[]string{"CHECKPOINT_DISABLE=1"}, "nsenter", append([]string{"--net=/run/netns/" + s.ns, "--", c.bin}, s.args...)...)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// Kill kills server j and waits until it is reaped.
func (c *Cluster) Kill(j int) {
	if p := c.Servers[j].proc; p != nil {
		_ = p.Kill()
	}
}

// Running reports whether server j runs.
func (c *Cluster) Running(j int) bool {
	p := c.Servers[j].proc
	return p != nil && !p.Exited()
}

// Wipe removes server j's data directory (the server must be stopped).
func (c *Cluster) Wipe(j int) error { return os.RemoveAll(c.Servers[j].dataDir) }

// Leader returns the index of the Raft leader as the running servers
// report it, -1 with an error when none is known or they disagree.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	hc := &http.Client{Timeout: time.Second}
	seen := ""
	for j, s := range c.Servers {
		if !c.Running(j) {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTP()+"/v1/status/leader", nil)
		if err != nil {
			return -1, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return -1, err
		}
		var leader string
		err = json.NewDecoder(resp.Body).Decode(&leader)
		resp.Body.Close()
		if err != nil {
			return -1, err
		}
		if leader == "" {
			return -1, fmt.Errorf("server %d knows no leader", j)
		}
		if seen != "" && seen != leader {
			return -1, fmt.Errorf("servers disagree on the leader: %s, %s", seen, leader)
		}
		seen = leader
	}
	host, _, _ := strings.Cut(seen, ":")
	for j, s := range c.Servers {
		if s.ip == host {
			return j, nil
		}
	}
	return -1, errors.New("no leader")
}

// WaitLeader waits until the running servers agree on a leader.
func (c *Cluster) WaitLeader(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		_, err := c.Leader(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consul: no leader within %s: %w", d, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Addrs are the servers' HTTP addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.HTTP())
	}
	return out
}

// AnyAddr is the HTTP address of a running server (the first).
func (c *Cluster) AnyAddr() string {
	for j, s := range c.Servers {
		if c.Running(j) {
			return s.HTTP()
		}
	}
	return c.Servers[0].HTTP()
}
