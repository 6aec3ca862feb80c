package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// journal records effects in order, from the fakes and the test.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

// index is the position of the first event starting with prefix, -1 if none.
func (j *journal) index(prefix string) int {
	for i, e := range j.list() {
		if strings.HasPrefix(e, prefix) {
			return i
		}
	}
	return -1
}

// fakeNode runs real, harmless processes (sleep) so that process handling
// (groups, signals, reaping) is the real thing; only the chain is fake.
type fakeNode struct {
	j *journal

	mu        sync.Mutex
	cmds      []*exec.Cmd
	roles     []Role
	status    Status
	statusErr error
	watermark []byte
	still     bool              // the chain does not move: the height stays
	signed    int64             // SignedHeight
	argv      map[Role][]string // command per role; default sleep 600
	prepErr   map[Role]error
	onStatus  func() // called as each Status call begins (clock_test.go)
}

func newFakeNode(j *journal) *fakeNode {
	return &fakeNode{j: j, status: Status{Height: 1, Synced: true}, argv: map[Role][]string{}, prepErr: map[Role]error{}}
}

// allReaped reports whether every process started so far is gone and
// reaped: kill(pid, 0) still succeeds on a zombie.
func (n *fakeNode) allReaped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.cmds {
		if c.Process == nil {
			continue
		}
		if err := syscall.Kill(c.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			return false
		}
	}
	return true
}

func (n *fakeNode) Prepare(_ context.Context, role Role, wm []byte) error {
	n.mu.Lock()
	err := n.prepErr[role]
	n.mu.Unlock()
	n.j.add("prepare:%s wm=%s reaped=%v", role, wm, n.allReaped())
	return err
}

func (n *fakeNode) Command(role Role) (*exec.Cmd, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	argv := n.argv[role]
	if argv == nil {
		argv = []string{"sleep", "600"}
	}
	c := exec.Command(argv[0], argv[1:]...)
	n.cmds = append(n.cmds, c)
	n.roles = append(n.roles, role)
	n.j.add("start:%s", role)
	return c, nil
}

// last is the last command started for role.
func (n *fakeNode) last(role Role) *exec.Cmd {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.cmds) - 1; i >= 0; i-- {
		if n.roles[i] == role {
			return n.cmds[i]
		}
	}
	return nil
}

func (n *fakeNode) starts(role Role) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, r := range n.roles {
		if r == role {
			c++
		}
	}
	return c
}

func (n *fakeNode) Status(context.Context) (Status, error) {
	n.mu.Lock()
	hook := n.onStatus
	n.mu.Unlock()
	if hook != nil {
		hook()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.statusErr == nil && !n.status.CatchingUp && !n.still {
		n.status.Height++ // the chain moves on while nothing else is said
	}
	return n.status, n.statusErr
}

func (n *fakeNode) set(f func(n *fakeNode)) {
	n.mu.Lock()
	f(n)
	n.mu.Unlock()
}

func (n *fakeNode) SignedHeight() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.signed
}

func (n *fakeNode) Watermark() ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.watermark, nil
}

// fakeElector hands out fakeSessions; the test grants the lock.
type fakeElector struct {
	j          *journal
	node       *fakeNode
	grant      chan struct{} // a receive grants the lock to the waiting session
	mu         sync.Mutex
	sessions   []*fakeSession
	createErrs int // NewSession fails this many times first
	watermark  []byte
	acquireErr error  // Acquire fails with it at once
	onAcquire  func() // runs just before a granted Acquire returns
}

func newFakeElector(j *journal, n *fakeNode) *fakeElector {
	return &fakeElector{j: j, node: n, grant: make(chan struct{})}
}

func (e *fakeElector) NewSession(context.Context) (Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.createErrs > 0 {
		e.createErrs--
		e.j.add("session:error")
		return nil, errors.New("consul unreachable")
	}
	s := &fakeSession{e: e, done: make(chan struct{}), deadline: time.Now().Add(time.Hour)}
	e.sessions = append(e.sessions, s)
	e.j.add("session:new")
	return s, nil
}

func (e *fakeElector) Watermark(context.Context) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.j.add("watermark:read")
	return e.watermark, nil
}

func (e *fakeElector) current() *fakeSession {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sessions) == 0 {
		return nil
	}
	return e.sessions[len(e.sessions)-1]
}

type fakeSession struct {
	e         *fakeElector
	done      chan struct{}
	once      sync.Once
	err       error
	deadline  time.Time
	mu        sync.Mutex
	closed    bool
	abandoned bool
}

func (s *fakeSession) Acquire(ctx context.Context) error {
	s.e.mu.Lock()
	err := s.e.acquireErr
	s.e.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return s.err
	case <-s.e.grant:
		s.e.j.add("lock:acquired")
		s.e.mu.Lock()
		hook := s.e.onAcquire
		s.e.mu.Unlock()
		if hook != nil {
			hook()
		}
		return nil
	}
}

func (s *fakeSession) lose(err error) {
	s.once.Do(func() {
		s.err = err
		s.e.j.add("lease:lost")
		close(s.done)
	})
}

func (s *fakeSession) Done() <-chan struct{} { return s.done }
func (s *fakeSession) Err() error            { return s.err }
func (s *fakeSession) Deadline() time.Time   { return s.deadline }

func (s *fakeSession) Publish(_ context.Context, wm []byte) error {
	s.e.j.add("publish:%s", wm)
	s.e.mu.Lock()
	s.e.watermark = wm
	s.e.mu.Unlock()
	return nil
}

func (s *fakeSession) Close(_ context.Context, final []byte) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.e.j.add("release final=%s reaped=%v", final, s.e.node.allReaped())
	s.lose(errors.New("closed"))
	return nil
}

func (s *fakeSession) Abandon() {
	s.mu.Lock()
	s.abandoned = true
	s.mu.Unlock()
	s.e.j.add("abandon reaped=%v", s.e.node.allReaped())
	s.lose(errors.New("abandoned"))
}

func (s *fakeSession) isAbandoned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.abandoned
}

func (s *fakeSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// eventually polls cond every few milliseconds until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", d, what)
}

// useSigner puts sup, made by New without a Signer, in the signer mode
// with fs: Config.Signer and the sign mode New would have chosen for it.
func useSigner(sup *Supervisor, fs Signer) {
	sup.cfg.Signer = fs
	sup.mode = newSignMode(sup)
}
