package localnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long a process stopped because its context
// ended gets between SIGTERM and SIGKILL. A CometBFT node takes ~1.5 s.
const DefaultStopTimeout = 5 * time.Second

// Process is a node started by StartNode. It runs in its own process group,
// receives SIGKILL if the thread that started it dies (Pdeathsig), and is
// always reaped: a goroutine waits for it from the start.
type Process struct {
	Cmd     *exec.Cmd
	PID     int
	LogPath string

	done    chan struct{} // closed once Cmd.Wait has returned
	waitErr error         // Cmd.Wait's result; read only after done
}

// StartNode runs `cometbft start --home home` plus extraArgs, with stdout
// and stderr appended to logPath (its directory is created). The node is
// stopped (SIGTERM, then SIGKILL after DefaultStopTimeout) when ctx is done,
// as with exec.CommandContext, so pass a context that lives as long as the
// node should, such as the test's.
//
// Pdeathsig is tied to the OS thread that forked the child, not the whole
// Go process; it covers a crashed test binary, not every exit path. Callers
// still stop their processes, e.g. in t.Cleanup.
func (n *Net) StartNode(ctx context.Context, home, logPath string, extraArgs ...string) (*Process, error) {
	args := append([]string{"start", "--home", home}, extraArgs...)
	p, err := StartProcess(ctx, logPath, nil, n.Binary, args...)
	if err != nil {
		return nil, fmt.Errorf("localnet: start node %s: %w", home, err)
	}
	return p, nil
}

// StartProcess runs bin with args (and env added to ours) in its own
// process group, with stdout and stderr appended to logPath (its directory
// is created). It is stopped (SIGTERM, then SIGKILL after
// DefaultStopTimeout) when ctx is done, and always reaped.
func StartProcess(ctx context.Context, logPath string, env []string, bin string, args ...string) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, PID: cmd.Process.Pid, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Stop(DefaultStopTimeout) // the outcome is visible through Wait
		case <-p.done:
		}
	}()
	return p, nil
}

// StartValidators starts every validator home except the HA validator's,
// logging to logDir/node<i>.log. On error, the nodes already started are
// killed.
func (n *Net) StartValidators(ctx context.Context, logDir string) ([]*Process, error) {
	var procs []*Process
	for i, home := range n.Homes {
		if i == n.HA {
			continue
		}
		p, err := n.StartNode(ctx, home, filepath.Join(logDir, fmt.Sprintf("node%d.log", i)))
		if err != nil {
			for _, q := range procs {
				_ = q.Kill()
			}
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// ErrStopTimeout is returned by Stop when the process outlived the
// timeout after SIGTERM and had to be killed.
var ErrStopTimeout = errors.New("process did not exit after SIGTERM; killed")

// Stop sends SIGTERM to the process group, waits up to timeout, then sends
// SIGKILL and waits for the process to be reaped. It returns nil if the
// process exited (with any status) before the timeout or had already
// exited, and an error wrapping ErrStopTimeout if it had to be killed.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("localnet: SIGTERM pid %d: %w", p.PID, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("localnet: pid %d after %s: %w", p.PID, timeout, ErrStopTimeout)
}

// Kill sends SIGKILL to the process group and returns once the process is
// reaped.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("localnet: SIGKILL pid %d: %w", p.PID, err)
	}
	<-p.done
	return nil
}

// Wait blocks until the process has exited and been reaped, and returns
// its exit error as exec.Cmd.Wait does.
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited and been reaped.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
