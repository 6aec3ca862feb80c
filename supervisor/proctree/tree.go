package proctree

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// nodeTagVar is the environment variable that marks a node's processes.
const nodeTagVar = "VALGUARD_NODE_TAG"

// containment finds and kills one node's process tree (the package doc
// says what each of the two catches). Its methods are safe
// for concurrent use; after release, kill and terminate do nothing, so
// that nothing is ever signalled on behalf of a node that has gone (its
// pids and its cgroup name may by then belong to another node).
type containment interface {
	// terminate sends sig to the node's process group; false if the group
	// is gone.
	terminate(sig syscall.Signal) bool
	// kill sends SIGKILL to every process of the tree valguard can find.
	kill(childReaped bool)
	// alive lists the tree's processes other than the direct child (which
	// the caller waits for itself), after reaping the tree's zombies that
	// are valguard's own children. Empty means the rest of the tree is
	// gone.
	alive(childReaped bool) []int
	// release frees what the containment holds (the cgroup); it is called
	// once, when the whole tree is gone.
	release()
	// String describes the containment for logs.
	String() string
}

// procStat is what /proc/<pid>/stat says about a process.
type procStat struct {
	pid, ppid, pgrp int
	state           byte
	start           uint64 // start time in clock ticks after boot
}

// readStat reads /proc/<pid>/stat; ok is false if the process is gone.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	return parseStat(pid, b)
}

func parseStat(pid int, b []byte) (procStat, bool) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice threads
	// itrealvalue starttime ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{pid: pid, ppid: ppid, pgrp: pgrp, state: f[0][0], start: start}, true
}

// allProcs reads the stat of every process in /proc.
func allProcs() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]procStat, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			out = append(out, st)
		}
	}
	return out
}

// hasTag reports whether the process's initial environment carries tag.
func hasTag(pid int, tag []byte) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if bytes.Equal(kv, tag) {
			return true
		}
	}
	return false
}

// pidfd system calls; the numbers are the same on every Linux architecture.
const (
	sysPidfdSendSignal = 424
	sysPidfdOpen       = 434
)

// killExact sends sig to pid only if it is still the process that started
// at start: the pid is pinned with a pidfd first, so a pid reused by an
// unrelated process is never signalled.
func killExact(pid int, start uint64, sig syscall.Signal) {
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if errno != 0 {
		return
	}
	defer syscall.Close(int(fd))
	if st, ok := readStat(pid); !ok || st.start != start {
		return
	}
	_, _, _ = syscall.Syscall6(sysPidfdSendSignal, fd, uintptr(sig), 0, 0, 0, 0)
}

// reapZombie reaps pid if it is a zombie child of this process (an orphan
// of a node tree reparented to the subreaper). It waits for that pid only,
// never for any child: wait4(-1) would steal the reap of another node's
// direct child from its cmd.Wait.
func reapZombie(st procStat, self int) bool {
	if st.state != 'Z' || st.ppid != self {
		return false
	}
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(st.pid, &ws, syscall.WNOHANG, nil)
	return err == nil && got == st.pid
}

// pgroup is a node's process group, signalled until it is seen empty:
// after that its number may be reused by another group, which must never
// be signalled. Its owner serialises the calls.
type pgroup struct {
	pgid int
	gone bool
}

// signal sends sig to the group; false if the group is gone.
func (g *pgroup) signal(sig syscall.Signal) bool {
	if g.gone || g.pgid <= 0 {
		return false
	}
	err := syscall.Kill(-g.pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		g.gone = true
	}
	return err == nil
}

// empty reports whether the group is gone (zombies count as members).
func (g *pgroup) empty() bool {
	if !g.gone && g.pgid > 0 && !groupAlive(g.pgid) {
		g.gone = true
	}
	return g.gone
}

// groupAlive reports whether any process (a zombie too) is in group pgid.
func groupAlive(pgid int) bool {
	return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// newTag is a fresh VALGUARD_NODE_TAG=<random> environment entry.
func newTag() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return nodeTagVar + "=" + hex.EncodeToString(b[:])
}

// nodeHome is the node home named by the command's --home argument (both
// the CometBFT and the NEAR adapter pass one), "" if none.
func nodeHome(args []string) string {
	for i, a := range args {
		for _, f := range []string{"--home", "-home"} {
			if a == f && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v
			}
		}
	}
	return ""
}

// homeKey is a short, stable name for a node home.
func homeKey(home string) string {
	if abs, err := filepath.Abs(home); err == nil {
		home = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(home)))
	return hex.EncodeToString(sum[:8])
}

// sortedPids returns pids sorted, for messages.
func sortedPids(pids []int) []int {
	slices.Sort(pids)
	return pids
}
