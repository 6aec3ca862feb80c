package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/internal/testnet"
)

// valguardBin is built once by TestMain.
var valguardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "valguard-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	valguardBin = filepath.Join(dir, "valguard")
	out, err := exec.Command("go", "build", "-o", valguardBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build valguard: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// replica is one `valguard run` process started by a test.
type replica struct {
	t       *testing.T
	id      string
	args    []string
	env     []string
	logPath string
	metrics string
	cmd     *exec.Cmd
	done    chan struct{}
	runs    int
}

func newReplica(t *testing.T, id string, dir string, args ...string) *replica {
	port := testnet.FreePort(t)
	r := &replica{t: t, id: id, metrics: fmt.Sprintf("127.0.0.1:%d", port)}
	r.args = append([]string{"run", "--replica-id", id, "--metrics-addr", r.metrics, "--log-format", "json"}, args...)
	r.logPath = filepath.Join(dir, "valguard-"+id+".log")
	t.Cleanup(r.kill)
	return r
}

// start runs valguard; its output (and its node's) goes to the log file.
func (r *replica) start() {
	r.t.Helper()
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd = exec.Command(valguardBin, r.args...)
	r.cmd.Env = append(os.Environ(), r.env...)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	f.Close()
	r.runs++
	r.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(r.cmd, r.done)
}

// signal sends sig to valguard only (not its process group: the node must
// die because its supervisor died, S9).
func (r *replica) signal(sig syscall.Signal) {
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}

func (r *replica) waitExit(d time.Duration) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		r.t.Fatalf("valguard %s did not exit within %s", r.id, d)
	}
}

func (r *replica) kill() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.done:
	default:
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	if pid := r.nodePID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// state is the replica's current state, from its metrics.
func (r *replica) state() string { return localnet.ValguardState(r.metrics) }

func (r *replica) waitState(want string, d time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if r.state() == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("replica %s not %s within %s (state %q); log tail:\n%s", r.id, want, d, r.state(), tailFile(r.logPath, 30))
	return 0
}

// events returns valguard's own log events.
func (r *replica) events() []map[string]any { return localnet.ValguardEvents(r.logPath) }

// nodePID is the pid of the last node valguard started, 0 if none.
func (r *replica) nodePID() int { return localnet.LastNodePID(r.logPath) }

func alive(pid int) bool { return localnet.Alive(pid) }

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// within polls cond until it holds or d passes.
func within(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
