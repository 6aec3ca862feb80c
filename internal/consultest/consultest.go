// Package consultest starts real Consul agents for tests.
//
// Every agent runs in dev mode (in-memory, a single server that elects
// itself) on loopback ports of its own, so tests may start as many as they
// like in parallel. The consul binary comes from scripts/install-deps.sh.
package consultest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/testnet"
)

// StartTimeout bounds how long Start waits for an agent to elect itself.
const StartTimeout = 30 * time.Second

const installHint = "consul not installed: run scripts/install-deps.sh (make test does)"

// Binary returns the path of the consul binary: $VALGUARD_CONSUL if set,
// else ${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}/bin/consul
// if it exists, else consul on $PATH. When none is found the test fails if
// $CI is "true" (CI must run the integration tests) and is skipped
// otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VALGUARD_CONSUL"); p != "" {
		if !isExecutable(p) {
			t.Fatalf("VALGUARD_CONSUL=%s is not an executable file", p)
		}
		return p
	}
	if p := filepath.Join(cacheDir(), "bin", "consul"); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(installHint)
	}
	t.Skip(installHint)
	return ""
}

func cacheDir() string {
	if d := os.Getenv("VALGUARD_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "valguard")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Agent is a running dev-mode Consul agent.
type Agent struct {
	// Addr is the host:port of the agent's HTTP API.
	Addr string
	// Node is the agent's node name.
	Node string
	// LogPath is the file that holds the agent's output.
	LogPath string

	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd.Wait returned
	waitErr  error
	stopOnce sync.Once
}

// Start starts a dev-mode agent on free loopback ports, waits (at most
// StartTimeout) until it has elected itself leader and registered its node
// (so sessions can be created at once), and registers its stop
// with t.Cleanup. A start that fails, for instance because another process
// took one of the ports in the meantime, is retried once with new ports.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin := Binary(t)
	var errs []error
	for attempt := 1; attempt <= 2; attempt++ {
		a, err := start(t, bin, attempt)
		if err == nil {
			t.Cleanup(a.Stop)
			return a
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	t.Fatalf("start consul agent: %v", errors.Join(errs...))
	return nil
}

func start(t testing.TB, bin string, attempt int) (*Agent, error) {
	dir := filepath.Join(t.TempDir(), "consul-"+strconv.Itoa(attempt))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy of the descriptor

	httpPort := testnet.FreePort(t)
	node := fmt.Sprintf("consultest-%d", httpPort)
	port := func(name string) []string {
		return []string{"-" + name, strconv.Itoa(testnet.FreePort(t))}
	}
	args := []string{
		"agent", "-dev",
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-node", node,
		"-data-dir", filepath.Join(dir, "data"),
		"-http-port", strconv.Itoa(httpPort),
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-dns-port", "-1",
	}
	args = append(args, port("serf-lan-port")...)
	args = append(args, port("serf-wan-port")...)
	args = append(args, port("server-port")...)

	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	a := &Agent{
		Addr:    "127.0.0.1:" + strconv.Itoa(httpPort),
		Node:    node,
		LogPath: logPath,
		cmd:     cmd,
		exited:  make(chan struct{}),
	}
	go func() {
		a.waitErr = cmd.Wait()
		close(a.exited)
	}()
	if err := a.waitReady(StartTimeout); err != nil {
		a.Stop()
		return nil, fmt.Errorf("%w; agent log %s:\n%s", err, logPath, tail(logPath, 30))
	}
	return a, nil
}

// waitReady polls the agent until it names a leader and its own node is
// in the catalog (sessions are bound to a node: before that, creating one
// fails with "Missing node registration"), the agent exits, or timeout
// passes.
func (a *Agent) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	base := "http://" + a.Addr
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var leader string
		var node *struct{ Node struct{ Node string } }
		if getJSON(ctx, client, base+"/v1/status/leader", &leader) == nil && leader != "" &&
			getJSON(ctx, client, base+"/v1/catalog/node/"+a.Node, &node) == nil && node != nil && node.Node.Node == a.Node {
			return nil
		}
		select {
		case <-a.exited:
			return fmt.Errorf("consul agent exited before electing a leader: %v", a.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("consul agent on %s not ready (leader elected, node registered) within %s", a.Addr, timeout)
		case <-tick.C:
		}
	}
}

// getJSON decodes the JSON answer to GET url into v.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
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

// Stop kills the agent (by its PID) and waits for it to exit. It is safe to
// call more than once; Start already registers it with t.Cleanup.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		select {
		case <-a.exited:
		default:
			_ = a.cmd.Process.Kill() // an error means it already exited; Wait below tells
		}
		<-a.exited
	})
}

// tail returns the last n lines of the file at path, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
