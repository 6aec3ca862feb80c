package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/roster"
)

func TestCanMove(t *testing.T) {
	rep := func(id, state string, h int64) *fakeReplica {
		return &fakeReplica{state: state, height: h, synced: true}
	}
	cases := []struct {
		name     string
		leader   string
		replicas map[string]*fakeReplica
		drained  string
		request  *roster.Handover
		to       string
		force    bool
		err      []string // nil: it can move
	}{
		{"to any", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "", nil, "", false, nil},
		{"to b", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 98)}, "", nil, "b", false, nil},
		{"no leader", "", map[string]*fakeReplica{"a": rep("a", "Voting", 100), "b": rep("b", "Voting", 100)}, "", nil, "", false,
			[]string{"no replica holds the lock, so there is nothing to hand over"}},
		{"no standby", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Syncing", 100)}, "", nil, "", false,
			[]string{"no synced standby within 5 blocks can take over from a; nothing changed:\n  b: it is Syncing, not Voting"}},
		{"alone", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100)}, "", nil, "", false,
			[]string{"no other replica has ever reported"}},
		{"unknown target", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "", nil, "c", false,
			[]string{`replica "c" is unknown (known: a, b)`}},
		{"target lagging", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 90)}, "", nil, "b", false,
			[]string{"cannot hand over to b: it lags 10 blocks behind the best replica (more than 5); nothing changed"}},
		{"target drained", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "b", nil, "b", false,
			[]string{"cannot hand over to b: it is drained (valguard undrain b)"}},
		{"target not synced", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": {state: "Syncing", height: 50}}, "", nil, "b", false,
			[]string{"its node is not synced (state Syncing, height 50, 50 behind)"}},
		{"target stopped", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": {state: "Voting", height: 100, synced: true, stopped: true}}, "", nil, "b", false,
			[]string{"it stopped reporting (last report 1m0s ago, state then Voting): its valguard is not running"}},
		{"target hung", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": {state: "Voting", height: 100, synced: true, hung: true}}, "", nil, "b", false,
			[]string{"its last report is 1m0s old: its valguard is hung or cut off from Consul"}},
		{"target leads", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "", nil, "a", false,
			[]string{"cannot hand over to a: it is the leader"}},
		{"target in an unknown state", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Migrating", 100)}, "", nil, "b", false,
			[]string{"it is Migrating, not Voting"}},
		{"request under way", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "",
			&roster.Handover{ID: "r1", From: "a", Until: epoch.Add(20 * time.Second)}, "", false,
			[]string{"hand-over r1 from a to any synced standby is under way for 20s more: wait for it, or --force; nothing changed"}},
		{"request under way, force", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "",
			&roster.Handover{ID: "r1", From: "a", Until: epoch.Add(20 * time.Second)}, "", true, nil},
		{"request over", "a", map[string]*fakeReplica{"a": rep("a", "Validating", 100), "b": rep("b", "Voting", 100)}, "",
			&roster.Handover{ID: "r1", From: "a", Until: epoch.Add(-time.Second)}, "", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.leader, tc.replicas)
			r.store.sim = false
			if tc.drained != "" {
				r.store.drains[tc.drained] = roster.Drain{}
			}
			r.store.ho = tc.request
			w, err := r.v.Look(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			err = w.CanMove(tc.to, DefaultMaxLag, tc.force)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("cannot move: %v", err)
				}
				return
			}
			errHas(t, err, tc.err...)
		})
	}
}

// TestHandoverToTarget: every step of a hand-over to a named target with
// a third replica to hold out, and the old leader's rejoin.
func TestHandoverToTarget(t *testing.T) {
	reps := standbyPair()
	reps["c"] = &fakeReplica{state: "Voting", synced: true, rpc: "rpc-c"}
	r := newRig(t, "a", reps)
	if err := r.v.Handover(t.Context(), opts("b")); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("hand-over ", ": a → b (window 30s)",
		"request written at chain height 1000",
		"other replicas out of the election: c",
		"a asked to step down",
		"lock released by a",
		"lock taken by b",
		"b Validating (chain height",
		"first signature of the new leader on chain at height 100",
		"hand-over a → b done: first signature ",
		"a back in the election as a standby (Voting)")
	r.never("WARNING")
	r.end("b", []string{"handover a→b go=false", "handover a→b go=true", "end handover"})
	if strings.Join(r.rpcs, " ") != "rpc-b rpc-c rpc-a" {
		t.Errorf("chain watched through %q, want the target's RPC first and the leader's last", r.rpcs)
	}
}

