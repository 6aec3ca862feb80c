package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSigner stands in for the signer package behind the Signer seam; the
// signer itself is tested against real nodes and a real Consul there.
type fakeSigner struct {
	j        *journal
	mu       sync.Mutex
	granted  bool
	grantErr error
	revoked  chan struct{}
	dropped  bool             // the node asks for nothing: LastRequest is zero
	signed   int64            // SignedHeight
	now      func() time.Time // the clock LastRequest reads; nil: time.Now
}

func (f *fakeSigner) Grant(_ context.Context, sess Session) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.grantErr != nil {
		f.j.add("signer:grant-refused")
		return f.grantErr
	}
	f.granted = true
	f.revoked = make(chan struct{})
	f.j.add("signer:grant")
	return nil
}

func (f *fakeSigner) Revoke() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.j.add("signer:revoke granted=%v", f.granted)
	f.granted = false
}

func (f *fakeSigner) Revoked() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revoked
}

func (f *fakeSigner) SignedHeight() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.signed
}

// LastRequest is now, as for a node that keeps asking, unless dropped.
func (f *fakeSigner) LastRequest() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropped {
		return time.Time{}
	}
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// fail ends the grant by itself, as a failed fence does.
func (f *fakeSigner) fail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.granted = false
	close(f.revoked)
}

func newSignerRig(t *testing.T) (*rig, *fakeSigner) {
	r := newRig(t, nil)
	fs := &fakeSigner{j: r.j}
	useSigner(r.sup, fs)
	return r, fs
}

// revokedBeforeEveryRelease asserts S3′ as the supervisor sees it: every
// release comes after a revoke that followed the last grant.
func (r *rig) revokedBeforeEveryRelease() {
	r.t.Helper()
	revoked := true
	for _, e := range r.j.list() {
		switch {
		case strings.HasPrefix(e, "signer:grant"):
			revoked = false
		case strings.HasPrefix(e, "signer:revoke"):
			revoked = true
		case strings.HasPrefix(e, "release"):
			if !revoked {
				r.t.Fatalf("lock released while signing was granted:\n%s", strings.Join(r.j.list(), "\n"))
			}
		}
	}
}

// noValidatorRole asserts the signer mode never prepares or starts the
// validator role (S1′: no node ever gets the key).
func (r *rig) noValidatorRole() {
	r.t.Helper()
	for _, e := range r.j.list() {
		if strings.HasPrefix(e, "prepare:validator") || strings.HasPrefix(e, "start:validator") {
			r.t.Fatalf("validator role used in signer mode:\n%s", strings.Join(r.j.list(), "\n"))
		}
	}
}

func TestSignerModeLeadsWithoutRestartingTheNode(t *testing.T) {
	cases := []struct {
		name  string
		end   func(r *rig, fs *fakeSigner)
		after State
	}{
		{"lease lost", func(r *rig, _ *fakeSigner) { r.el.current().lose(errors.New("local lease deadline passed")) }, Voting},
		{"fence failed", func(_ *rig, fs *fakeSigner) { fs.fail() }, Voting},
		{"stalled", func(r *rig, _ *fakeSigner) { r.node.set(func(n *fakeNode) { n.status.CatchingUp = true }) }, Syncing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, fs := newSignerRig(t)
			r.validating()
			r.before("lock:acquired", "signer:grant")
			pid := r.node.last(RoleVoter).Process.Pid
			tc.end(r, fs)
			eventually(t, 5*time.Second, "lock released", func() bool { return r.j.index("release") >= 0 })
			r.waitState(tc.after)
			r.revokedBeforeEveryRelease()
			r.noValidatorRole()
			if n := r.node.starts(RoleVoter); n != 1 {
				t.Fatalf("node started %d times, want once (never restarted):\n%s", n, strings.Join(r.j.list(), "\n"))
			}
			if got := r.node.last(RoleVoter).Process.Pid; got != pid {
				t.Fatalf("node pid %d, was %d", got, pid)
			}
			if got := testutil.ToFloat64(r.m.failovers); got != 1 {
				t.Fatalf("valguard_failovers_total = %v", got)
			}
		})
	}
}

