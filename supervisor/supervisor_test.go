package supervisor

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

type rig struct {
	t      *testing.T
	j      *journal
	node   *fakeNode
	el     *fakeElector
	sup    *Supervisor
	m      *Metrics
	cancel context.CancelFunc
	result chan error
}

func newRig(t *testing.T, tune func(*Config)) *rig {
	t.Helper()
	j := &journal{}
	n := newFakeNode(j)
	e := newFakeElector(j, n)
	m := NewMetrics(prometheus.NewRegistry(), "test")
	cfg := Config{
		Node: n, Elector: e, Metrics: m,
		Log:    zerolog.New(zerolog.NewTestWriter(t)),
		Stdout: io.Discard, Stderr: io.Discard,
		PollInterval: 5 * time.Millisecond, StatusTimeout: 50 * time.Millisecond,
		StopTimeout: 500 * time.Millisecond, KillTimeout: time.Second,
		MaxStall: 300 * time.Millisecond, StepDownHoldoff: 400 * time.Millisecond,
		PublishInterval: 5 * time.Millisecond, CallTimeout: 100 * time.Millisecond,
		RestartBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		MaxStartFailures: 3,
	}
	if tune != nil {
		tune(&cfg)
	}
	sup, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, j: j, node: n, el: e, sup: sup, m: m}
}

func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.result = make(chan error, 1)
	go func() { r.result <- r.sup.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		select {
		case <-r.result:
		case <-time.After(5 * time.Second):
			r.t.Error("Run did not return after cancel")
		}
	})
}

func (r *rig) waitState(s State) {
	r.t.Helper()
	eventually(r.t, 5*time.Second, "state "+s.String(), func() bool { return r.sup.State() == s })
}

// stop cancels Run and fails the test unless it returns nil within 5 s.
func (r *rig) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.result:
		if err != nil {
			r.t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Fatal("Run did not return")
	}
	r.result <- nil // for the cleanup
}

// validating brings the rig to Validating.
func (r *rig) validating() {
	r.t.Helper()
	r.run()
	r.waitState(Voting)
	r.el.grant <- struct{}{}
	r.waitState(Validating)
}

