package proctree

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// leftoverBound is how long Start waits for the tree left in a
// node's cgroup by an earlier valguard to die before it refuses to start.
const leftoverBound = 10 * time.Second

// cgroupNames holds the names of node cgroups this process uses, so that
// a deterministic name is never taken over from a node still running here.
var cgroupNames = struct {
	sync.Mutex
	m   map[string]bool
	seq int
}{m: map[string]bool{}}

// cgroupTree is the containment by a cgroup v2 of the node's own.
type cgroupTree struct {
	path string
	// dir is held open and files are opened relative to it, so that a
	// removed cgroup re-created under the same name is never touched.
	dir      *os.File
	name     string
	rel      string // the path /proc/<pid>/cgroup shows for members
	pgid     int    // the direct child's pid, set once it is started
	self     int
	mu       sync.Mutex
	group    pgroup
	members  map[int]uint64 // pid → start time, for reapOrphans
	guard    *guard         // kills the cgroup if valguard dies; nil if none
	released bool
}

// newCgroupTree makes a fresh node cgroup for home ("" for a name unique
// to this process). The deterministic name lets a restarted valguard find
// the tree an earlier one left behind: it is killed, its pids returned as
// leftovers, and the cgroup made anew (a cgroup once written to
// cgroup.kill kills every process later cloned into it, on kernel 6.18 at
// least, so none is reused). If the leftovers cannot be killed within
// leftoverBound the error is errLeftover and no node must be started. Any
// other error means no cgroup is usable for this node.
func newCgroupTree(home string) (t *cgroupTree, leftovers []int, err error) {
	base, err := cgroupBase()
	if err != nil {
		return nil, nil, err
	}
	name := ""
	if home != "" {
		name = "valguard-node-" + homeKey(home)
	}
	name = takeCgroupName(name)
	defer func() {
		if t == nil {
			forgetCgroupName(name)
		}
	}()
	path := filepath.Join(base.dir, name)
	if _, err := os.Stat(path); err == nil {
		if leftovers, err = killLeftover(path); err != nil {
			return nil, leftovers, err
		}
		if err := os.Remove(path); err != nil {
			// Empty but not removable (child cgroups of its own?): leave
			// it and use a name of our own.
			forgetCgroupName(name)
			name = takeCgroupName("")
			path = filepath.Join(base.dir, name)
		}
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, leftovers, fmt.Errorf("cannot create cgroup %s: %w", path, err)
	}
	dir, err := os.Open(path)
	if err != nil {
		_ = os.Remove(path)
		return nil, leftovers, err
	}
	t = &cgroupTree{path: path, dir: dir, name: name, rel: filepath.Join(base.own, name), self: os.Getpid(), members: map[int]uint64{}}
	return t, leftovers, nil
}

// killLeftover kills what an earlier valguard left in the cgroup at path
// and returns its pids.
func killLeftover(path string) ([]int, error) {
	dir, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	t := &cgroupTree{path: path, dir: dir, members: map[int]uint64{}}
	populated, err := t.populated()
	if err != nil || !populated {
		return nil, err
	}
	leftovers := t.procs()
	for deadline := time.Now().Add(leftoverBound); populated && time.Now().Before(deadline); {
		t.kill(true)
		time.Sleep(5 * time.Millisecond)
		if populated, err = t.populated(); err != nil {
			return leftovers, err
		}
	}
	if populated {
		return leftovers, fmt.Errorf("%w: cgroup %s still holds pids %v after %s", errLeftover, path, t.procs(), leftoverBound)
	}
	return leftovers, nil
}

// takeCgroupName reserves name, or a name unique to this process if name
// is "" or taken by a node still running here.
func takeCgroupName(name string) string {
	cgroupNames.Lock()
	defer cgroupNames.Unlock()
	if name == "" || cgroupNames.m[name] {
		cgroupNames.seq++
		name = fmt.Sprintf("valguard-%d-%d", os.Getpid(), cgroupNames.seq)
	}
	cgroupNames.m[name] = true
	return name
}