// On shutdown in signer mode the lock goes first, with the node still
// running, and the node gossips its last votes for SignerGossipGrace
// before it is stopped: on a fake clock (clock_test.go), it still runs a
// moment before the grace has passed, and is stopped once it has.
func TestSignerModeShutdownReleasesBeforeStoppingTheNode(t *testing.T) {
	c := newClockRig(t, nil)
	useSigner(c.sup, &fakeSigner{j: c.j, now: c.fc.Now})
	c.validating(1)
	pid := c.node.last(RoleVoter).Process.Pid
	c.cancel()
	eventually(t, 5*time.Second, "the release", func() bool { return c.j.index("release") >= 0 })
	// The node was still running when the lock went: a standby takes over
	// without waiting for this node to stop.
	if c.j.index("release final= reaped=false") < 0 {
		t.Fatalf("lock not released while the node still ran:\n%s", strings.Join(c.j.list(), "\n"))
	}
	// The node gossips its last votes after the release, for the grace:
	// the supervisor waits on the clock, and nothing else does.
	c.gate(1)
	c.fc.Advance(SignerGossipGrace - time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.fc.BlockUntilContext(ctx, 1); err != nil || syscall.Kill(pid, 0) != nil {
		t.Fatalf("node stopped less than the gossip grace %s after the release", SignerGossipGrace)
	}
	c.fc.Advance(time.Millisecond)
	select {
	case err := <-c.result:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the gossip grace")
	}
	c.result <- nil // for the cleanup
	c.revokedBeforeEveryRelease()
	c.noValidatorRole()
	eventually(t, 5*time.Second, "node reaped", c.node.allReaped)
}

func TestSignerModeGrantRefused(t *testing.T) {
	t.Run("retried", func(t *testing.T) {
		r, fs := newSignerRig(t)
		fs.grantErr = errors.New("consul read timed out")
		r.validatingNot()
		r.waitState(Voting) // released, registered again, node untouched
		if n := r.node.starts(RoleVoter); n != 1 {
			t.Fatalf("node started %d times", n)
		}
		if r.j.index("release") < 0 {
			t.Fatal("lock not released after a refused grant")
		}
	})
	t.Run("fatal", func(t *testing.T) {
		r, fs := newSignerRig(t)
		fs.grantErr = fmt.Errorf("%w: watermark below the local floor", ErrFatal)
		r.validatingNot()
		select {
		case err := <-r.result:
			if !errors.Is(err, ErrFatal) {
				t.Fatalf("Run = %v, want ErrFatal", err)
			}
			r.result <- err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not end on a fatal grant error")
		}
		r.revokedBeforeEveryRelease()
	})
}

// validatingNot runs the rig and grants the lock to a replica whose grant
// is refused.
func (r *rig) validatingNot() {
	r.t.Helper()
	r.run()
	r.waitState(Voting)
	r.el.grant <- struct{}{}
	eventually(r.t, 5*time.Second, "grant refused", func() bool { return r.j.index("signer:grant-refused") >= 0 })
}

// TestKeyUnlinkedBeforeRelease: in the key-file mode the validator key is
// unlinked (the voter role prepared, with no node running) before the lock
// goes, on every path out of Validating (S2).
func TestKeyUnlinkedBeforeRelease(t *testing.T) {
	cases := []struct {
		name string
		end  func(r *rig)
	}{
		{"lease lost", func(r *rig) { r.el.current().lose(errors.New("local lease deadline passed")) }},
		{"validator exited", func(r *rig) { _ = r.node.last(RoleValidator).Process.Kill() }},
		{"stalled", func(r *rig) { r.node.set(func(n *fakeNode) { n.status.CatchingUp = true }) }},
		{"shutdown", func(r *rig) { r.cancel() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.validating()
			tc.end(r)
			eventually(t, 5*time.Second, "lock released", func() bool { return r.j.index("release") >= 0 })
			ev := r.j.list()
			start, rel := -1, -1
			for i, e := range ev {
				if strings.HasPrefix(e, "start:validator") {
					start = i
				}
				if strings.HasPrefix(e, "release") && rel < 0 {
					rel = i
				}
			}
			unlinked := false
			for _, e := range ev[start+1 : rel] {
				unlinked = unlinked || strings.HasPrefix(e, "prepare:voter wm= reaped=true")
			}
			if !unlinked {
				t.Fatalf("lock released before the key was unlinked:\n%s", strings.Join(ev, "\n"))
			}
		})
	}
}

// TestUnsupervisedNodeIsOnlySignedFor: with a node valguard does not run,
// the supervisor never prepares or starts one, yet follows its status,
// leads through the signer and steps down when the node stalls.
func TestUnsupervisedNodeIsOnlySignedFor(t *testing.T) {
	r, _ := newSignerRig(t)
	r.sup.cfg.Unsupervised = true
	r.validating()
	r.node.set(func(n *fakeNode) { n.status.CatchingUp = true })
	eventually(t, 5*time.Second, "step down", func() bool { return r.j.index("release") >= 0 })
	r.revokedBeforeEveryRelease()
	r.stop()
	for _, e := range r.j.list() {
		if strings.HasPrefix(e, "prepare:") || strings.HasPrefix(e, "start:") {
			t.Fatalf("an unsupervised node was prepared or started:\n%s", strings.Join(r.j.list(), "\n"))
		}
	}
	if _, err := New(Config{Node: r.node, Elector: r.el, Unsupervised: true}); err == nil {
		t.Fatal("New accepted Unsupervised without a Signer")
	}
}

// TestSignerModeRecoveryRestart: a leader whose chain stalls while its node
// asks for no signature restarts the node once, keeping the lock: at the
// first poll more than RecoveryAfter into the stall, its home prepared
// first; the restarted node gets MaxStall to catch up before the leader
// steps down. One whose node still asks is not restarted, and steps down
// after MaxStall. On a fake clock at the default durations (RecoveryAfter
// 20 s, MaxStall 30 s; clock_test.go).
func TestSignerModeRecoveryRestart(t *testing.T) {
	t.Run("dropped step", func(t *testing.T) {
		c := newClockRig(t, nil)
		useSigner(c.sup, &fakeSigner{j: c.j, dropped: true})
		c.validating(1) // poll
		start := c.fc.Now()
		c.node.set(func(n *fakeNode) { n.status.CatchingUp = true }) // no new height
		for {
			at := c.poll()
			if n := c.node.starts(RoleVoter); n != 1 {
				t.Fatalf("node restarted by the poll before %s into the stall (RecoveryAfter %s)", at.Sub(start), c.sup.cfg.RecoveryAfter)
			}
			if at.Sub(start) > c.sup.cfg.RecoveryAfter {
				break // this poll's decision restarts the node
			}
		}
		c.let()
		if n := c.node.starts(RoleVoter); n != 2 {
			t.Fatalf("%d node starts after the poll %s into the stall, want 2 (one recovery restart)", n, c.fc.Since(start))
		}
		restarted := c.fc.Now()
		for c.fc.Since(restarted) < c.sup.cfg.MaxStall-c.sup.cfg.PollInterval {
			c.poll()
			if n := c.node.starts(RoleVoter); n != 2 {
				t.Fatalf("%d node starts in one stall, want 2 (one recovery restart)", n)
			}
			if c.released() || c.sup.State() != Validating {
				t.Fatalf("the lock went with a recovery restart (state %s):\n%s", c.sup.State(), strings.Join(c.j.list(), "\n"))
			}
		}
		prepared, granted := false, false
		for _, e := range c.j.list() {
			switch {
			case strings.HasPrefix(e, "signer:grant"):
				granted = true
			case granted && strings.HasPrefix(e, "prepare:voter"):
				prepared = true
			case granted && e == "start:voter" && !prepared:
				t.Fatalf("the recovery restart started the node without preparing its home (a stale signer socket stays):\n%s", strings.Join(c.j.list(), "\n"))
			}
		}
		if got := testutil.ToFloat64(c.m.recoveries); got != 1 {
			t.Fatalf("valguard_signer_recovery_restarts_total = %v", got)
		}
		// Still no new height: MaxStall after the restart, the leader goes.
		for {
			at := c.poll()
			if c.released() {
				break
			}
			if at.Sub(restarted) > c.sup.cfg.MaxStall+2*c.sup.cfg.PollInterval {
				t.Fatalf("still leading %s after the recovery restart (MaxStall %s)", at.Sub(restarted), c.sup.cfg.MaxStall)
			}
		}
		if n := c.node.starts(RoleVoter); n != 2 {
			t.Fatalf("%d node starts, want 2: the step-down keeps the node", n)
		}
		c.revokedBeforeEveryRelease()
		c.noValidatorRole()
	})
	t.Run("node still asking", func(t *testing.T) {
		c := newClockRig(t, nil)
		useSigner(c.sup, &fakeSigner{j: c.j, now: c.fc.Now})
		c.validating(1)
		start := c.fc.Now()
		c.node.set(func(n *fakeNode) { n.status.CatchingUp = true })
		for {
			at := c.poll()
			if c.released() {
				break
			}
			if n := c.node.starts(RoleVoter); n != 1 {
				t.Fatalf("node restarted %s into the stall while it still asked for signatures (%d starts)", at.Sub(start), n)
			}
			if at.Sub(start) > c.sup.cfg.MaxStall+c.sup.cfg.PollInterval {
				t.Fatalf("still leading %s into the stall (MaxStall %s)", at.Sub(start), c.sup.cfg.MaxStall)
			}
		}
		if d := c.fc.Since(start); d <= c.sup.cfg.MaxStall {
			t.Fatalf("stepped down %s into the stall, before MaxStall", d)
		}
	})
	if _, err := New(Config{Node: newFakeNode(&journal{}), Elector: newFakeElector(&journal{}, nil), MaxStall: time.Second, RecoveryAfter: time.Second}); err == nil {
		t.Fatal("New accepted RecoveryAfter not below MaxStall")
	}
}
