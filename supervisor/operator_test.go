package supervisor

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOperator is an Operator the test sets.
type fakeOperator struct {
	mu      sync.Mutex
	hold    string
	changed chan struct{}
}

func newFakeOperator() *fakeOperator { return &fakeOperator{changed: make(chan struct{}, 1)} }

func (o *fakeOperator) Hold() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hold
}

func (o *fakeOperator) Changed() <-chan struct{} { return o.changed }

func (o *fakeOperator) set(h string) {
	o.mu.Lock()
	o.hold = h
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// sessions is how many sessions the rig's elector handed out.
func (r *rig) sessions() int {
	r.el.mu.Lock()
	defer r.el.mu.Unlock()
	return len(r.el.sessions)
}

// A held replica stays out of the election however long it is synced (on
// a fake clock, clock_test.go: a minute of polls), takes part once the
// hold is lifted, and leaves at once when held again while voting.
func TestHeldReplicaStaysOutOfTheElection(t *testing.T) {
	op := newFakeOperator()
	op.set("drained")
	c := newClockRig(t, func(cfg *Config) { cfg.Operator = op })
	r := c.rig
	c.run()
	c.drive("Syncing", func() bool { return c.sup.State() == Syncing })
	c.gate(1)
	for range 60 {
		c.poll() // synced all along
		if r.sup.State() != Syncing || r.sessions() != 0 {
			t.Fatalf("a drained replica is %s with %d sessions, want Syncing with none", r.sup.State(), r.sessions())
		}
	}
	if got := r.sup.Snapshot().Hold; got != "drained" {
		t.Fatalf("snapshot hold %q", got)
	}
	op.set("")
	c.drive("Voting", func() bool { return c.sup.State() == Voting })

	// Held again while voting: it leaves the election at once.
	op.set("hand-over to b under way")
	r.waitState(Syncing)
	eventually(t, time.Second, "session closed", func() bool { return r.el.current().isClosed() })
	if st := r.sup.Snapshot(); !strings.Contains(st.Reason, "hand-over to b") {
		t.Fatalf("state reason %q", st.Reason)
	}
}

// A hold that lands as the lock is taken (a drain mark or a hand-over
// request read just then) keeps the replica from leading: it releases the
// lock with only its voter running and leaves the election.
func TestHoldAtTheTakeIsHonoured(t *testing.T) {
	op := newFakeOperator()
	r := newRig(t, func(c *Config) { c.Operator = op })
	r.run()
	r.waitState(Voting)
	r.el.mu.Lock()
	r.el.onAcquire = func() {
		op.mu.Lock()
		op.hold = "drained" // read by Hold, Changed not yet signalled
		op.mu.Unlock()
	}
	r.el.mu.Unlock()
	sess := r.el.current()
	r.el.grant <- struct{}{}
	r.waitState(Syncing)
	eventually(t, time.Second, "lock released", func() bool { return sess.isClosed() })
	if n := r.node.starts(RoleValidator); n != 0 || r.j.index("start:validator") >= 0 {
		t.Fatalf("a replica held at the take started its validator:\n%s", strings.Join(r.j.list(), "\n"))
	}
	if st := r.sup.Snapshot(); !strings.Contains(st.Reason, "drained") {
		t.Fatalf("state reason %q", st.Reason)
	}
}

// TestOperatorHandOverStepsDownCleanly: a leader told to hold stops its
// node, publishes the final watermark and releases the lock (the shutdown
// path), then stays out while held and comes back as a voter after.
func TestOperatorHandOverStepsDownCleanly(t *testing.T) {
	op := newFakeOperator()
	r := newRig(t, func(c *Config) { c.Operator = op; c.StepDownHoldoff = time.Hour })
	r.node.watermark = []byte("h9")
	r.validating()
	sess := r.el.current()
	op.set("handing over to b")
	eventually(t, 5*time.Second, "lock released", func() bool { return sess.isClosed() })
	r.before("start:validator", "release final=h9 reaped=true")
	if sess.isAbandoned() {
		t.Fatal("session abandoned on a hand-over")
	}
	r.waitState(Syncing)
	time.Sleep(50 * time.Millisecond)
	if n := r.sessions(); n != 1 {
		t.Fatalf("%d sessions while held, want 1", n)
	}
	op.set("")
	r.waitState(Voting) // no step-down hold-off after a hand-over
	r.prepared(RoleVoter)
}

func TestSignerModeHandOverRevokesBeforeRelease(t *testing.T) {
	op := newFakeOperator()
	r, _ := newSignerRig(t)
	r.sup.cfg.Operator = op
	r.validating()
	pid := r.node.last(RoleVoter).Process.Pid
	op.set("handing over to b")
	eventually(t, 5*time.Second, "lock released", func() bool { return r.j.index("release") >= 0 })
	r.waitState(Syncing)
	r.revokedBeforeEveryRelease()
	r.noValidatorRole()
	if got := r.node.last(RoleVoter).Process.Pid; got != pid || r.node.starts(RoleVoter) != 1 {
		t.Fatalf("node restarted on a signer-mode hand-over (pid %d, was %d)", got, pid)
	}
	op.set("")
	r.waitState(Voting)
}

func TestSyncingProgress(t *testing.T) {
	r := newRig(t, func(c *Config) {
		c.ProgressInterval = 50 * time.Millisecond
		c.BestHeight = func() int64 { return 100000 }
	})
	r.node.set(func(n *fakeNode) { n.status.Synced = false }) // height still rises by one per poll
	r.run()
	r.waitState(Syncing)
	var p *Progress
	eventually(t, 5*time.Second, "progress measured", func() bool { p = r.sup.Snapshot().Progress; return p != nil })
	if p.Best != 100000 || p.Rate <= 0 || p.ETA <= 0 || p.Height <= 0 {
		t.Fatalf("progress %+v", *p)
	}
	r.node.set(func(n *fakeNode) { n.status.Synced = true })
	r.waitState(Voting)
	if p := r.sup.Snapshot().Progress; p != nil {
		t.Fatalf("progress %+v kept after Syncing", *p)
	}
}
