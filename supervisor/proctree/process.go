package proctree

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is a started node: the direct child, in its own process group,
// reaped exactly once by a goroutine that closes Done when cmd.Wait
// returns, and the node's whole process tree, held in a containment (a
// cgroup v2 where the system has one, the process group plus a child
// subreaper otherwise; the package doc says what each catches).
//
// The node has exited (Exited) only when the direct child is reaped and
// the rest of the tree is gone (S10). Kill and Stop return nil only then.
// Its methods are safe for concurrent use.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}

	tree      containment
	fallback  error // why the tree is not in a cgroup; nil if it is
	leftovers []int // pids of an earlier node's tree killed before the start

	mu      sync.Mutex
	waitErr error

	gone    atomic.Bool // the direct child reaped and the tree seen empty
	release sync.Once
}

// containMode selects the containment; tests force one.
type containMode int

const (
	containAuto   containMode = iota // cgroup v2 if usable, else the group
	containGroup                     // process group + subreaper
	containCgroup                    // cgroup v2 or fail
)

// Start starts cmd in its own process group, killed with SIGKILL if
// this process dies (S9), with its whole process tree contained (S10): in
// a cgroup v2 of its own where one can be made (named after the node home
// of the command's --home argument, so that a restarted valguard kills the
// tree an earlier one left there; see Leftovers), otherwise by process
// group, environment tag and child subreaper (see FallbackReason). In a
// cgroup the node starts only with a guard that kills the cgroup when
// valguard dies (see guard); if the guard cannot be started, the node is
// not started either and the error says why. Output goes to cmd.Stdout
// and cmd.Stderr where the caller set them, otherwise to stdout and
// stderr. An error means no process of the node runs.
func Start(cmd *exec.Cmd, stdout, stderr io.Writer) (*Process, error) {
	return startContained(cmd, stdout, stderr, containAuto)
}

// StartInCgroup is Start that refuses to fall back to the process-group
// containment: it starts cmd in a cgroup v2 with its guard, or not at all
// (the error says why no cgroup could be used). For a node whose process
// holding the key is not the direct child (the daemon under a wrapper such
// as cosmovisor): Pdeathsig reaches only the direct child, and only the
// cgroup's guard kills the rest of the tree when valguard dies.
func StartInCgroup(cmd *exec.Cmd, stdout, stderr io.Writer) (*Process, error) {
	return startContained(cmd, stdout, stderr, containCgroup)
}

// CgroupUsable reports whether Start can contain a node in a cgroup v2 of
// its own: nil when it can, otherwise why not (probed once per process).
func CgroupUsable() error {
	_, err := cgroupBase()
	return err
}