// before asserts that event a happened, and event b after it. The journal
// only grows, so it waits up to 5 s for the pair: effects of the
// supervisor's goroutine may still be on their way when the test looks.
func (r *rig) before(a, b string) {
	r.t.Helper()
	ordered := func() bool {
		ia := r.j.index(a)
		if ia < 0 {
			return false
		}
		for i, e := range r.j.list() {
			if i > ia && strings.HasPrefix(e, b) {
				return true
			}
		}
		return false
	}
	end := time.Now().Add(5 * time.Second)
	for !ordered() {
		if time.Now().After(end) {
			r.t.Fatalf("want %q before %q; events:\n%s", a, b, strings.Join(r.j.list(), "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// prepared asserts that every start of role was preceded by its own
// prepare, with no other start in between.
func (r *rig) prepared(role Role) {
	r.t.Helper()
	ready := false
	for _, e := range r.j.list() {
		switch {
		case strings.HasPrefix(e, "prepare:"+role.String()):
			ready = true
		case strings.HasPrefix(e, "start:"):
			if strings.HasPrefix(e, "start:"+role.String()) && !ready {
				r.t.Fatalf("%s started without being prepared first:\n%s", role, strings.Join(r.j.list(), "\n"))
			}
			ready = false
		}
	}
}

func TestVoterStartUnlinksKeyFirst(t *testing.T) {
	r := newRig(t, nil)
	r.node.set(func(n *fakeNode) { n.argv[RoleVoter] = []string{"sh", "-c", "sleep 0.05"} }) // exits: restarts
	r.run()
	eventually(t, 5*time.Second, "three voter starts", func() bool { return r.node.starts(RoleVoter) >= 3 })
	r.prepared(RoleVoter)
	r.node.set(func(n *fakeNode) { n.argv[RoleVoter] = nil })
	r.waitState(Voting)
	if n := r.node.starts(RoleValidator); n != 0 {
		t.Fatalf("validator started %d times without the lock", n)
	}
	if got := testutil.ToFloat64(r.m.state.WithLabelValues("Voting")); got != 1 {
		t.Fatalf("valguard_state{state=Voting} = %v", got)
	}
}

func TestPromotionOrder(t *testing.T) {
	r := newRig(t, nil)
	r.el.watermark = []byte("wm7")
	r.validating()
	// The watermark is read after the lock is held, the voter is reaped
	// before the validator role is prepared, and prepared before it starts.
	r.before("lock:acquired", "watermark:read")
	r.before("watermark:read", "prepare:validator wm=wm7 reaped=true")
	r.before("prepare:validator", "start:validator")
	r.prepared(RoleValidator)
	r.prepared(RoleVoter)
	if got := testutil.ToFloat64(r.m.leader); got != 1 {
		t.Fatalf("valguard_leader = %v", got)
	}
	if got := testutil.ToFloat64(r.m.failovers); got != 1 {
		t.Fatalf("valguard_failovers_total = %v", got)
	}
}

func TestLeaseLostKillsAndReapsBeforeRelease(t *testing.T) {
	r := newRig(t, func(c *Config) { c.StopTimeout = time.Hour }) // SIGTERM path must not be used
	r.node.watermark = []byte("h9")
	r.validating()
	pid := r.node.last(RoleValidator).Process.Pid
	lost := time.Now()
	r.el.current().lose(errors.New("local lease deadline passed"))
	eventually(t, time.Second, "validator node reaped after lease loss", func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
	t.Logf("lease loss to node reaped: %s", time.Since(lost))
	r.waitState(Voting) // starts again as a voter and re-registers
	// The release carries the reaped node's final sign state (model
	// finding F1: a clean release without it let the standby raise its
	// state from an older publish and sign a height this node signed).
	r.before("lease:lost", "release final=h9 reaped=true")
	r.before("release final=h9 reaped=true", "start:voter")
	ev := r.j.list()
	if strings.Count(strings.Join(ev, "\n"), "start:validator") != 1 {
		t.Fatalf("validator restarted after lease loss:\n%s", strings.Join(ev, "\n"))
	}
}

func TestShutdownStopsNodeBeforeRelease(t *testing.T) {
	r := newRig(t, nil)
	r.node.watermark = []byte("h9")
	r.validating()
	r.stop()
	if i := r.j.index("release final=h9 reaped=true"); i < 0 {
		t.Fatalf("no release with the final watermark after the node was reaped:\n%s", strings.Join(r.j.list(), "\n"))
	}
	// The key is unlinked again after the validator stopped.
	r.before("release final=h9", "prepare:voter")
	if st := r.sup.State(); st != Shutdown {
		t.Fatalf("state %s, want Shutdown", st)
	}
}

func TestValidatorExitReleasesAndRestartsAsVoter(t *testing.T) {
	r := newRig(t, nil)
	r.node.watermark = []byte("h3")
	r.validating()
	if err := r.node.last(RoleValidator).Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r.waitState(Voting)
	r.before("release final=h3 reaped=true", "start:voter")
	if got := r.node.starts(RoleVoter); got != 2 {
		t.Fatalf("voter starts %d, want 2", got)
	}
	if got := testutil.ToFloat64(r.m.restarts); got < 2 {
		t.Fatalf("valguard_node_restarts_total = %v, want ≥ 2", got)
	}
}

func TestStalledLeaderStepsDownAndHoldsOff(t *testing.T) {
	r := newRig(t, nil)
	r.validating()
	r.node.set(func(n *fakeNode) { n.status.CatchingUp = true })
	stalled := time.Now()
	eventually(t, 5*time.Second, "step down", func() bool { return r.j.index("release final=") >= 0 })
	if d := time.Since(stalled); d < 300*time.Millisecond-20*time.Millisecond {
		t.Fatalf("stepped down after %s, before MaxStall", d)
	}
	r.before("release final=", "start:voter")
	r.node.set(func(n *fakeNode) { n.status.CatchingUp = false })
	released := time.Now()
	r.waitState(Voting)
	if d := time.Since(released); d < 300*time.Millisecond {
		t.Fatalf("re-registered %s after stepping down, before the hold-off", d)
	}
}

func TestCrashLoopEndsRun(t *testing.T) {
	r := newRig(t, nil)
	r.node.argv[RoleVoter] = []string{"false"}
	r.run()
	select {
	case err := <-r.result:
		if !errors.Is(err, ErrCrashLoop) {
			t.Fatalf("Run = %v, want ErrCrashLoop", err)
		}
		r.result <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not give up on a crash loop")
	}
	if got := r.node.starts(RoleVoter); got != 3 {
		t.Fatalf("voter starts %d, want 3 (MaxStartFailures)", got)
	}
}

func TestConsulDownStaysOutOfElection(t *testing.T) {
	r := newRig(t, nil)
	r.el.createErrs = 3
	r.run()
	r.waitState(Voting)
	if got := strings.Count(strings.Join(r.j.list(), "\n"), "session:error"); got != 3 {
		t.Fatalf("%d failed session creations, want 3", got)
	}
	r.before("session:error", "session:new")
}

func TestFallingBehindWhileVotingLeavesElection(t *testing.T) {
	r := newRig(t, nil)
	r.run()
	r.waitState(Voting)
	s := r.el.current()
	r.node.set(func(n *fakeNode) { n.status.Synced = false })
	r.waitState(Syncing)
	eventually(t, time.Second, "session closed", s.isClosed)
	r.node.set(func(n *fakeNode) { n.status.Synced = true })
	r.waitState(Voting)
}

func TestPrepareVoterErrorIsFatal(t *testing.T) {
	r := newRig(t, nil)
	r.node.prepErr[RoleVoter] = errors.New("validator key found as a regular file")
	r.run()
	select {
	case err := <-r.result:
		if err == nil || !strings.Contains(err.Error(), "regular file") {
			t.Fatalf("Run = %v", err)
		}
		r.result <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not refuse")
	}
	if n := len(r.node.cmds); n != 0 {
		t.Fatalf("%d node processes started", n)
	}
}

func TestWatermarkPublishedWhileValidating(t *testing.T) {
	r := newRig(t, nil)
	r.validating()
	r.node.set(func(n *fakeNode) { n.watermark = []byte("h42") })
	eventually(t, time.Second, "watermark published", func() bool { return r.j.index("publish:h42") >= 0 })
}