// TestHandoverToAny: without a target the leader may step down at once.
func TestHandoverToAny(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	o := opts("")
	o.NodeRPCs = []string{"rpc-x"}
	if err := r.v.Handover(t.Context(), o); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says(": a → any synced standby (window 30s)", "a asked to step down", "lock taken by b", "hand-over a → b done", "missed heights since the request (height 1000): 0 []")
	r.never("other replicas")
	r.end("b", []string{"handover a→any synced standby go=true", "end handover"})
	if strings.Join(r.rpcs, " ") != "rpc-x" {
		t.Errorf("chain watched through %q, want --node-rpc", r.rpcs)
	}
}

// TestHandoverRefusals: refusals before the request is written change
// nothing.
func TestHandoverRefusals(t *testing.T) {
	t.Run("no standby", func(t *testing.T) {
		reps := standbyPair()
		reps["b"].synced = false
		r := newRig(t, "a", reps)
		errHas(t, r.v.Handover(t.Context(), opts("")), "no synced standby within 5 blocks")
		r.end("a", []string{})
	})
	t.Run("blackout, no wait", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		o := opts("b")
		o.Blackout, o.NoWait = &fakeBlackout{clk: r.clk, until: epoch.Add(time.Hour)}, true
		err := r.v.Handover(t.Context(), o)
		if !errors.Is(err, ErrBlackout) {
			t.Fatalf("err %v, want ErrBlackout", err)
		}
		errHas(t, err, "epoch test is true; nothing changed (wait for the window to close, or drop --no-wait to wait, or --force)")
		r.end("a", []string{})
	})
	t.Run("blackout outlasts the timeout", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		o := opts("b")
		o.Timeout, o.Blackout = 10*time.Second, &fakeBlackout{clk: r.clk, until: epoch.Add(time.Hour)}
		errHas(t, r.v.Handover(t.Context(), o), "blackout window open", "still open after 10s: epoch test is true; nothing changed")
		r.says("waiting for the blackout window to close: epoch test is true")
		r.end("a", []string{})
	})
	t.Run("target drained during the blackout wait", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		o := opts("b")
		o.Blackout = &fakeBlackout{clk: r.clk, until: epoch.Add(3 * time.Second)}
		r.clk.At(2*time.Second, func() { r.store.drains["b"] = roster.Drain{} })
		errHas(t, r.v.Handover(t.Context(), o), "cannot hand over to b: it is drained")
		r.says("waiting for the blackout window to close", "blackout window closed after 3s")
		r.end("a", []string{})
	})
	t.Run("another request meanwhile", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		r.store.putErr = roster.ErrRequestChanged
		errHas(t, r.v.Handover(t.Context(), opts("b")), "another hand-over request was written meanwhile; nothing changed")
		r.end("a", []string{})
	})
	t.Run("Consul down", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		r.store.readErr = errConsul
		r.v.Hint = func(err error) error { return errors.New(err.Error() + "\nhint") }
		errHas(t, r.v.Handover(t.Context(), opts("b")), "read valguard/v/leader: ", "connection refused\nhint")
	})
}

// TestHandoverAfterBlackout: the hand-over waits for the window, then
// goes ahead; --force goes ahead at once, saying so on standard error.
func TestHandoverAfterBlackout(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	o := opts("b")
	o.Blackout = &fakeBlackout{clk: r.clk, until: epoch.Add(3 * time.Second)}
	if err := r.v.Handover(t.Context(), o); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("waiting for the blackout window to close: epoch test is true", "blackout window closed after 3s", "hand-over a → b done")
	r.end("b", nil)

	r = newRig(t, "a", standbyPair())
	o.Force, o.Blackout = true, &fakeBlackout{clk: r.clk, until: epoch.Add(time.Hour)}
	if err := r.v.Handover(t.Context(), o); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if !strings.Contains(r.err.String(), "valguard: WARNING: --force: going ahead although blackout window open") {
		t.Fatalf("no warning on standard error: %q", r.err)
	}
	r.never("waiting for the blackout")
	r.end("b", nil)
}

