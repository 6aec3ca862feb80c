package proctree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The shell scripts below are node binaries shaped like cosmovisor and
// worse: $DIR is a directory where they write the pid of their child.

// forwarder starts the daemon as its child, forwards TERM to it and waits.
const forwarder = `sleep 1000 & c=$!; echo $c > "$DIR/child"; trap 'kill -TERM $c; wait $c; exit 0' TERM; wait $c`

// escaper starts the daemon in a session of its own and exits at once.
const escaper = `setsid sleep 1000 & echo $! > "$DIR/child"; exit 0`

// scrubber starts the daemon in a session of its own with an empty
// environment and waits for it.
const scrubber = `setsid env -i sleep 1000 & echo $! > "$DIR/child"; wait`

// deserter starts the daemon in a session of its own, exits on TERM
// without forwarding it and otherwise waits.
const deserter = `setsid sleep 1000 & echo $! > "$DIR/child"; trap 'exit 0' TERM; wait`

type modeCase struct {
	name string
	mode containMode
}

// modes are the containments to test: the process group always, the
// cgroup where the machine has one.
func modes(t *testing.T) []modeCase {
	ms := []modeCase{{"group", containGroup}}
	if _, err := cgroupBase(); err != nil {
		t.Logf("no cgroup mode here: %v", err)
	} else {
		ms = append(ms, modeCase{"cgroup", containCgroup})
	}
	return ms
}

// startScript runs script as a node with mode's containment and returns it
// with the pid of the child the script reported.
func startScript(t *testing.T, mode containMode, script string, args ...string) (*Process, int) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("sh", append([]string{"-c", script, "node"}, args...)...)
	cmd.Env = append(os.Environ(), "DIR="+dir)
	p, err := startContained(cmd, nil, nil, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Kill(5 * time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	var child int
	eventually(t, 5*time.Second, "the script's child pid", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "child"))
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return p, child
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z'
}

// waitOwnSession waits until pid has left the node's process group (the
// script reports its pid before setsid runs).
func waitOwnSession(t *testing.T, pid int) {
	t.Helper()
	eventually(t, 5*time.Second, "the child in its own session", func() bool {
		st, ok := readStat(pid)
		return ok && st.pgrp == pid
	})
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the direct child was not reaped")
	}
}

// assertHeld checks, for a while, that the tree's member is running and
// that the node is not reported exited.
func assertHeld(t *testing.T, p *Process, member int) {
	t.Helper()
	for range 10 {
		if p.Exited() {
			t.Fatalf("Exited() with pid %d of the tree still running", member)
		}
		if !running(member) {
			t.Fatalf("pid %d died on its own: the test shows nothing", member)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertGone checks that the member is dead now and, soon, reaped.
// killAndAssertGone kills p's tree and asserts it and child are gone.
func killAndAssertGone(t *testing.T, p *Process, child int) {
	t.Helper()
	if err := p.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p, child)
}

func assertGone(t *testing.T, p *Process, member int) {
	t.Helper()
	if running(member) {
		t.Fatalf("pid %d still running after a successful kill", member)
	}
	if !p.Exited() {
		t.Fatal("Exited() false after a successful kill")
	}
	eventually(t, 5*time.Second, fmt.Sprintf("pid %d reaped", member), func() bool {
		return errors.Is(syscall.Kill(member, 0), syscall.ESRCH)
	})
}

// A wrapper killed alone leaves its child running: the node has not
// exited until Kill has killed the child too.
func TestKillWrapperKillsItsChild(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, forwarder)
			if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitDone(t, p)
			assertHeld(t, p, child)
			start := time.Now()
			if err := p.Kill(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: kill and confirm an empty tree: %s", p.Containment(), time.Since(start))
			assertGone(t, p, child)
			if m.mode == containGroup && !errors.Is(syscall.Kill(child, 0), syscall.ESRCH) {
				t.Fatalf("orphan %d not reaped by the subreaper", child)
			}
		})
	}
}

// Kill of a running wrapper kills its child as well.
func TestKillRunningWrapper(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, forwarder)
			start := time.Now()
			if err := p.Kill(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: kill and confirm an empty tree: %s", p.Containment(), time.Since(start))
			waitDone(t, p)
			assertGone(t, p, child)
		})
	}
}

// Kill may be called from two goroutines at once (the lease fence and the
// state machine): both return nil, once the whole tree is gone.
func TestConcurrentKill(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, forwarder)
			errs := make(chan error, 2)
			for range 2 {
				go func() { errs <- p.Kill(5 * time.Second) }()
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			waitDone(t, p)
			assertGone(t, p, child)
			if err := p.Signal(syscall.SIGHUP); !errors.Is(err, os.ErrProcessDone) {
				t.Fatalf("Signal after the reap = %v, want os.ErrProcessDone", err)
			}
		})
	}
}

// A child in a session of its own, whose parent has exited, is caught (by
// the cgroup; without one by its environment tag).
func TestKillCatchesSetsidEscape(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, escaper)
			waitDone(t, p)
			waitOwnSession(t, child)
			assertHeld(t, p, child)
			killAndAssertGone(t, p, child)
		})
	}
}