// errLeftover means a node's cgroup holds processes left by an earlier
// valguard that could not be killed.
var errLeftover = errors.New("processes left by an earlier node in its cgroup could not be killed")

func forgetCgroupName(name string) {
	cgroupNames.Lock()
	delete(cgroupNames.m, name)
	cgroupNames.Unlock()
}

func (c *cgroupTree) String() string { return "cgroup " + c.path }

// fd is what SysProcAttr.CgroupFD wants.
func (c *cgroupTree) fd() int { return int(c.dir.Fd()) }

func (c *cgroupTree) read(name string) ([]byte, error) {
	fd, err := syscall.Openat(int(c.dir.Fd()), name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(c.path, name), Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}

func (c *cgroupTree) populated() (bool, error) {
	b, err := c.read("cgroup.events")
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "populated "); ok {
			return v != "0", nil
		}
	}
	return false, fmt.Errorf("no populated line in %s/cgroup.events", c.path)
}

func (c *cgroupTree) procs() []int {
	b, _ := c.read("cgroup.procs")
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c *cgroupTree) terminate(sig syscall.Signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.released && c.group.signal(sig)
}

func (c *cgroupTree) kill(bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	c.record(c.procs())
	fd, err := syscall.Openat(int(c.dir.Fd()), "cgroup.kill", syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_, _ = syscall.Write(fd, []byte("1"))
	syscall.Close(fd)
}

func (c *cgroupTree) alive(childReaped bool) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return nil
	}
	if populated, err := c.populated(); err == nil && !populated {
		c.reapOrphans()
		return nil
	}
	var pids []int
	procs := c.procs()
	c.record(procs)
	for _, pid := range procs {
		if pid == c.pgid && !childReaped {
			continue // the caller waits for the direct child
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 && childReaped {
		// Populated (or unreadable) with no process listed: exiting tasks
		// not yet gone; the next look decides.
		pids = append(pids, 0)
	}
	return sortedPids(pids)
}

// reapOrphans reaps the tree's orphans reparented to us (only if we are a
// subreaper, when some node was once not in a cgroup); c.mu is held. An
// exiting task leaves cgroup.procs and the populated count before it is a
// zombie, and one whose parent is a dying member of the tree is reparented
// to us only once that parent is gone: the members seen in cgroup.procs
// earlier (and any zombie whose /proc/<pid>/cgroup names the cgroup) are
// waited for, by pid, for a moment.
func (c *cgroupTree) reapOrphans() {
	if !subreaperOn.Load() {
		return
	}
	want := "0::" + c.rel
	for _, st := range allProcs() {
		if st.pid == c.pgid || (st.ppid != c.self && st.state != 'Z') {
			continue
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(st.pid) + "/cgroup"); err == nil &&
			slices.Contains(strings.Split(string(b), "\n"), want) {
			c.members[st.pid] = st.start
		}
	}
	for range 100 {
		for pid, start := range c.members {
			st, ok := readStat(pid)
			if !ok || st.start != start {
				delete(c.members, pid)
				continue
			}
			if st.ppid == c.self {
				var ws syscall.WaitStatus
				if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid || err != nil {
					delete(c.members, pid)
				}
			}
		}
		if len(c.members) == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// record remembers the pids now in cgroup.procs (other than the direct
// child), for reapOrphans; c.mu is held.
func (c *cgroupTree) record(pids []int) {
	if !subreaperOn.Load() {
		return
	}
	for _, pid := range pids {
		if _, seen := c.members[pid]; !seen && pid != c.pgid {
			if st, ok := readStat(pid); ok {
				c.members[pid] = st.start
			}
		}
	}
}

func (c *cgroupTree) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	c.released = true
	if c.guard != nil {
		// Reaped before the cgroup goes: no guard outlives its cgroup.
		c.guard.stop()
	}
	for i := 0; i < 100; i++ {
		err := os.Remove(c.path)
		if err == nil || errors.Is(err, os.ErrNotExist) || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.dir.Close()
	forgetCgroupName(c.name)
}
