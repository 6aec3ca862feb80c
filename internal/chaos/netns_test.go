package chaos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// needsRoot skips a test that creates namespaces, links and mounts when
// it cannot.
func needsRoot(t *testing.T) {
	t.Helper()
	if err := Tools(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// listenIn listens on addr inside namespace ns: the socket is made on a
// thread moved into ns and back.
func listenIn(ns, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer origin.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if serr := netns.Set(origin); serr != nil {
			ch <- result{nil, serr}
			return // the thread stays locked and ends with the goroutine
		}
		runtime.UnlockOSThread()
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// serve answers every connection to ln with "ok".
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("ok"))
		_ = c.Close()
	}
}

// reach dials addr once and reads the answer.
func reach(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil {
		return err
	}
	if string(b) != "ok" {
		return fmt.Errorf("read %q", b)
	}
	return nil
}

// eventually waits up to 5 s for reach(addr) to give want (reachable or
// not); a bridge port takes a moment to forward after it comes up.
func eventually(t *testing.T, addr string, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := reach(addr)
		if (err == nil) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reachable=%t after 5 s, want %t (%v)", addr, err == nil, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func TestNetworkHostsLinksAndClose(t *testing.T) {
	needsRoot(t)
	ctx := context.Background()
	before, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	ns, err := n.AddHost(ctx, "r0", 10, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := n.Prefix + "-r0"; ns != want {
		t.Fatalf("namespace %q, want %q", ns, want)
	}
	cns, err := n.AddHost(ctx, "c0", 20, false, true)
	if err != nil {
		t.Fatal(err)
	}
	// Creating namespaces leaves every thread of this process in its own.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if fi, err := os.Stat("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && !os.SameFile(fi, before) {
			t.Fatalf("thread %s was left in another network namespace", task.Name())
		}
	}
	for _, l := range []string{n.Prefix + "bc", n.Prefix + "bk", n.Prefix + "r0c", n.Prefix + "r0k", n.Prefix + "c0k"} {
		if !linkExists(l) {
			t.Errorf("link %s missing", l)
		}
	}
	if linkExists(n.Prefix + "c0c") {
		t.Errorf("host c0 got a chain veth it did not ask for")
	}
	hl, err := netlink.LinkByName(n.Prefix + "r0c")
	if err != nil {
		t.Fatal(err)
	}
	bl, err := netlink.LinkByName(n.Prefix + "bc")
	if err != nil {
		t.Fatal(err)
	}
	if hl.Attrs().MasterIndex != bl.Attrs().Index {
		t.Errorf("%s is not on bridge %s", n.Prefix+"r0c", n.Prefix+"bc")
	}

	// Root to host over both bridges, host to root, host to host.
	for _, l := range []struct{ ns, addr string }{{ns, n.ChainIP(10)}, {ns, n.ConsulIP(10)}, {cns, n.ConsulIP(20)}, {ns, "127.0.0.1"}} {
		ln, err := listenIn(l.ns, l.addr+":0")
		if err != nil {
			t.Fatalf("listen in %s on %s: %v", l.ns, l.addr, err)
		}
		defer ln.Close()
		go serve(ln)
		if l.addr == "127.0.0.1" {
			continue // loopback in the namespace: reached from inside below
		}
		eventually(t, ln.Addr().String(), true)
	}
	root, err := net.Listen("tcp", n.ChainIP(1)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	go serve(root)
	// From inside the namespace to the root namespace over the chain
	// bridge (bash's /dev/tcp: no other tool needed).
	if _, err := exec.LookPath("bash"); err == nil {
		port := root.Addr().(*net.TCPAddr).Port
		out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "bash", "-c",
			"exec 3<>/dev/tcp/"+n.ChainIP(1)+"/"+strconv.Itoa(port)+" && head -c2 <&3").CombinedOutput()
		if err != nil || string(out) != "ok" {
			t.Errorf("from %s to the root namespace: %q (%v)", ns, out, err)
		}
	}

	// SetLink cuts host r0 off the chain bridge and back, not off Consul.
	chainLn, err := listenIn(ns, n.ChainIP(10)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer chainLn.Close()
	go serve(chainLn)
	consulLn, err := listenIn(ns, n.ConsulIP(10)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer consulLn.Close()
	go serve(consulLn)
	if err := n.SetLink(ctx, "r0", "c", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, chainLn.Addr().String(), false)
	eventually(t, consulLn.Addr().String(), true)
	if err := n.SetLink(ctx, "r0", "c", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, chainLn.Addr().String(), true)

	// NSPids sees a process in the namespace and only there; KillNS
	// kills it.
	sleeper := exec.Command("nsenter", "--net=/run/netns/"+ns, "--", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	defer func() { _ = sleeper.Process.Kill() }()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(NSPids(ns), sleeper.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("NSPids(%s) = %v, want it to hold %d", ns, NSPids(ns), sleeper.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if slices.Contains(NSPids(cns), sleeper.Process.Pid) {
		t.Fatalf("NSPids(%s) holds a process of %s", cns, ns)
	}
	if slices.Contains(NSPids(cns), os.Getpid()) {
		t.Fatal("NSPids lists the test process, which is in the root namespace")
	}
	KillNS(ns)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("KillNS left the process running")
	}
	if NSPids(n.Prefix+"-nosuch") != nil {
		t.Fatal("NSPids of a missing namespace is not empty")
	}

	mnt := filepath.Join(t.TempDir(), "home")
	if err := n.Mount(ctx, mnt, 1<<20); err != nil {
		t.Fatal(err)
	}

	n.Close()
	for _, name := range []string{ns, cns} {
		if _, err := os.Lstat(filepath.Join("/run/netns", name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("namespace %s left after Close (%v)", name, err)
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, n.Prefix) {
			t.Errorf("link %s left after Close", l.Attrs().Name)
		}
	}
	if mounted(t, mnt) {
		t.Errorf("tmpfs on %s left after Close", mnt)
	}
	if _, err := os.Stat(filepath.Join(runDir, n.Prefix+".pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run file left after Close (%v)", err)
	}
	n.Close() // a second Close is harmless
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func TestSweepRemovesDeadRunsOnly(t *testing.T) {
	needsRoot(t)
	ctx := context.Background()
	dead, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	deadNS, err := dead.AddHost(ctx, "r0", 10, true, true)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "home")
	if err := dead.Mount(ctx, mnt, 1<<20); err != nil {
		t.Fatal(err)
	}
	live, err := NewNetwork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Close)
	liveNS, err := live.AddHost(ctx, "r0", 10, true, false)
	if err != nil {
		t.Fatal(err)
	}
	// The dead run's file names a process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runDir, dead.Prefix+".pid"), []byte(strconv.Itoa(gone.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	Sweep(ctx)

	if _, err := os.Lstat(filepath.Join("/run/netns", deadNS)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dead run's namespace %s not swept (%v)", deadNS, err)
	}
	for _, l := range []string{dead.Prefix + "bc", dead.Prefix + "bk", dead.Prefix + "r0c", dead.Prefix + "r0k"} {
		if linkExists(l) {
			t.Errorf("dead run's link %s not swept", l)
		}
	}
	if mounted(t, mnt) {
		t.Errorf("dead run's tmpfs on %s not swept", mnt)
	}
	if _, err := os.Stat(filepath.Join(runDir, dead.Prefix+".pid")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dead run's file not swept (%v)", err)
	}
	if _, err := os.Lstat(filepath.Join("/run/netns", liveNS)); err != nil {
		t.Errorf("live run's namespace %s swept: %v", liveNS, err)
	}
	for _, l := range []string{live.Prefix + "bc", live.Prefix + "r0c"} {
		if !linkExists(l) {
			t.Errorf("live run's link %s swept", l)
		}
	}
}