// A setsid escape with a scrubbed environment is caught by parent links
// while its parent lives (and always by the cgroup).
func TestKillCatchesScrubbedEscapeOfLiveParent(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, scrubber)
			eventually(t, 5*time.Second, "the child in its own session, environment scrubbed", func() bool {
				b, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/environ")
				st, ok := readStat(child)
				return err == nil && ok && st.pgrp == child && !strings.Contains(string(b), nodeTagVar)
			})
			killAndAssertGone(t, p, child)
		})
	}
}

// The cgroup catches a setsid escape with a scrubbed environment whose
// parent has died, which nothing else can.
func TestCgroupCatchesScrubbedOrphan(t *testing.T) {
	if _, err := cgroupBase(); err != nil {
		t.Skip(err)
	}
	p, child := startScript(t, containCgroup, `setsid env -i sleep 1000 & echo $! > "$DIR/child"; exit 0`)
	waitDone(t, p)
	waitOwnSession(t, child)
	assertHeld(t, p, child)
	killAndAssertGone(t, p, child)
}

// Stop waits for the whole tree: a wrapper that exits on SIGTERM but
// leaves a child outside its process group is not a stopped node; the
// child is killed after the grace period.
func TestStopKillsWhatOutlivesTheWrapper(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, deserter)
			waitOwnSession(t, child)
			killed, err := p.Stop(300*time.Millisecond, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !killed {
				t.Fatal("Stop reported no SIGKILL, but the child outside the group ignores the stop")
			}
			waitDone(t, p)
			assertGone(t, p, child)
		})
	}
}

// A wrapper that forwards SIGTERM stops with its child, without SIGKILL.
func TestStopForwardingWrapper(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, forwarder)
			start := time.Now()
			killed, err := p.Stop(5*time.Second, 5*time.Second)
			if err != nil || killed {
				t.Fatalf("Stop = %v, %v; want a clean stop", killed, err)
			}
			t.Logf("%s: SIGTERM to an empty tree: %s", p.Containment(), time.Since(start))
			assertGone(t, p, child)
		})
	}
}

// v1freezer is a cgroup v1 freezer group: a frozen task does not act on
// SIGKILL until it is thawed, as one in uninterruptible sleep.
type v1freezer struct{ dir string }

func newV1Freezer(t *testing.T) *v1freezer {
	t.Helper()
	root := "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v1 freezer: %v", err)
	}
	dir := filepath.Join(root, fmt.Sprintf("valguard-tree-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a freezer group: %v", err)
	}
	f := &v1freezer{dir: dir}
	t.Cleanup(func() {
		f.thaw()
		for range 500 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return f
}

func (f *v1freezer) freeze(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte("FROZEN"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "frozen", func() bool {
		b, _ := os.ReadFile(filepath.Join(f.dir, "freezer.state"))
		return strings.TrimSpace(string(b)) == "FROZEN"
	})
}

func (f *v1freezer) thaw() {
	_ = os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte("THAWED"), 0o644)
}

// A member of the tree that cannot die within the bound makes Kill fail
// with ErrNotReaped naming it, even though the direct child is reaped; it
// succeeds once the member can die.
func TestKillReportsUnkillableMember(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			fz := newV1Freezer(t)
			p, child := startScript(t, m.mode, forwarder)
			fz.freeze(t, child)
			err := p.Kill(200 * time.Millisecond)
			if !errors.Is(err, ErrNotReaped) {
				t.Fatalf("Kill = %v, want ErrNotReaped", err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(child)) {
				t.Fatalf("error %q does not name pid %d", err, child)
			}
			waitDone(t, p)
			if p.Exited() {
				t.Fatal("Exited() with a frozen member of the tree")
			}
			fz.thaw()
			killAndAssertGone(t, p, child)
		})
	}
}

// A node that exits with nothing left behind is Exited, and its cgroup is
// removed.
func TestCleanExit(t *testing.T) {
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			p, child := startScript(t, m.mode, `sleep 0.1 & echo $! > "$DIR/child"; wait`)
			waitDone(t, p)
			eventually(t, 5*time.Second, "Exited", p.Exited)
			assertGone(t, p, child)
			if cg, ok := p.tree.(*cgroupTree); ok {
				if _, err := os.Stat(cg.path); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("cgroup %s not removed: %v", cg.path, err)
				}
			}
		})
	}
}

