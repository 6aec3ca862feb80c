package proctree

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Where node cgroups are made: under our own cgroup v2, found from
// /proc/self, probed once, and swept of what killed valguards left.

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
