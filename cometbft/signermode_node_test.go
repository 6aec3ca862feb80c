//go:build e2e

package cometbft

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/supervisor"
)

// startLogged starts cmd (as the adapter built it) in its own process
// group with its output in dir/name.log; it is stopped at cleanup, and
// the log's tail shown if the test failed.
func startLogged(t *testing.T, cmd *exec.Cmd, dir, name string) *localnet.Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	p, err := localnet.StartProcess(context.Background(), logPath, nil, cmd.Path, cmd.Args[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(localnet.DefaultStopTimeout); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("%s (tail):\n%s", logPath, logTail(t, logPath, 20))
		}
	})
	return p
}

// logTail is the last n lines of the file at path.
func logTail(t *testing.T, path string, n int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitSocket polls every 10 ms until a socket file is at path (the node
// listens), failing if the process ends first or timeout passes.
func waitSocket(t *testing.T, path string, p *localnet.Process, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
			return time.Now()
		}
		if p.Exited() {
			t.Fatalf("the node exited before it listened on %s: %v", path, p.Wait())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExit waits up to 30 s for p to exit and returns when it did.
func waitExit(t *testing.T, p *localnet.Process) time.Time {
	t.Helper()
	select {
	case <-p.Done():
		return time.Now()
	case <-time.After(30 * time.Second):
		t.Fatal("the node without a signer still runs after 30 s")
		return time.Time{}
	}
}

// A real CometBFT v0.38.26 node started from Command(RoleVoter) in the
// signer mode listens on the signer socket and accepts a connection
// there; with no signer answering it exits (CometBFT's 3 s accept
// timeout, or its read timeout once connected). The socket file it
// leaves is removed by the next Prepare, and the next node listens again.
//
// A connection that is closed at once is taken by the node as its signer
// going away: it exits on the broken pipe. So the adapter's own probe of
// the socket must never reach a node of ours; it runs only while none
// runs (New, Prepare, Command).
func TestRealNodeSignerModeListensOnTheSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	bin := cometbftBinary(t)
	dir := shortDir(t)
	h := filepath.Join(dir, "home")
	initRealHome(t, bin, h)
	key := filepath.Join(dir, "validator_key.json")
	writeKey(t, key)
	n, err := New(Config{Home: h, ValidatorKey: key, Binary: bin, SignMode: SignSigner, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	_, sock, _ := parseSignerAddr(n.SignerAddr())
	for _, dial := range []bool{false, true} {
		name := map[bool]string{false: "nobody dials", true: "dialled, never answered"}[dial]
		if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
			t.Fatalf("%s: Prepare: %v", name, err)
		}
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a file is still at %s after Prepare (%v)", name, sock, err)
		}
		cmd, err := n.Command(supervisor.RoleVoter)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		p := startLogged(t, cmd, dir, map[bool]string{false: "node1", true: "node2"}[dial])
		listening := waitSocket(t, sock, p, 20*time.Second)
		if dial {
			c, err := net.DialTimeout("unix", sock, time.Second)
			if err != nil {
				t.Fatalf("dial the node's socket: %v", err)
			}
			defer c.Close()
			// The node accepted: it sends its first request (GetPubKey).
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			k, err := c.Read(buf)
			if err != nil || k == 0 {
				t.Fatalf("no request from the node on the accepted connection: %v", err)
			}
			t.Logf("%s: the node accepted and sent a %d-byte request %v after start", name, k, time.Since(start).Round(time.Millisecond))
			// While it is connected, another start is refused.
			if _, err := n.Command(supervisor.RoleVoter); err == nil || !strings.Contains(err.Error(), "another process serves "+sock) {
				t.Fatalf("Command while a node listens on the socket = %v, want a refusal", err)
			}
		}
		exited := waitExit(t, p)
		err = p.Wait()
		tail := logTail(t, p.LogPath, 3)
		_, serr := os.Lstat(sock)
		t.Logf("%s: socket %v after start; exit %v after that (%v); socket file left behind: %v; log: %s",
			name, listening.Sub(start).Round(time.Millisecond), exited.Sub(listening).Round(time.Millisecond), err, serr == nil, tail)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("node exit %v, want exit status 1", err)
		}
		if !strings.Contains(tail, "can't get pubkey") {
			t.Fatalf("the node's log does not say it got no public key:\n%s", tail)
		}
		if d := exited.Sub(listening); d < 2*time.Second || d > 15*time.Second {
			t.Errorf("the node exited %v after it listened, want about CometBFT's 3 s (accept) or 5 s (read) timeout", d)
		}
	}
}