// The node cgroup is named after the node home: a restarted valguard kills
// what an earlier one left there before it starts the node, and never
// takes the cgroup of a node of the same home still running here.
func TestCgroupLeftoverOfTheSameHome(t *testing.T) {
	base, err := cgroupBase()
	if err != nil {
		t.Skip(err)
	}
	home := t.TempDir()
	dir := filepath.Join(base.dir, "valguard-node-"+homeKey(home))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	// The leftover: a node of an earlier valguard, still in the cgroup.
	old := exec.Command("sleep", "1000")
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	oldDone := make(chan struct{})
	go func() { _ = old.Wait(); close(oldDone) }()
	t.Cleanup(func() { _ = old.Process.Kill(); <-oldDone })
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(old.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("sh", "-c", "exec sleep 1000", "node", "--home", home)
	p, err := startContained(cmd, io.Discard, io.Discard, containCgroup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill(5 * time.Second) })
	if got := p.Leftovers(); len(got) != 1 || got[0] != old.Process.Pid {
		t.Fatalf("Leftovers() = %v, want [%d]", got, old.Process.Pid)
	}
	select {
	case <-oldDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the leftover was not killed")
	}
	if want := "cgroup " + dir; p.Containment() != want {
		t.Fatalf("Containment() = %q, want %q", p.Containment(), want)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.PID()))
	if err != nil || !strings.Contains(string(b), "0::"+filepath.Join(base.own, filepath.Base(dir))+"\n") {
		t.Fatalf("node not in %s: %q %v", dir, b, err)
	}

	// A second node of the same home while the first runs: its own cgroup.
	q, err := startContained(exec.Command("sh", "-c", "exec sleep 1000", "node", "--home", home), io.Discard, io.Discard, containCgroup)
	if err != nil {
		t.Fatal(err)
	}
	if q.Containment() == p.Containment() || len(q.Leftovers()) != 0 {
		t.Fatalf("second node of the home: %s, leftovers %v", q.Containment(), q.Leftovers())
	}
	if err := q.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !running(p.PID()) {
		t.Fatal("the first node was killed by the start of the second")
	}
	if err := p.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cgroup %s not removed: %v", dir, err)
	}
}

// The forced fallback says why it is one.
func TestFallbackReason(t *testing.T) {
	p, _ := startScript(t, containGroup, forwarder)
	if p.FallbackReason() == nil || p.Containment() != "process group + subreaper" {
		t.Fatalf("FallbackReason() = %v, Containment() = %q", p.FallbackReason(), p.Containment())
	}
	if _, err := cgroupBase(); err != nil {
		return
	}
	q, _ := startScript(t, containAuto, forwarder)
	if q.FallbackReason() != nil || !strings.HasPrefix(q.Containment(), "cgroup /") {
		t.Fatalf("auto mode with a usable cgroup: FallbackReason() = %v, Containment() = %q", q.FallbackReason(), q.Containment())
	}
}

func TestCgroupDir(t *testing.T) {
	const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const unified = `30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
`
	const nested = `30 23 0:26 /system.slice /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
`
	const v1only = `37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
`
	for _, tc := range []struct {
		name, mountinfo, cgroup, dir, own string
	}{
		{"hybrid root", hybrid, "6:freezer:/\n0::/\n", "/sys/fs/cgroup/unified", "/"},
		{"unified service", unified, "0::/system.slice/valguard.service\n", "/sys/fs/cgroup/system.slice/valguard.service", "/system.slice/valguard.service"},
		{"mount of a subtree", nested, "0::/system.slice/v.service\n", "/sys/fs/cgroup/v.service", "/system.slice/v.service"},
		{"outside the mounted subtree", nested, "0::/user.slice/x\n", "", ""},
		{"no cgroup2 mount", v1only, "6:freezer:/\n0::/\n", "", ""},
		{"no v2 membership", hybrid, "6:freezer:/\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, own, err := cgroupDir(tc.mountinfo, tc.cgroup)
			if tc.dir == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", dir)
				}
				return
			}
			if err != nil || dir != tc.dir || own != tc.own {
				t.Fatalf("got %q %q %v, want %q %q", dir, own, err, tc.dir, tc.own)
			}
		})
	}
}

func TestNodeHome(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cometbft", "start", "--home", "/h", "--x"}, "/h"},
		{[]string{"neard", "--home=/n", "run"}, "/n"},
		{[]string{"sleep", "600"}, ""},
		{[]string{"x", "--home"}, ""},
	} {
		if got := nodeHome(tc.args); got != tc.want {
			t.Errorf("nodeHome(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// Empty cgroups left by a valguard that no longer runs are removed; a
// recent per-home one and our own are kept.
func TestSweepStale(t *testing.T) {
	base, err := cgroupBase()
	if err != nil {
		t.Skip(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(base.dir, fmt.Sprintf("valguard-%d-1", dead.Process.Pid))
	ours := filepath.Join(base.dir, fmt.Sprintf("valguard-%d-999999", os.Getpid()))
	oldHome := filepath.Join(base.dir, "valguard-node-"+homeKey(t.TempDir()))
	newHome := filepath.Join(base.dir, "valguard-node-"+homeKey(t.TempDir()))
	for _, d := range []string{stale, ours, oldHome, newHome} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(d) })
	}
	long := time.Now().Add(-2 * staleAge)
	if err := os.Chtimes(oldHome, long, long); err != nil {
		t.Fatal(err)
	}
	sweepStale(base.dir)
	for _, d := range []string{stale, oldHome} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stale cgroup %s kept: %v", d, err)
		}
	}
	for _, d := range []string{ours, newHome} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("cgroup %s removed: %v", d, err)
		}
	}
}

// eventually polls cond every few milliseconds until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", d, what)
}
