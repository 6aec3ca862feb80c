package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is a started node: its own process group, reaped exactly once by
// a goroutine that closes done when cmd.Wait returns.
type process struct {
	cmd     *exec.Cmd
	role    Role
	started time.Time
	done    chan struct{}

	mu      sync.Mutex
	waitErr error
}

// startProcess starts cmd in its own process group, killed with SIGKILL if
// this process dies (S9). Output goes where the adapter pointed it; by
// default our own stdout and stderr, so journald keeps the node's logs.
func startProcess(cmd *exec.Cmd, role Role, stdout, stderr io.Writer) (*process, error) {
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
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s node %s: %w", role, cmd.Path, err)
	}
	p := &process{cmd: cmd, role: role, started: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID is the node's process id (also its process group id).
func (p *process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has been reaped.
func (p *process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitErr is what cmd.Wait returned; valid once Done is closed.
func (p *process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// signal sends sig to the whole process group, unless already reaped.
func (p *process) signal(sig syscall.Signal) {
	if p.Exited() {
		return
	}
	if err := syscall.Kill(-p.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Signal(sig)
	}
}

// errNotReaped means the process did not go away within the bound given.
var errNotReaped = errors.New("node process not reaped in time")

// Kill sends SIGKILL to the group and waits up to reap for it to be reaped.
func (p *process) Kill(reap time.Duration) error {
	p.signal(syscall.SIGKILL)
	return p.wait(reap)
}

// Stop sends SIGTERM, waits up to grace, then kills and waits up to reap.
// It reports whether SIGKILL was needed.
func (p *process) Stop(grace, reap time.Duration) (killed bool, err error) {
	p.signal(syscall.SIGTERM)
	if p.wait(grace) == nil {
		return false, nil
	}
	return true, p.Kill(reap)
}

func (p *process) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: pid %d after %s", errNotReaped, p.PID(), d)
	}
}
