package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// freezer puts processes into a frozen cgroup v1 freezer group. A frozen
// task does not act on SIGKILL until it is thawed, which makes it a node
// that cannot be reaped, as one in uninterruptible sleep on a stuck disk.
type freezer struct {
	t   *testing.T
	dir string
}

func newFreezer(t *testing.T) *freezer {
	t.Helper()
	root := "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no cgroup v1 freezer at %s: %v", root, err)
		}
		t.Skipf("no cgroup v1 freezer at %s: %v", root, err)
	}
	dir := filepath.Join(root, fmt.Sprintf("valguard-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a freezer group (needs root): %v", err)
	}
	f := &freezer{t: t, dir: dir}
	t.Cleanup(func() {
		f.thaw()
		// The group empties once its tasks have died.
		for i := 0; i < 500; i++ {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return f
}

func (f *freezer) freeze(pid int) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		f.t.Fatalf("move %d into the freezer: %v", pid, err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte("FROZEN"), 0o644); err != nil {
		f.t.Fatalf("freeze: %v", err)
	}
	eventually(f.t, 5*time.Second, "frozen", func() bool {
		b, _ := os.ReadFile(filepath.Join(f.dir, "freezer.state"))
		return strings.TrimSpace(string(b)) == "FROZEN"
	})
}

func (f *freezer) thaw() {
	_ = os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte("THAWED"), 0o644)
}

// A validator node that cannot be reaped after SIGKILL keeps the lock
// unreleased (S3 without exceptions): the session is abandoned to expire,
// never closed; the state is shown in a metric; no new node starts until
// the old one is gone.
func TestUnreapedValidatorKeepsTheLock(t *testing.T) {
	fz := newFreezer(t)
	r := newRig(t, func(c *Config) { c.KillTimeout = 200 * time.Millisecond })
	r.validating()
	sess := r.el.current()
	validator := r.node.last(RoleValidator).Process.Pid
	fz.freeze(validator)

	sess.lose(errors.New("local lease deadline passed"))
	eventually(t, 5*time.Second, "the session abandoned", sess.isAbandoned)
	if sess.isClosed() {
		t.Fatalf("lock released with the validator node not reaped:\n%s", strings.Join(r.j.list(), "\n"))
	}
	if got := testutil.ToFloat64(r.m.unreaped); got != 1 {
		t.Fatalf("valguard_node_unreaped = %v, want 1", got)
	}
	// The counter follows the abandon it counts.
	eventually(t, time.Second, "valguard_sessions_abandoned_total = 1", func() bool {
		return testutil.ToFloat64(r.m.abandoned) == 1
	})
	// Nothing starts while the old node may still run.
	time.Sleep(300 * time.Millisecond)
	if n := r.node.starts(RoleVoter); n != 1 {
		t.Fatalf("%d voter starts while the validator node was not reaped", n)
	}
	if syscall.Kill(validator, 0) != nil {
		t.Fatal("the frozen node is gone: the test did not make it unreapable")
	}

	// Once it can die, it is reaped and the replica starts over as a voter.
	fz.thaw()
	r.waitState(Voting)
	eventually(t, 5*time.Second, "a new voter", func() bool { return r.node.starts(RoleVoter) == 2 })
	if got := testutil.ToFloat64(r.m.unreaped); got != 0 {
		t.Fatalf("valguard_node_unreaped = %v after the reap, want 0", got)
	}
	r.before("abandon reaped=false", "prepare:voter")
	if sess.isClosed() {
		t.Fatal("the abandoned session was closed later")
	}
}

// On shutdown, a validator node that cannot be reaped is not followed by a
// release either.
func TestShutdownWithUnreapedValidator(t *testing.T) {
	fz := newFreezer(t)
	r := newRig(t, func(c *Config) {
		c.KillTimeout = 200 * time.Millisecond
		c.StopTimeout = 100 * time.Millisecond
	})
	r.validating()
	sess := r.el.current()
	fz.freeze(r.node.last(RoleValidator).Process.Pid)
	r.cancel()
	select {
	case <-r.result:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	r.result <- nil // for the cleanup
	if sess.isClosed() || !sess.isAbandoned() {
		t.Fatalf("closed=%v abandoned=%v, want the session abandoned only:\n%s", sess.isClosed(), sess.isAbandoned(), strings.Join(r.j.list(), "\n"))
	}
	// Run has returned with the node still there; once it can die, its
	// containment (and its guard) goes with it.
	p := r.sup.proc
	if p == nil {
		t.Fatal("Run forgot a node it could not reap")
	}
	fz.thaw()
	eventually(t, 5*time.Second, "the thawed node reaped", p.Exited)
}
