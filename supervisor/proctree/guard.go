package proctree

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A guard kills a node's cgroup when valguard dies (S9 for the whole
// tree). Pdeathsig reaches the direct child only: when the node binary is
// a wrapper such as cosmovisor, a SIGKILLed valguard would leave the real
// node running, and signing, while a standby takes the lock after the
// session TTL.
//
// The guard is a shell, started beside the node (in valguard's own cgroup,
// in a process group of its own, without Pdeathsig), with its working
// directory the node's cgroup and its stdin the read end of a pipe whose
// write end only valguard holds (close-on-exec: neither the node nor any
// other child inherits it). It blocks in read until that pipe reaches end
// of file, which happens when valguard's last descriptor of the write end
// is closed: when valguard dies, whatever kills it, or exits. It then
// writes "1" to cgroup.kill, relative to its working directory.
//
// A cgroup written to cgroup.kill kills every process later cloned into
// it, and a per-home cgroup name is reused once the cgroup is removed.
// Two things make it impossible for a guard to kill a later node:
//   - the guard names cgroup.kill relative to its working directory, the
//     directory inode of its own node's cgroup: once that cgroup is
//     removed the write fails (ENOENT), even if a cgroup of the same name
//     has been made since (by this valguard or by the next one of the
//     home, which removes and re-creates the cgroup an earlier valguard
//     left);
//   - valguard kills and reaps the guard before it closes the pipe and
//     removes the cgroup (cgroupTree.release), so a guard never outlives
//     its node's cgroup in a live valguard, and none is leaked.
//
// The read is a shell builtin: the guard is one process, with no signal
// handlers (the signals it does not want are ignored), so nothing but
// SIGKILL ends it early, and end of file is the only wake-up.
//
// Not covered: a guard killed by someone else (it is reaped, and the tree
// is then unguarded until the node's cgroup is released); a valguard that
// is frozen rather than dead (SIGSTOP, VM pause: its descriptors stay
// open; see the residual risk in docs/design.md); the process-group
// containment, which has no guard (without a cgroup there is no single
// place to kill the tree from outside valguard).
type guard struct {
	cmd  *exec.Cmd
	w    *os.File // the write end; closing it (or dying) fires the guard
	done chan struct{}
}

// guardScript waits for end of file on stdin, then kills the cgroup that
// is its working directory. It ignores the signals a terminal or a stray
// kill sends (ignored, not handled: the read goes on), so only end of
// file or SIGKILL ends it. $0 names it in ps.
const guardScript = `trap '' HUP INT TERM QUIT USR1 USR2 ALRM PIPE ABRT; read -r _; echo 1 > cgroup.kill`

// startGuard starts the guard of the cgroup held open as dir (at path).
// It fails if the guard cannot be started or is not in that very
// directory.
func startGuard(path string, dir *os.File) (*guard, error) {
	r, w, err := os.Pipe() // pipe2(O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("guard of cgroup %s: %w", path, err)
	}
	cmd := exec.Command("/bin/sh", "-c", guardScript, "valguard-guard")
	cmd.Dir = path
	cmd.Stdin = r // dup2'd onto fd 0 of the guard only
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("guard of cgroup %s: %w", path, err)
	}
	g := &guard{cmd: cmd, w: w, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(g.done)
	}()
	if err := g.inDir(dir); err != nil {
		g.stop()
		return nil, fmt.Errorf("guard of cgroup %s: %w", path, err)
	}
	if err := g.armed(); err != nil {
		g.stop()
		return nil, fmt.Errorf("guard of cgroup %s: %w", path, err)
	}
	return g, nil
}

// guardArmBound bounds the wait for a new guard to ignore the signals it
// ignores (a shell takes a millisecond or two).
const guardArmBound = 5 * time.Second

// guardIgnored is the mask of the signals the guard ignores, as in the
// SigIgn line of /proc/<pid>/status.
const guardIgnored = 1<<(syscall.SIGHUP-1) | 1<<(syscall.SIGINT-1) | 1<<(syscall.SIGQUIT-1) | 1<<(syscall.SIGTERM-1) |
	1<<(syscall.SIGUSR1-1) | 1<<(syscall.SIGUSR2-1) | 1<<(syscall.SIGALRM-1) | 1<<(syscall.SIGPIPE-1) | 1<<(syscall.SIGABRT-1)

// armed waits until the guard has run its trap: from then on only end of
// file or SIGKILL ends it. It fails if the guard exits or takes too long.
func (g *guard) armed() error {
	status := fmt.Sprintf("/proc/%d/status", g.pid())
	deadline := time.Now().Add(guardArmBound)
	for {
		select {
		case <-g.done:
			return errors.New("the guard exited at once")
		default:
		}
		if b, err := os.ReadFile(status); err == nil {
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
					if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && m&guardIgnored == guardIgnored {
						return nil
					}
				}
			}
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("the guard did not start within %s", guardArmBound)
		}
		time.Sleep(time.Millisecond)
	}
}

// inDir checks that the guard's working directory is dir itself, not a
// cgroup made since under the same name.
func (g *guard) inDir(dir *os.File) error {
	want, err := dir.Stat()
	if err != nil {
		return err
	}
	got, err := os.Stat(fmt.Sprintf("/proc/%d/cwd", g.cmd.Process.Pid))
	if err != nil {
		return err
	}
	if !os.SameFile(want, got) {
		return errors.New("the guard's working directory is not the node's cgroup")
	}
	return nil
}

// pid is the guard's process id.
func (g *guard) pid() int { return g.cmd.Process.Pid }

// stop kills the guard (through its pidfd: never a reused pid) and waits
// until it is reaped; only then is the write end closed, so the guard
// never acts on a stop.
func (g *guard) stop() {
	_ = g.cmd.Process.Kill()
	<-g.done
	g.w.Close()
}