func startContained(cmd *exec.Cmd, stdout, stderr io.Writer, mode containMode) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if cmd.Stdout == nil {
		cmd.Stdout = stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = stderr
	}
	tag := newTag()
	cmd.Env = append(cmd.Environ(), tag)

	p := &Process{cmd: cmd, done: make(chan struct{})}
	var cg *cgroupTree
	if mode != containGroup {
		t, leftovers, err := newCgroupTree(nodeHome(cmd.Args))
		p.leftovers = leftovers
		switch {
		case errors.Is(err, errLeftover):
			return nil, err
		case err != nil && mode == containCgroup:
			return nil, fmt.Errorf("no cgroup: %w", err)
		case err != nil:
			p.fallback = err
		default:
			// The guard first: the node never runs without it. No guard,
			// no node: a tree that would outlive a dead valguard may
			// sign beside the standby that takes over (S9).
			g, err := startGuard(t.path, t.dir)
			if err != nil {
				t.release()
				return nil, err
			}
			t.guard = g
			cg = t
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = t.fd()
		}
	} else {
		p.fallback = errors.New("process-group containment requested")
	}
	if cg == nil {
		if err := subreaper(); err != nil {
			p.fallback = fmt.Errorf("%w; and %w: orphans of the node go to init", p.fallback, err)
		}
	}
	if err := cmd.Start(); err != nil {
		if cg != nil {
			cg.release()
		}
		return nil, err
	}
	if cg != nil {
		cg.mu.Lock()
		cg.pgid = cmd.Process.Pid
		cg.group = pgroup{pgid: cmd.Process.Pid}
		cg.mu.Unlock()
		p.tree = cg
	} else {
		p.tree = newGroupTree(cmd.Process.Pid, tag)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID is the direct child's process id (also its process group id).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the direct child has exited and been reaped; the
// rest of its tree may still run (see Exited). If the node's output goes
// to a writer that is not an *os.File, os/exec copies it through a pipe
// and Done waits until the whole tree has closed that pipe as well.
func (p *Process) Done() <-chan struct{} { return p.done }

// Containment describes, for logs, how the node's process tree is held:
// "cgroup <path>" or "process group + subreaper".
func (p *Process) Containment() string { return p.tree.String() }

// FallbackReason says why the tree is not in a cgroup (nil if it is): a
// warning worth one log line, since a setsid escape that also scrubs its
// environment is then not caught.
func (p *Process) FallbackReason() error { return p.fallback }

// Leftovers lists the pids of processes an earlier node of the same home
// had left in its cgroup (a valguard that died without killing its node's
// tree), killed before this node started; nil if none.
func (p *Process) Leftovers() []int { return p.leftovers }

// Exited reports whether the direct child has been reaped and the rest of
// the node's process tree is gone.
func (p *Process) Exited() bool {
	if p.gone.Load() {
		return true
	}
	select {
	case <-p.done:
	default:
		return false
	}
	return p.check(true) == nil
}

// check returns the tree's processes still alive (the direct child as its
// pid if not reaped), nil once everything is gone; it then releases the
// containment, once.
func (p *Process) check(childReaped bool) []int {
	if p.gone.Load() {
		return nil
	}
	left := p.tree.alive(childReaped)
	if !childReaped {
		left = append([]int{p.PID()}, left...)
	}
	if len(left) == 0 {
		p.gone.Store(true)
		p.release.Do(p.tree.release)
	}
	return left
}

// ExitErr is what cmd.Wait returned; valid once Done is closed.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Signal sends sig to the direct child only (SIGHUP for a hot
// promotion), through its pidfd: never to a process that reused its pid.
// It fails with os.ErrProcessDone once the child is reaped, even if the
// rest of the tree still runs (Exited is then false, yet nothing of the
// node is the addressee any more).
func (p *Process) Signal(sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Reaped reports whether the direct child has been reaped (Done is closed).
func (p *Process) Reaped() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ErrNotReaped means the process tree did not go away within the bound
// given.
var ErrNotReaped = errors.New("node process not reaped in time")

// Kill sends SIGKILL to the whole process tree and waits up to reap for
// the direct child to be reaped and the tree to be empty. If that does not
// happen in time, the error wraps ErrNotReaped and names the pids still
// alive; the node must then be treated as running.
func (p *Process) Kill(reap time.Duration) error {
	if p.gone.Load() {
		return nil
	}
	deadline := time.Now().Add(reap)
	for i := 0; ; i++ {
		if i%10 == 0 { // again now and then: a fork may have raced the kill
			p.tree.kill(p.Reaped())
		}
		left := p.check(p.Reaped())
		if left == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: pid %d after %s: still alive in %s: pids %v",
				ErrNotReaped, p.PID(), reap, p.tree, left)
		}
		p.pause(deadline, pollStep(i))
	}
}

// Stop sends SIGTERM to the process group (a wrapper such as cosmovisor
// forwards it to its child), waits up to grace for the whole tree to be
// gone, then kills it as Kill does, waiting up to reap. It reports whether
// SIGKILL was needed.
func (p *Process) Stop(grace, reap time.Duration) (killed bool, err error) {
	if p.Exited() {
		return false, nil
	}
	if !p.tree.terminate(syscall.SIGTERM) && !p.Reaped() {
		// The group is gone while the direct child is not (it left its
		// group): signal it by its own pid(fd).
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for i := 0; ; i++ {
		if p.check(p.Reaped()) == nil {
			return false, nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		p.pause(deadline, 2*pollStep(i))
	}
	return true, p.Kill(reap)
}

// pollStep is the wait before check i+1: 1 ms at first, then up to 10 ms.
func pollStep(i int) time.Duration {
	return min(time.Millisecond*time.Duration(1+i/10), 10*time.Millisecond)
}

// pause waits d, no later than deadline; it wakes early when the direct
// child is reaped.
func (p *Process) pause(deadline time.Time, d time.Duration) {
	d = min(d, time.Until(deadline))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	if p.Reaped() {
		<-t.C
		return
	}
	select {
	case <-p.done:
	case <-t.C:
	}
}
