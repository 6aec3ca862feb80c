package proctree

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// subreaper makes this process a child subreaper, once: orphans of a node
// tree are then reparented to valguard instead of init, so they stay
// visible by parent links and valguard can reap them.
var subreaper = sync.OnceValue(func() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", errno)
	}
	subreaperOn.Store(true)
	return nil
})

// subreaperOn is whether subreaper succeeded.
var subreaperOn atomic.Bool

// groupTree is the containment where no cgroup v2 is usable: the process
// group, the environment tag and parent links (see the comment on
// containment for what it catches).
type groupTree struct {
	pgid int    // the direct child's pid and process group
	self int    // our pid
	tag  []byte // NAME=value, as in /proc/<pid>/environ

	mu       sync.Mutex
	group    pgroup
	known    map[int]uint64 // members seen so far: pid → start time
	released bool
}

func newGroupTree(pgid int, tag string) *groupTree {
	return &groupTree{pgid: pgid, self: os.Getpid(), tag: []byte(tag), group: pgroup{pgid: pgid}, known: map[int]uint64{}}
}

func (g *groupTree) String() string { return "process group + subreaper" }

// scan walks /proc and returns the tree's processes other than the direct
// child, recording them; g.mu must be held.
func (g *groupTree) scan(childReaped bool) []procStat {
	procs := allProcs()
	byPid := make(map[int]procStat, len(procs))
	for _, st := range procs {
		byPid[st.pid] = st
	}
	member := map[int]bool{}
	if !childReaped {
		member[g.pgid] = true // a root of the parent walk, not a result
	}
	for _, st := range procs {
		if st.pid == g.pgid {
			continue
		}
		switch start, seen := g.known[st.pid]; {
		case seen && start == st.start, st.pgrp == g.pgid && !g.group.gone:
			member[st.pid] = true
		case st.state != 'Z' && hasTag(st.pid, g.tag):
			member[st.pid] = true
		}
	}
	// Descendants of members, to a fixed point.
	for grown := true; grown; {
		grown = false
		for _, st := range procs {
			if !member[st.pid] && st.pid != g.pgid && member[st.ppid] {
				member[st.pid] = true
				grown = true
			}
		}
	}
	var out []procStat
	known := map[int]uint64{}
	for pid := range member {
		if pid == g.pgid {
			continue
		}
		st := byPid[pid]
		known[pid] = st.start
		out = append(out, st)
	}
	g.known = known
	return out
}

func (g *groupTree) terminate(sig syscall.Signal) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.released && g.group.signal(sig)
}

func (g *groupTree) kill(childReaped bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.released {
		return
	}
	// Find the members first, while their parent links still hold; then
	// kill the group, then the members outside it.
	members := g.scan(childReaped)
	g.group.signal(syscall.SIGKILL)
	for _, st := range members {
		if st.state != 'Z' && st.pgrp != g.pgid {
			killExact(st.pid, st.start, syscall.SIGKILL)
		}
	}
}

func (g *groupTree) alive(childReaped bool) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var pids []int
	for _, st := range g.scan(childReaped) {
		if reapZombie(st, g.self) {
			delete(g.known, st.pid)
			continue
		}
		// A zombie outside the group is dead and not ours to reap (its
		// parent will); one inside it still counts, as in kill(-pgid, 0).
		if st.state == 'Z' && st.pgrp != g.pgid {
			continue
		}
		pids = append(pids, st.pid)
	}
	if len(pids) == 0 && childReaped && !g.group.empty() {
		// A member the scan has not seen yet (a race with a fork).
		pids = append(pids, 0)
	}
	return sortedPids(pids)
}

func (g *groupTree) release() {
	g.mu.Lock()
	g.released = true
	g.mu.Unlock()
}
