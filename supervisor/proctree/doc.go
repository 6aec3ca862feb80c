// Package proctree starts a node as a child process and holds its whole
// process tree: it is started contained, signalled as one, killed as one
// and known to have exited only when every process of it has (DESIGN
// S9, S10). It knows nothing of roles, keys or leases: the supervisor
// decides when a node starts and stops; this package makes "stopped" true.
//
// # Contract
//
//   - [Start] starts the command in a process group of its own, with
//     Pdeathsig SIGKILL (S9), and contains its whole tree (S10) in a cgroup
//     v2 of its own where the system has one, otherwise by process group,
//     environment tag and child subreaper. In a cgroup the node starts only
//     with a guard that kills the cgroup when valguard dies; no guard, no
//     node.
//   - The direct child is reaped exactly once, by a goroutine of its own
//     ([Process.Done] is closed then).
//   - [Process.Exited], and a nil error from [Process.Kill] or
//     [Process.Stop], mean the direct child is reaped and the rest of the
//     tree is gone. A tree that outlives SIGKILL and the bound given makes
//     Kill fail with [ErrNotReaped], naming the pids still alive: the node
//     must then be treated as running.
//   - Nothing is signalled on behalf of a node that has gone: its process
//     group once seen empty, its pids (pinned by pidfd, checked by start
//     time) and its cgroup, once released, are never touched again.
//
// # The process tree
//
// A node's process tree is every process the node started: the direct
// child (a wrapper such as cosmovisor, or the node itself) and everything
// it forked, at any depth, including processes that left its process group
// or session. "The node has exited" means all of them have (S10). A
// containment is how one node's tree is found and killed; there are two:
//
// cgroup (cgroupTree): the direct child is started inside a cgroup v2 of
// its own (clone3 with CLONE_INTO_CGROUP, so nothing runs outside it, not
// even for an instant), killed with cgroup.kill and known to be gone when
// cgroup.events says "populated 0". Every descendant is caught, whatever
// it does: setsid, double fork, a scrubbed environment, a changed process
// group. Only a process with the privilege to move itself (or to be moved)
// into another cgroup escapes, and a node does not do that. The cgroup is
// named after the node home of the command's --home argument, so that a
// restarted valguard kills the tree an earlier one left there
// ([Process.Leftovers]).
//
// process group + subreaper (groupTree), where no cgroup v2 is usable
// ([Process.FallbackReason] says why): valguard makes itself a child
// subreaper, so that orphans of the tree are reparented to valguard rather
// than to init, and the tree is:
//   - every process in the node's process group (caught by kill(-pgid));
//   - every process whose environment carries the node's VALGUARD_NODE_TAG
//     (it is inherited, so a setsid escape is caught as long as it keeps
//     the environment it was given);
//   - every descendant, by parent links in /proc, of the direct child or of
//     a process already found, and every process once found (by pid and
//     start time, so that a reused pid is not mistaken for it).
//
// # Not guaranteed
//
// In the process-group mode, a process that left the group and the
// session, scrubbed its environment (env -i, execve with a new
// environment), and whose parent in the tree had died before valguard last
// looked is not caught (the parent link is then gone: it was reparented to
// valguard with nothing left to tie it to the node). valguard looks when
// it kills, stops or asks whether the tree has exited, and on every poll
// while it waits.
//
// In both modes, a process of the tree that is frozen (cgroup v1 freezer)
// or in uninterruptible sleep outlives SIGKILL: the kill then reports
// ErrNotReaped, naming it, and the node is not "exited".
//
// When valguard itself dies, Pdeathsig reaches the direct child only. In
// the cgroup mode a guard (see guard) kills the node's cgroup as soon as
// valguard is gone, whatever killed it, so the child of a wrapper dies
// too; and the next valguard of the same node home kills what is left in
// the home's cgroup before it starts a node. The process-group mode has
// no guard: there the child of a wrapper outlives a SIGKILLed valguard,
// and systemd's KillMode=control-group is the only cover.
//
// Time here is the real, monotonic clock: the bounds given to Kill and
// Stop are waits for real processes to die, which no fake clock can
// shorten.
//
// # Kernel behaviour relied on
//
// Checked on 6.18: an exiting task leaves cgroup.procs and the populated
// count once it is past running user code, before it is a zombie, so
// "populated 0" means no process of the tree can act any more; zombies are
// in neither. kill(-pgid, 0) does count zombies, so the group mode reaps
// its own before it looks. A cgroup written to cgroup.kill kills every
// process later cloned into it, so a node cgroup is never reused: it is
// removed and made anew.
package proctree