// TestHandoverHoldOut: a replica that does not confirm it left the
// election within holdOutWait stops the hand-over (the leader keeps
// leading), unless --force.
func TestHandoverHoldOut(t *testing.T) {
	reps := standbyPair()
	reps["c"] = &fakeReplica{state: "Voting", synced: true, stuck: true}
	r := newRig(t, "a", reps)
	errHas(t, r.v.Handover(t.Context(), opts("b")), "not handed over: within 5s these replicas did not confirm they left the election, so one of them could take the lock instead of b: c (state Voting, hold ",
		"the request is removed and the leader keeps leading")
	r.never("asked to step down")
	r.end("a", []string{"handover a→b go=false", "end handover"})
	if now := r.clk.Now().Sub(epoch); now < holdOutWait || now > holdOutWait+time.Second {
		t.Errorf("gave up after %s, want %s", now, holdOutWait)
	}

	reps = standbyPair()
	reps["c"] = &fakeReplica{state: "Voting", synced: true, stuck: true}
	r = newRig(t, "a", reps)
	o := opts("b")
	o.Force = true
	if err := r.v.Handover(t.Context(), o); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("WARNING: --force: going ahead although these replicas did not confirm they left the election (one of them may take the lock instead of b): c", "a asked to step down", "hand-over a → b done")
	r.end("b", nil)
}

// TestHandoverTimeouts: the --timeout ends each wait, saying where things
// stand, and the request is removed.
func TestHandoverTimeouts(t *testing.T) {
	t.Run("while holding out", func(t *testing.T) {
		reps := standbyPair()
		reps["c"] = &fakeReplica{state: "Voting", synced: true, stuck: true}
		r := newRig(t, "a", reps)
		o := opts("b")
		o.Timeout = 2 * time.Second
		errHas(t, r.v.Handover(t.Context(), o), "hand-over not confirmed within --timeout 2s while waiting for the other replicas to leave the election")
		r.says("not confirmed within --timeout 2s: request removed")
		r.end("a", nil)
	})
	t.Run("leader does not step down", func(t *testing.T) {
		reps := standbyPair()
		reps["a"].stuck = true
		r := newRig(t, "a", reps)
		o := opts("b")
		o.Timeout = 30 * time.Second
		errHas(t, r.v.Handover(t.Context(), o), `hand-over not confirmed within --timeout 30s: lock released: false, taken by: "", new leader Validating: false; the request is removed; see valguard status`)
		r.says("a asked to step down", "not confirmed within --timeout 30s: request removed")
		r.end("a", nil)
	})
	t.Run("no signature on chain", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		r.chain.silent = true
		o := opts("b")
		o.Timeout = 30 * time.Second
		errHas(t, r.v.Handover(t.Context(), o), "new leader Validating: true, no signature of it on chain yet (checked up to height 1029)")
		r.says("b Validating", "request removed")
		r.end("b", nil)
	})
	t.Run("new leader not Validating", func(t *testing.T) {
		r := newRig(t, "a", standbyPair())
		o := opts("b")
		o.Timeout = 30 * time.Second
		// b takes the lock but stays Voting (a promotion that hangs).
		r.store.sim = false
		r.clk.At(time.Second, func() {
			r.store.mu.Lock()
			r.store.leader = "b"
			r.store.mu.Unlock()
		})
		errHas(t, r.v.Handover(t.Context(), o), `lock released: true, taken by: "b", new leader Validating: false`)
	})
}

// TestHandoverInterrupted: an interrupt ends the hand-over and removes
// the request.
func TestHandoverInterrupted(t *testing.T) {
	reps := standbyPair()
	reps["a"].stuck = true
	r := newRig(t, "a", reps)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r.clk.At(5*time.Second, cancel)
	errHas(t, r.v.Handover(ctx, opts("b")), "hand-over interrupted: lock released: false")
	r.says("a asked to step down", "interrupted: request removed")
	r.end("a", nil)
}

