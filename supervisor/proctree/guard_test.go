package proctree

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// miniVar switches TestGuardMiniSupervisor on: its value is the directory
// where the mini supervisor reports what it started.
const miniVar = "VALGUARD_TEST_MINI_SUPERVISOR"

// TestGuardMiniSupervisor is not a test of its own: run by
// TestGuardKillsTreeWhenValguardDies in a process of its own, it is a
// valguard that starts a cosmovisor-shaped node in a cgroup, reports the
// pids and the cgroup, and waits to be SIGKILLed.
func TestGuardMiniSupervisor(t *testing.T) {
	dir := os.Getenv(miniVar)
	if dir == "" {
		t.Skip("run by TestGuardKillsTreeWhenValguardDies")
	}
	cmd := exec.Command("sh", "-c", forwarder, "node")
	cmd.Env = append(os.Environ(), "DIR="+dir)
	p, err := startContained(cmd, nil, nil, containCgroup)
	if err != nil {
		t.Fatal(err)
	}
	cg := p.tree.(*cgroupTree)
	report := fmt.Sprintf("%d %d %s\n", p.PID(), cg.guard.pid(), cg.path)
	if err := os.WriteFile(filepath.Join(dir, "report"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
	t.Fatal("not killed")
}

// A SIGKILLed valguard takes its node's whole tree with it: the child of
// a wrapper, which Pdeathsig does not reach, dies within a moment, killed
// by the guard, and the guard goes too.
func TestGuardKillsTreeWhenValguardDies(t *testing.T) {
	if _, err := cgroupBase(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	mini := exec.Command(os.Args[0], "-test.run=^TestGuardMiniSupervisor$", "-test.count=1")
	mini.Env = append(os.Environ(), miniVar+"="+dir)
	var out bytes.Buffer
	mini.Stdout, mini.Stderr = &out, &out
	if err := mini.Start(); err != nil {
		t.Fatal(err)
	}
	miniDone := make(chan struct{})
	go func() { _ = mini.Wait(); close(miniDone) }()
	t.Cleanup(func() { _ = mini.Process.Kill(); <-miniDone })

	var wrapper, guardPid, child int
	var cgPath string
	eventually(t, 10*time.Second, "the mini supervisor's report", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "report"))
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		_, err = fmt.Sscanf(string(b), "%d %d %s", &wrapper, &guardPid, &cgPath)
		return err == nil
	})
	eventually(t, 5*time.Second, "the wrapper's child pid", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "child"))
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() {
		// Without the guard (a failing run), leave nothing behind.
		_ = os.WriteFile(filepath.Join(cgPath, "cgroup.kill"), []byte("1"), 0o644)
		for range 200 {
			if err := os.Remove(cgPath); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, pid := range []int{wrapper, child, guardPid} {
			if st, ok := readStat(pid); ok {
				reapZombie(st, os.Getpid())
			}
		}
	})
	for _, pid := range []int{wrapper, child, guardPid} {
		if !running(pid) {
			t.Fatalf("pid %d not running before the kill; mini supervisor said:\n%s", pid, out.String())
		}
	}

	if err := mini.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	deadline := killed.Add(2 * time.Second)
	for running(child) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if running(child) {
		t.Fatalf("the wrapper's child %d still runs %s after its valguard was SIGKILLed", child, time.Since(killed))
	}
	t.Logf("the wrapper's child died %s after its valguard was SIGKILLed", time.Since(killed))
	eventually(t, 2*time.Second, "the cgroup empty", func() bool {
		b, err := os.ReadFile(filepath.Join(cgPath, "cgroup.events"))
		return errors.Is(err, os.ErrNotExist) || err == nil && bytes.Contains(b, []byte("populated 0\n"))
	})
	eventually(t, 2*time.Second, "the guard gone", func() bool { return !running(guardPid) })
	if running(wrapper) {
		t.Fatalf("the wrapper %d still runs", wrapper)
	}
}

