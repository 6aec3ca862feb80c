package supervisor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// LeaseDeadline reports a session only while this replica may run a
// validator: a standby's session is not reported (a watchdog fed from it
// must not starve a standby when Consul is slow), a leader's is, until its
// release begins.
func TestLeaseDeadlineOnlyWhileLeading(t *testing.T) {
	r := newRig(t, nil)
	r.run()
	r.waitState(Voting)
	if _, held := r.sup.LeaseDeadline(); held {
		t.Fatal("a standby's session reported as a lease to guard")
	}
	r.el.grant <- struct{}{}
	r.waitState(Validating)
	d, held := r.sup.LeaseDeadline()
	if !held || !d.Equal(r.el.current().deadline) {
		t.Fatalf("leader's lease = %v, %v; want its session's deadline %v", d, held, r.el.current().deadline)
	}
	r.el.current().lose(errors.New("local lease deadline passed"))
	r.before("release final=", "prepare:voter")
	eventually(t, 5*time.Second, "no lease after the release", func() bool {
		_, held := r.sup.LeaseDeadline()
		return !held
	})
}

// A validator that fails to start leaves no key linked behind a released
// lock: the voter role (which unlinks the key) is prepared again before
// the release (S2).
func TestFailedPromotionUnlinksBeforeRelease(t *testing.T) {
	r := newRig(t, nil)
	r.node.set(func(n *fakeNode) { n.argv[RoleValidator] = []string{"/nonexistent/valguard-test-node"} })
	r.run()
	r.waitState(Voting)
	first := r.el.current()
	r.el.grant <- struct{}{}
	eventually(t, 5*time.Second, "the failed promotion released", first.isClosed)
	r.before("prepare:validator", "prepare:voter")
	ev := r.j.list()
	iv, ir := -1, -1
	for i, e := range ev {
		if strings.HasPrefix(e, "prepare:voter") && i > r.j.index("prepare:validator") && iv < 0 {
			iv = i
		}
		if strings.HasPrefix(e, "release") && ir < 0 {
			ir = i
		}
	}
	if iv < 0 || ir < 0 || iv > ir {
		t.Fatalf("key not unlinked before the release:\n%s", strings.Join(ev, "\n"))
	}
}