// TestHandoverEndedEarly: the request is ended early when nobody takes
// the free lock, or the named target stops reporting; the old leader
// taking the lock back ends the command.
func TestHandoverEndedEarly(t *testing.T) {
	t.Run("nobody takes the lock", func(t *testing.T) {
		reps := standbyPair()
		reps["b"].noTake = true
		r := newRig(t, "a", reps)
		errHas(t, r.v.Handover(t.Context(), opts("")), "nothing moved: the request was ended early and a leads; see valguard status")
		r.says("lock released by a", "the lock has been free for 1s and nobody took it: request ended early, so that any synced standby (or a again) may take the lock",
			"a holds the lock (again)")
		r.end("a", nil)
	})
	t.Run("target stops reporting", func(t *testing.T) {
		reps := standbyPair()
		reps["a"].stuck = true
		r := newRig(t, "a", reps)
		r.clk.At(500*time.Millisecond, func() {
			r.store.mu.Lock()
			reps["b"].hung = true
			r.store.mu.Unlock()
		})
		errHas(t, r.v.Handover(t.Context(), opts("b")), "nothing moved: the request was ended early and a leads")
		r.says("a asked to step down", "the target b stopped reporting (its valguard is not running, hung or cut off from Consul): request ended early")
		r.end("a", nil)
	})
}

// TestHandoverWrongTaker: a replica other than the target took the
// lock: the hand-over says so and follows it.
func TestHandoverWrongTaker(t *testing.T) {
	reps := standbyPair()
	reps["b"].noTake = true
	reps["c"] = &fakeReplica{state: "Voting", synced: true, stuck: true} // ignores the request
	r := newRig(t, "a", reps)
	o := opts("b")
	o.Force = true
	if err := r.v.Handover(t.Context(), o); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("WARNING: --force", "lock taken by c", "WARNING: c took the lock, not b", "hand-over a → c done")
	r.end("c", nil)
}

// TestHandoverChainNotWatched: with no node RPC answering, the hand-over
// ends when the new leader is Validating.
func TestHandoverChainNotWatched(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	r.chain.err = errors.New("no node RPC known: give --node-rpc")
	if err := r.v.Handover(t.Context(), opts("b")); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("request written (chain height unknown: no node RPC known: give --node-rpc)", "b Validating (chain height 0)",
		"hand-over a → b done (", "s); the chain was not watched (no node RPC answered)", "a back in the election")
	r.end("b", nil)
}

// TestHandoverMissedHeights: heights nobody signed between the request
// and the new leader's first signature are counted.
func TestHandoverMissedHeights(t *testing.T) {
	reps := standbyPair()
	r := newRig(t, "a", reps)
	r.store.sim = false
	set := func(leader string, states ...string) func() {
		return func() {
			r.store.mu.Lock()
			defer r.store.mu.Unlock()
			r.store.leader = leader
			for i := 0; i < len(states); i += 2 {
				reps[states[i]].state = states[i+1]
			}
		}
	}
	r.clk.At(3*time.Second, set("", "a", "Syncing"))
	r.clk.At(5*time.Second, set("b", "b", "Validating"))
	r.clk.At(6*time.Second, set("b", "a", "Voting"))
	if err := r.v.Handover(t.Context(), opts("b")); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("  +3.000s  lock released by a", "  +5.000s  lock taken by b", "b Validating (chain height 1005)",
		"first signature of the new leader on chain at height 1006",
		"missed heights since the request (height 1000): 2 [1003 1004]", "  +6.000s  a back in the election as a standby (Voting)")
}

// TestHandoverRejoinWait: an old leader that does not come back is named
// after the rejoin wait, and the hand-over still succeeds.
func TestHandoverRejoinWait(t *testing.T) {
	reps := standbyPair()
	r := newRig(t, "a", reps)
	r.clk.At(time.Second, func() {
		r.store.mu.Lock()
		reps["a"].stuck, reps["a"].state = true, "Shutdown"
		r.store.mu.Unlock()
	})
	if err := r.v.Handover(t.Context(), opts("b")); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	r.says("hand-over a → b done", "a not yet back in the election (valguard status)")
	if d := r.clk.Now().Sub(epoch); d < rejoinWait {
		t.Errorf("rejoin wait ended after %s, want %s", d, rejoinWait)
	}
}
