package supervisor

import (
	"bufio"
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

// leftoverBound is how long startProcess waits for the tree left in a
// node's cgroup by an earlier valguard to die before it refuses to start.
const leftoverBound = 10 * time.Second

// cgroupBase is the cgroup v2 directory under which node cgroups are made:
// our own cgroup. It is found and tried once per process; the error says
// why no cgroup can be used.
var cgroupBase = sync.OnceValues(func() (cgroupPlace, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cgroupPlace{}, err
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cgroupPlace{}, err
	}
	dir, own, err := cgroupDir(string(mi), string(cg))
	if err != nil {
		return cgroupPlace{}, err
	}
	if err := probeCgroup(dir); err != nil {
		return cgroupPlace{}, err
	}
	sweepStale(dir)
	return cgroupPlace{dir: dir, own: own}, nil
})

// sweepStale removes empty node cgroups left by valguards that were
// killed: those named after a valguard pid that no longer runs, and
// per-home ones made more than staleAge ago (a live valguard's node keeps
// its cgroup populated, and an empty one is removed by its owner at
// once). A populated cgroup cannot be removed and is left alone: the next
// valguard of that home kills what is in it.
func sweepStale(base string) {
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(base, e.Name())
		var pid, seq int
		if _, err := fmt.Sscanf(e.Name(), "valguard-%d-%d", &pid, &seq); err == nil {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil && pid != os.Getpid() {
				_ = os.Remove(path)
			}
			continue
		}
		if strings.HasPrefix(e.Name(), "valguard-node-") {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAge {
				_ = os.Remove(path)
			}
		}
	}
}

// staleAge is the age past which an empty per-home cgroup is stale.
const staleAge = time.Minute

// cgroupPlace is our own cgroup: its directory, and its path as
// /proc/<pid>/cgroup shows it.
type cgroupPlace struct{ dir, own string }

// cgroupDir finds our own cgroup v2 directory and path from
// /proc/self/mountinfo and /proc/self/cgroup.
func cgroupDir(mountinfo, cgroup string) (dir, own string, err error) {
	found := false
	for line := range strings.Lines(cgroup) {
		if p, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "0::"); ok {
			own, found = p, true
		}
	}
	if !found {
		return "", "", errors.New(`no cgroup v2 membership ("0::") in /proc/self/cgroup`)
	}
	if strings.HasSuffix(own, " (deleted)") || !strings.HasPrefix(own, "/") {
		return "", "", fmt.Errorf("our cgroup %q is not usable", own)
	}
	sc := bufio.NewScanner(strings.NewReader(mountinfo))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		rf, lf := strings.Fields(right), strings.Fields(left)
		if len(rf) < 1 || rf[0] != "cgroup2" || len(lf) < 5 {
			continue
		}
		root, mnt := unescapeMount(lf[3]), unescapeMount(lf[4])
		rel, ok := strings.CutPrefix(own, root)
		if root == "/" {
			rel, ok = own, true
		}
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		return filepath.Join(mnt, rel), own, nil
	}
	return "", "", errors.New("no cgroup2 mount holding our cgroup in /proc/self/mountinfo")
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// probeCgroup checks that a child cgroup of base can be made, has
// cgroup.kill and cgroup.events, and that a process can be started inside
// it: it forks into a probe cgroup and execs a path that does not exist,
// so that ENOENT (from exec, after the clone succeeded) means yes.
func probeCgroup(base string) error {
	dir := filepath.Join(base, fmt.Sprintf("valguard-probe-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create a cgroup under %s: %w", base, err)
	}
	defer os.Remove(dir)
	for _, f := range []string{"cgroup.kill", "cgroup.events"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("cgroup %s has no %s (a kernel before 5.14?): %w", dir, f, err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_, err = syscall.ForkExec(filepath.Join(dir, "no-such-program"), nil, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d.Fd())},
	})
	if !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("cannot start a process inside cgroup %s: %v", dir, err)
	}
	return nil
}

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
