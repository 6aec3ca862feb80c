package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// hotNode is a fakeNode that promotes in place, as the NEAR adapter does.
type hotNode struct {
	*fakeNode
	hot          bool
	confirm      bool   // whether the "node" reports the key loaded after reload
	onHot        func() // called by HotPromotion
	beforeReload func() // called between linking and reloading
}

func (h *hotNode) HotPromotion(context.Context) (bool, error) {
	if h.onHot != nil {
		h.onHot()
	}
	return h.hot, nil
}

func (h *hotNode) PromoteRunning(_ context.Context, wm []byte, reload func() error) error {
	h.j.add("hot:link wm=%s", wm)
	if h.beforeReload != nil {
		h.beforeReload()
	}
	if err := reload(); err != nil {
		h.j.add("hot:reload-error")
		return err
	}
	h.j.add("hot:reloaded")
	if !h.confirm {
		h.j.add("hot:unconfirmed")
		return errors.New("validator key not reported loaded within 1s")
	}
	h.j.add("hot:confirmed")
	return nil
}

// hupTrap is a voter process that survives SIGHUP, like neard.
var hupTrap = []string{"sh", "-c", `trap 'echo hup' HUP; while :; do sleep 0.02; done`}

func newHotRig(t *testing.T, confirm bool) (*rig, *hotNode) {
	r := newRig(t, nil)
	h := &hotNode{fakeNode: r.node, hot: true, confirm: confirm}
	r.node.set(func(n *fakeNode) { n.argv[RoleVoter] = hupTrap })
	r.sup.cfg.Node = h
	return r, h
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestHotPromotionKeepsTheNodeRunning(t *testing.T) {
	r, _ := newHotRig(t, true)
	r.validating()
	if n := r.node.starts(RoleValidator); n != 0 {
		t.Fatalf("hot promotion restarted the node (%d validator starts)", n)
	}
	voter := r.node.last(RoleVoter).Process.Pid
	if !alive(voter) {
		t.Fatal("the promoted node did not survive its SIGHUP")
	}
	r.before("lock:acquired", "watermark:read")
	r.before("watermark:read", "hot:link")
	r.before("hot:link", "hot:reloaded")
	if got := r.j.index("prepare:validator"); got >= 0 {
		t.Fatalf("validator role prepared for a restart during a hot promotion:\n%s", strings.Join(r.j.list(), "\n"))
	}
	// Demotion is kill-and-reap, never a reload: lose the lease.
	r.el.current().lose(errors.New("local lease deadline passed"))
	eventually(t, time.Second, "promoted node reaped after lease loss", func() bool {
		return errors.Is(syscall.Kill(voter, 0), syscall.ESRCH)
	})
	r.waitState(Voting)
	r.before("lease:lost", "release final= reaped=true")
	r.before("release final= reaped=true", "prepare:voter")
}

func TestHotPromotionUnconfirmedIsUndone(t *testing.T) {
	r, _ := newHotRig(t, false)
	r.run()
	r.waitState(Voting)
	voter := r.node.last(RoleVoter).Process.Pid
	r.el.grant <- struct{}{}
	eventually(t, 5*time.Second, "a failed promotion released", func() bool { return r.el.current().isClosed() })
	if alive(voter) {
		t.Fatal("a node that may hold the key still runs after a failed promotion")
	}
	r.before("hot:unconfirmed", "release final= reaped=true")
	r.waitState(Voting) // back through Startup as a voter
	r.before("release final= reaped=true", "prepare:voter")
	if n := r.node.starts(RoleValidator); n != 0 {
		t.Fatalf("validator started after a failed hot promotion (%d)", n)
	}
	if got := testutil.ToFloat64(r.m.failovers); got != 0 {
		t.Fatalf("a failed promotion counted as a failover (%v)", got)
	}
}

// The lease is lost between acquisition and the hot promotion: the key is
// never linked, the node never signalled.
func TestHotPromotionLeaseLostBeforeLink(t *testing.T) {
	r, h := newHotRig(t, true)
	h.onHot = func() { r.el.current().lose(errors.New("local lease deadline passed")) }
	r.run()
	r.waitState(Voting)
	r.el.grant <- struct{}{}
	eventually(t, 5*time.Second, "a second session after the loss", func() bool {
		r.el.mu.Lock()
		defer r.el.mu.Unlock()
		return len(r.el.sessions) >= 2
	})
	if i := r.j.index("hot:link"); i >= 0 {
		t.Fatalf("key linked after the lease was lost:\n%s", strings.Join(r.j.list(), "\n"))
	}
}

// The lease is lost after the key is linked but before the reload: the
// node is not told to load it, and it is killed and reaped before release.
func TestHotPromotionLeaseLostBeforeReload(t *testing.T) {
	r, h := newHotRig(t, true)
	h.beforeReload = func() {
		r.el.current().lose(errors.New("local lease deadline passed"))
		eventually(t, time.Second, "fence saw the loss", func() bool {
			f := r.sup.mode.(*keyFile).fence
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.lost
		})
	}
	r.run()
	r.waitState(Voting)
	voter := r.node.last(RoleVoter).Process.Pid
	r.el.grant <- struct{}{}
	eventually(t, 5*time.Second, "the failed promotion", func() bool { return r.j.index("hot:reload-error") >= 0 })
	if r.j.index("hot:reloaded") >= 0 {
		t.Fatal("node reloaded the key after the lease was lost")
	}
	eventually(t, 5*time.Second, "the node reaped", func() bool { return errors.Is(syscall.Kill(voter, 0), syscall.ESRCH) })
	r.waitState(Voting)
	r.before("hot:reload-error", "release final= reaped=true")
}

func TestHotPromotionDeclinedRestarts(t *testing.T) {
	r, h := newHotRig(t, true)
	h.hot = false
	r.validating()
	if r.j.index("hot:") >= 0 {
		t.Fatalf("hot promotion used although the node declined it:\n%s", strings.Join(r.j.list(), "\n"))
	}
	r.before("prepare:validator", "start:validator")
}

// A voter that reports a validator key valguard did not link is killed
// and Run ends with ErrUnexpectedKey.
func TestVoterWithUnexpectedKeyIsKilled(t *testing.T) {
	r := newRig(t, nil)
	r.run()
	r.waitState(Voting)
	voter := r.node.last(RoleVoter).Process.Pid
	r.node.set(func(n *fakeNode) { n.statusErr = fmt.Errorf("%w: validator_account_id x.near", ErrUnexpectedKey) })
	select {
	case err := <-r.result:
		if !errors.Is(err, ErrUnexpectedKey) {
			t.Fatalf("Run = %v, want ErrUnexpectedKey", err)
		}
		r.result <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end")
	}
	if !errors.Is(syscall.Kill(voter, 0), syscall.ESRCH) {
		t.Fatal("the voter with a key still runs")
	}
	if r.node.starts(RoleValidator) != 0 || r.node.starts(RoleVoter) != 1 {
		t.Fatalf("starts after the unexpected key: voter %d validator %d", r.node.starts(RoleVoter), r.node.starts(RoleValidator))
	}
}
