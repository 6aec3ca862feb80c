package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/testnet"
)

// neardBin is the stand-in, built once by TestMain.
var neardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "neardstandin-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	neardBin = filepath.Join(dir, "neard")
	out, err := exec.Command("go", "build", "-o", neardBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build the stand-in: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// setAddrs points rpc.addr and network.addr of home's config.json at
// fresh ports on 127.0.0.1, keeping every other field.
func setAddrs(t *testing.T, home string) (rpc, network string) {
	t.Helper()
	rpc = fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
	network = fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
	path := filepath.Join(home, "config.json")
	var c map[string]any
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		t.Fatal(err)
	}
	c["rpc"].(map[string]any)["addr"] = rpc
	c["network"].(map[string]any)["addr"] = network
	if b, err = json.MarshalIndent(c, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return rpc, network
}

// proc is a running `neard run`.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	rpc     string
	network string
	logPath string
	done    chan struct{} // closed once reaped
	waitErr error
}

// startRun starts `neard --home home run` with env and waits until /health
// answers. A port taken in the meantime is retried with fresh ports.
func startRun(t *testing.T, home string, env ...string) *proc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		p := startProc(t, home, env...)
		err := p.waitHealthy(10 * time.Second)
		if err == nil {
			return p
		}
		if attempt < 2 && strings.Contains(p.logs(), "address already in use") {
			continue
		}
		t.Fatalf("stand-in not ready: %v\n%s", err, p.logs())
	}
}

// startProc starts `neard --home home run` on fresh ports without waiting.
func startProc(t *testing.T, home string, env ...string) *proc {
	t.Helper()
	rpc, network := setAddrs(t, home)
	p := &proc{t: t, rpc: rpc, network: network, done: make(chan struct{}),
		logPath: filepath.Join(t.TempDir(), "neard.log")}
	f, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd = exec.Command(neardBin, "--home", home, "run")
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

func (p *proc) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.waitErr)
		default:
		}
		resp, err := http.Get("http://" + p.rpc + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no healthy /health within %s", timeout)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(s syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.logPath) // a missing log reads as empty
	return string(b)
}

// waitLog waits until the log has n lines with the message msg.
func (p *proc) waitLog(msg string, n int) {
	p.t.Helper()
	want := `"message":"` + msg + `"`
	waitFor(p.t, 5*time.Second, func() (bool, string) {
		got := strings.Count(p.logs(), want)
		return got >= n, fmt.Sprintf("%d of %d log lines %s\n%s", got, n, want, p.logs())
	})
}

// exitCode waits up to timeout for the process to exit.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("still running after %s\n%s", timeout, p.logs())
	}
	if p.waitErr == nil {
		return 0
	}
	if ee, ok := p.waitErr.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	p.t.Fatal(p.waitErr)
	return -1
}

// get fetches path from the RPC port and returns the body.
func (p *proc) get(path string) []byte {
	p.t.Helper()
	resp, err := http.Get("http://" + p.rpc + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, b)
	}
	return b
}

func (p *proc) status() statusResponse {
	p.t.Helper()
	var s statusResponse
	if err := json.Unmarshal(p.get("/status"), &s); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// metric reads one unlabelled sample from /metrics.
func (p *proc) metric(name string) int64 {
	p.t.Helper()
	for _, line := range strings.Split(string(p.get("/metrics")), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				p.t.Fatal(err)
			}
			return n
		}
	}
	p.t.Fatalf("no metric %s", name)
	return 0
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// produced is one journal line.
type produced struct {
	height  int64
	account string
	pid     int
}

// readJournal parses the journal and fails the test if a height appears
// twice for one account (a double sign).
func readJournal(t *testing.T, path string) []produced {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []produced
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var e produced
		if _, err := fmt.Sscanf(line, "%d %s %d", &e.height, &e.account, &e.pid); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		k := fmt.Sprint(e.height, e.account)
		if seen[k] {
			t.Fatalf("double sign: height %d twice for %s", e.height, e.account)
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}