// guards lists the guards that are children of this process.
func guards(t *testing.T) []int {
	t.Helper()
	var pids []int
	for _, st := range allProcs() {
		if st.ppid != os.Getpid() || st.state == 'Z' {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(st.pid) + "/cmdline")
		if err == nil && bytes.Contains(b, []byte("\x00valguard-guard")) {
			pids = append(pids, st.pid)
		}
	}
	return pids
}

// Every way a node ends in a live valguard (Kill, Stop, a clean exit seen
// by Exited) kills and reaps its guard: none is leaked, none is left to
// fire later.
func TestGuardReapedWithItsNode(t *testing.T) {
	if _, err := cgroupBase(); err != nil {
		t.Skip(err)
	}
	if n := len(guards(t)); n != 0 {
		t.Fatalf("%d guards before the test", n)
	}
	kill, _ := startScript(t, containCgroup, forwarder)
	stop, _ := startScript(t, containCgroup, forwarder)
	exit, _ := startScript(t, containCgroup, `sleep 0.1 & echo $! > "$DIR/child"; wait`)
	var pids []int
	for _, p := range []*Process{kill, stop, exit} {
		pids = append(pids, p.tree.(*cgroupTree).guard.pid())
	}
	if got := guards(t); len(got) != 3 {
		t.Fatalf("guards %v, want 3: %v", got, pids)
	}
	if err := kill.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := stop.Stop(5*time.Second, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitDone(t, exit)
	eventually(t, 5*time.Second, "Exited", exit.Exited)
	if got := guards(t); len(got) != 0 {
		t.Fatalf("guards left: %v", got)
	}
	for _, pid := range pids {
		if !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			t.Fatalf("guard %d not reaped", pid)
		}
	}
}

// A node whose start fails leaves no guard.
func TestGuardOfAFailedStart(t *testing.T) {
	if _, err := cgroupBase(); err != nil {
		t.Skip(err)
	}
	if _, err := startContained(exec.Command("/no/such/node"), nil, nil, containCgroup); err == nil {
		t.Fatal("started a node that does not exist")
	}
	if got := guards(t); len(got) != 0 {
		t.Fatalf("guards left: %v", got)
	}
}

// A guard that fires late never touches a cgroup made since under the
// same name: it writes cgroup.kill in the directory it was started in.
func TestGuardSparesACgroupOfTheSameName(t *testing.T) {
	base, err := cgroupBase()
	if err != nil {
		t.Skip(err)
	}
	path := filepath.Join(base.dir, "valguard-node-"+homeKey(t.TempDir()))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	d, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := startGuard(path, d)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	d2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	later := exec.Command("sleep", "1000")
	later.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d2.Fd())}
	if err := later.Start(); err != nil {
		t.Fatal(err)
	}
	laterDone := make(chan struct{})
	go func() { _ = later.Wait(); close(laterDone) }()
	t.Cleanup(func() { _ = later.Process.Kill(); <-laterDone })

	g.w.Close() // as if valguard died
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the guard did not fire on end of file")
	}
	select {
	case <-laterDone:
		t.Fatal("the guard killed a later cgroup of the same name")
	case <-time.After(100 * time.Millisecond):
	}
	if !running(later.Process.Pid) {
		t.Fatal("the later process does not run")
	}
}

// Signals a terminal or a stray kill sends do not end the guard; it
// fires only when valguard's end of the pipe closes.
func TestGuardIgnoresStraySignals(t *testing.T) {
	if _, err := cgroupBase(); err != nil {
		t.Skip(err)
	}
	p, child := startScript(t, containCgroup, forwarder)
	g := p.tree.(*cgroupTree).guard // armed: startGuard waited for it
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGALRM, syscall.SIGPIPE, syscall.SIGABRT, syscall.SIGCHLD, syscall.SIGWINCH, syscall.SIGCONT} {
		if err := syscall.Kill(g.pid(), sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if !running(g.pid()) || !running(child) {
		t.Fatalf("after stray signals: guard running %v, node's child running %v", running(g.pid()), running(child))
	}
}
