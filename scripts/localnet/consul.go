package localnet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Consul is a dev-mode Consul agent on loopback (for the demo and tests).
type Consul struct {
	Addr    string // host:port of the HTTP API
	LogPath string
	*Process
}

// ConsulBinary finds consul: $VALGUARD_CONSUL, the cache, then PATH.
func ConsulBinary() (string, error) {
	if p := os.Getenv("VALGUARD_CONSUL"); p != "" {
		return p, checkExecutable(p)
	}
	if dir, err := cacheDir(); err == nil {
		if p := filepath.Join(dir, "bin", "consul"); checkExecutable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("consul not found: run scripts/install-deps.sh (make demo and make test do)")
}

// StartConsul starts `consul agent -dev` with every port a free loopback
// port, its data and log under dir, and waits until it has a leader.
func StartConsul(ctx context.Context, bin, dir string) (*Consul, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	used := map[int]bool{}
	ports := make([]int, 4)
	for i := range ports {
		p, err := freePort(used)
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	logPath := filepath.Join(dir, "consul.log")
	p, err := StartProcess(ctx, logPath, []string{"CHECKPOINT_DISABLE=1"}, bin, "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", "valguard-demo-"+strconv.Itoa(ports[0]), "-data-dir", filepath.Join(dir, "data"),
		"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1")
	if err != nil {
		return nil, fmt.Errorf("start consul: %w", err)
	}
	c := &Consul{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), LogPath: logPath, Process: p}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil || p.Exited() {
			break
		}
		resp, err := http.Get("http://" + c.Addr + "/v1/status/leader")
		if err == nil {
			var b [128]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if s := strings.Trim(string(b[:n]), "\" \n"); s != "" {
				return c, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = p.Kill()
	return nil, fmt.Errorf("consul agent on %s not ready; see %s", c.Addr, logPath)
}
