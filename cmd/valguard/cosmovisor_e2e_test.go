//go:build e2e

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// installUnderCosmovisor lays out node home for cosmovisor, as
// "cosmovisor init" does: the daemon (a copy of the chain's cometbft) at
// cosmovisor/genesis/bin, and the binary of the upgrade named upgrade at
// cosmovisor/upgrades/<upgrade>/bin (another copy).
func installUnderCosmovisor(t *testing.T, home, daemon, upgrade string) {
	t.Helper()
	for _, dir := range []string{"genesis", filepath.Join("upgrades", upgrade)} {
		bin := filepath.Join(home, "cosmovisor", dir, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, daemon, filepath.Join(bin, filepath.Base(daemon)), 0o755)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// announceUpgrade writes what the Cosmos SDK's x/upgrade module writes at
// an upgrade height, data/upgrade-info.json, into node home: cosmovisor
// then stops the daemon and starts the upgrade's binary. (CometBFT's
// kvstore has no x/upgrade; the file is what cosmovisor watches.)
func announceUpgrade(t *testing.T, home, name string, height int64) {
	t.Helper()
	info := fmt.Sprintf(`{"name":%q,"height":%d,"info":""}`, name, height)
	if err := os.WriteFile(filepath.Join(home, "data", "upgrade-info.json"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
}

// upgraded reports whether cosmovisor in home runs the upgrade name.
func upgraded(home, name string) bool {
	target, err := os.Readlink(filepath.Join(home, "cosmovisor", "current"))
	return err == nil && filepath.Base(target) == name
}

// grepFile is the lines of path that hold s.
func grepFile(path, s string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// stateWatch samples the replicas' states until stopped and keeps the
// first sample where the leader was not Validating or the standby was.
type stateWatch struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	bad  string
}

func watchStates(leader, standby *replica) *stateWatch {
	w := &stateWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			l, s := leader.state(), standby.state()
			if (l != "Validating" || s == "Validating") && w.first() == "" {
				w.mu.Lock()
				w.bad = fmt.Sprintf("%s: leader %s %q, standby %s %q", time.Now().Format(time.StampMilli), leader.id, l, standby.id, s)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *stateWatch) first() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bad
}

func (w *stateWatch) end() string {
	close(w.stop)
	<-w.done
	return w.first()
}

// TestCosmovisorUpgradeEndToEnd runs both replicas' nodes under a real
// cosmovisor (--node-binary cosmovisor, DAEMON_NAME in the environment) and
// takes each through a binary upgrade, the leader's first, the standby's
// after: cosmovisor stops the daemon and starts the upgrade's binary
// while valguard's node process (cosmovisor) runs on. Neither upgrade may
// look like a crash: the leader keeps the lock and stays Validating, its
// validator signs again after the upgrade, the standby never takes over,
// and nothing is signed twice. In both sign modes.
func TestCosmovisorUpgradeEndToEnd(t *testing.T) {
	for _, mode := range []string{"restart", "signer"} {
		t.Run(mode, func(t *testing.T) { cosmovisorUpgrade(t, mode) })
	}
}

func cosmovisorUpgrade(t *testing.T, mode string) {
	cosmovisor := binaryOrSkip(t, localnet.CosmovisorBinary)
	c := startChain(t, nil)
	var args []string
	if mode == "signer" {
		args = []string{"--sign-mode", "signer"}
	}
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	const upgrade = "v2"
	for i := range 2 {
		installUnderCosmovisor(t, c.net.ReplicaHomes[i], c.net.Binary, upgrade)
	}
	env := []string{"DAEMON_NAME=" + filepath.Base(c.net.Binary), "UNSAFE_SKIP_BACKUP=true", "DAEMON_POLL_INTERVAL=100ms"}
	a := c.replica("a", 0, append([]string{"--node-binary", cosmovisor}, args...)...)
	b := c.replica("b", 1, append([]string{"--node-binary", cosmovisor}, args...)...)
	a.env, b.env = env, env
	a.start()
	a.waitState("Validating", 90*time.Second)
	b.start()
	b.waitState("Voting", 90*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)

	leader := a.nodePID()
	before := daemonOf(t, leader)
	mustNotOutlive(t, before)
	watch := watchStates(a, b)

	// The leader's upgrade.
	h, start := c.height(), time.Now()
	announceUpgrade(t, c.net.ReplicaHomes[0], upgrade, h)
	var after int
	ok := within(ctx, 60*time.Second, func() bool {
		if !upgraded(c.net.ReplicaHomes[0], upgrade) {
			return false
		}
		for _, d := range children(leader) {
			if d != before {
				after = d
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("leader's cosmovisor did not start the upgraded daemon within 60s; its lines:\n%s", grepFile(a.logPath, "cosmovisor"))
	}
	mustNotOutlive(t, after)
	signed := c.firstSignedAfter(c.height()+1, 60*time.Second)
	t.Logf("%s mode: leader's upgrade announced at height %d; daemon %d → %d; first signature after it at height %d, %s after the announcement, %d heights missed",
		mode, h, before, after, signed, time.Since(start).Round(time.Millisecond), c.missedSince(h, signed-1))
	if got := a.nodePID(); got != leader {
		t.Fatalf("valguard restarted the leader's node (cosmovisor %d, now %d): the upgrade looked like a crash; its events and cosmovisor's lines:\n%s", leader, got, grepFile(a.logPath, "m"))
	}
	if alive(before) {
		t.Fatalf("the old daemon %d still runs", before)
	}
	// CometBFT leaves its privval socket behind; the upgraded daemon could
	// listen only because valguard removed it.
	if removed := grepFile(a.logPath, "stale signer socket removed: the node stopped"); mode == "signer" && removed == "" {
		t.Fatal("signer mode: the upgraded daemon listens, yet valguard did not remove the old one's socket: is the test still testing that?")
	}

	// The standby's upgrade.
	standby := b.nodePID()
	announceUpgrade(t, c.net.ReplicaHomes[1], upgrade, c.height())
	if !within(ctx, 60*time.Second, func() bool { return upgraded(c.net.ReplicaHomes[1], upgrade) }) {
		t.Fatalf("standby's cosmovisor did not upgrade within 60s; its lines:\n%s", grepFile(b.logPath, "cosmovisor"))
	}
	if err := localnet.WaitHeight(ctx, c.rpc, c.height()+3); err != nil {
		t.Fatal(err)
	}
	if bad := watch.end(); bad != "" {
		t.Fatalf("an upgrade moved the lock or the leader's state: %s\nleader log tail:\n%s", bad, tailFile(a.logPath, 40))
	}
	if got := b.nodePID(); got != standby {
		t.Fatalf("valguard restarted the standby's node (cosmovisor %d, now %d)", standby, got)
	}
	b.waitState("Voting", 60*time.Second)
	c.noDoubleSign(10)

	stopWithDaemons(t, 40*time.Second, b, a)
}
