package operator

import (
	"testing"
	"time"

	"github.com/valguard/valguard/roster"
)

func drainOpts() DrainOptions {
	return DrainOptions{MoveOptions: opts(""), Reason: "maintenance"}
}

// TestDrainStandby: a standby gets its mark at once and leaves the
// election.
func TestDrainStandby(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	if err := r.v.Drain(t.Context(), "b", drainOpts()); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("b drained\n", "b reports it is out of the election (state Syncing) after 0s")
	r.end("a", []string{"drain b"})
	if d := r.store.drains["b"]; d.Reason != "maintenance" || d.By != "ops" || !d.At.Equal(epoch) {
		t.Errorf("drain mark %+v", d)
	}
}

// TestDrainLeader: the leader hands over first and is drained before it
// steps down; with nobody to take over the drain is refused before any
// blackout wait.
func TestDrainLeader(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	if err := r.v.Drain(t.Context(), "a", drainOpts()); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("a leads: handing over before it is drained", "a asked to step down", "hand-over a → b done",
		"a out of the election, drained (Syncing)", "a drained\n")
	r.end("b", []string{"handover a→any synced standby go=false", "drain a", "handover a→any synced standby go=true", "end handover"})

	reps := standbyPair()
	reps["b"].synced = false
	r = newRig(t, "a", reps)
	b := &fakeBlackout{clk: r.clk, until: epoch.Add(time.Hour)}
	o := drainOpts()
	o.Blackout = b
	errHas(t, r.v.Drain(t.Context(), "a", o), "a not drained: no synced standby within 5 blocks can take over from a")
	if b.calls != 0 {
		t.Errorf("blackout checked %d times before the refusal", b.calls)
	}
	r.end("a", []string{})
}

// TestDrainRefusals: an unknown replica (unless --force), a replica
// already drained, and a drain that could leave nobody to lead.
func TestDrainRefusals(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	errHas(t, r.v.Drain(t.Context(), "x", drainOpts()), `replica "x" is unknown (known: a, b): check the name, or --force to drain a replica that has never reported; nothing changed`)
	r.end("a", []string{})

	o := drainOpts()
	o.Force = true
	if err := r.v.Drain(t.Context(), "x", o); err != nil {
		t.Fatal(err)
	}
	r.says("x drained\n", "x is not running; its valguard will see it when it starts")

	r = newRig(t, "a", standbyPair())
	r.store.drains["b"] = roster.Drain{}
	if err := r.v.Drain(t.Context(), "b", drainOpts()); err != nil {
		t.Fatal(err)
	}
	r.says("b is already drained; nothing changed")
	r.end("a", []string{})

	reps := standbyPair()
	reps["a"].state, reps["b"].synced = "Voting", false
	r = newRig(t, "", reps)
	r.store.sim = false
	errHas(t, r.v.Drain(t.Context(), "a", drainOpts()), "a not drained: nobody holds the lock and no other replica is a synced standby within 5 blocks that could take it, so draining a could leave the validator with no leader:\n  a: \n  b: its node is not synced (state Voting, height 100, 0 behind)",
		"nothing changed: check valguard status, or --force to drain it anyway")
	r.end("", []string{})
}

// TestDrainRechecksAfterTheBlackoutWait: what the drain does is decided
// on what it sees after the blackout wait (as the end-to-end test
// TestDrainRechecksTheLeaderAfterTheBlackoutWait, on fakes).
func TestDrainRechecksAfterTheBlackoutWait(t *testing.T) {
	bTakes := func(r *rig, reps map[string]*fakeReplica) func() {
		return func() {
			r.store.mu.Lock()
			defer r.store.mu.Unlock()
			reps["a"].stopped = true
			r.store.leader, reps["b"].state = "b", "Validating"
		}
	}
	cases := []struct {
		name   string
		drain  string
		during func(r *rig, reps map[string]*fakeReplica) func()
		err    []string
		says   []string
		marked bool
		leader string
	}{
		{"standby became the leader, nobody to take over", "b", bTakes,
			[]string{"b not drained", "became the leader while the command waited", "no synced standby"}, nil, false, "b"},
		{"leader lost the lock meanwhile", "a", bTakes,
			nil, []string{"a no longer leads (b does): draining it without a hand-over", "a drained"}, true, "b"},
		{"leader lost the lock, nobody could take it", "a", func(r *rig, reps map[string]*fakeReplica) func() {
			return func() {
				r.store.mu.Lock()
				defer r.store.mu.Unlock()
				reps["a"].stopped = true
				r.store.leader, reps["b"].state = "", "Syncing"
			}
		}, []string{"a not drained", "nobody holds the lock"}, nil, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reps := standbyPair()
			r := newRig(t, "a", reps)
			r.store.sim = false
			o := drainOpts()
			o.Blackout = &fakeBlackout{clk: r.clk, until: epoch.Add(3 * time.Second)}
			r.clk.At(time.Second, tc.during(r, reps))
			err := r.v.Drain(t.Context(), tc.drain, o)
			if tc.err != nil {
				errHas(t, err, tc.err...)
			} else if err != nil {
				t.Fatalf("%v\n%s", err, r.out)
			}
			r.says(append([]string{"waiting for the blackout window"}, tc.says...)...)
			if _, marked := r.store.drains[tc.drain]; marked != tc.marked {
				t.Errorf("%s drain mark written: %v, want %v", tc.drain, marked, tc.marked)
			}
			r.end(tc.leader, nil)
		})
	}
}

// TestDrainAttempts: a replica that keeps taking the lock at the write
// is looked at again, a bounded number of times.
func TestDrainAttempts(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	r.store.leading = true
	errHas(t, r.v.Drain(t.Context(), "b", drainOpts()), "b not drained: it kept moving between leader and standby while the command looked (valguard status); nothing changed, run again")
	r.says("b took the lock meanwhile: looking again", "b took the lock meanwhile: looking again", "b took the lock meanwhile: looking again")
	r.end("a", []string{})
}

// TestDrainSettle: a replica that does not show the mark within
// DrainSettle is named.
func TestDrainSettle(t *testing.T) {
	reps := standbyPair()
	reps["b"].stuck = true
	r := newRig(t, "a", reps)
	if err := r.v.Drain(t.Context(), "b", drainOpts()); err != nil {
		t.Fatal(err)
	}
	r.says("b drained\n", "b has not reported it yet (valguard status)")
	if d := r.clk.Now().Sub(epoch); d < DrainSettle || d > DrainSettle+time.Second {
		t.Errorf("waited %s, want %s", d, DrainSettle)
	}
}

func TestUndrain(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	errHas(t, r.v.Undrain(t.Context(), "b"), "b is not drained; nothing changed (valguard status lists the drained replicas)")

	r.store.drains["b"] = roster.Drain{}
	r.store.replicas["b"].state = "Syncing"
	if err := r.v.Undrain(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	r.says("b undrained: it takes part in the election again once its node is synced", "b reports it is no longer drained (state Voting) after 0s")
	r.end("a", []string{"undrain b"})
}
