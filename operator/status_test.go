package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/roster"
)

func TestStandbyAndHealth(t *testing.T) {
	now := time.Now()
	rep := func(id, state string, h int64, alive bool) roster.Entry {
		return roster.Entry{Alive: alive, Report: roster.Report{Replica: id, State: state, Height: h, Synced: true, Updated: now.Add(-time.Second)}}
	}
	cases := []struct {
		name    string
		leader  bool
		entries []roster.Entry
		drains  []string
		code    int
	}{
		{"ok", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 99, true)}, nil, StatusOK},
		{"standby lags", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 90, true)}, nil, StatusDegraded},
		{"standby drained", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 100, true)}, []string{"b"}, StatusDegraded},
		{"standby stopped", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 100, false)}, nil, StatusDegraded},
		{"standby syncing", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Syncing", 100, true)}, nil, StatusDegraded},
		{"no leader", false, []roster.Entry{rep("a", "Voting", 100, true), rep("b", "Voting", 100, true)}, nil, StatusNoLeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drains := map[string]roster.Drain{}
			for _, d := range tc.drains {
				drains[d] = roster.Drain{}
			}
			var leader *election.LeaderInfo
			if tc.leader {
				leader = &election.LeaderInfo{ReplicaID: "a"}
			}
			v := NewView(now, leader, tc.entries, drains, nil)
			if code, verdict := v.Health(DefaultMaxLag); code != tc.code {
				t.Fatalf("health %d (%s), want %d; b: %s", code, verdict, tc.code, v.NotStandby(tc.entries[1], DefaultMaxLag))
			}
		})
	}
}

// TestStatus: the table, the verdict and the exit code of each health
// case, as text and as JSON; StatusUnknown when Consul cannot be read.
func TestStatus(t *testing.T) {
	cases := []struct {
		name    string
		leader  string
		change  func(reps map[string]*fakeReplica, s *fakeStore)
		code    int
		text    []string
		jsonHas []string
	}{
		{"ok", "a", nil, StatusOK,
			[]string{"validator v (valguard/v/leader)  at 2026-01-01T12:00:00Z", "leader    a on host-a since 1h0m0s ago, lease unknown", "OK: leader a, synced standby b",
				"REPLICA  ROLE      STATE", "a        * leader  Validating", "b        standby   Voting"},
			[]string{`"health": 0`, `"verdict": "OK: leader a, synced standby b"`, `"role": "leader"`, `"role": "standby"`}},
		{"drained standby", "a", func(reps map[string]*fakeReplica, s *fakeStore) {
			s.drains["b"] = roster.Drain{}
			s.drains["z"] = roster.Drain{}
		}, StatusDegraded,
			[]string{"WARNING: no synced standby: a failure of a would stop the validator", "z is drained but has never reported"},
			[]string{`"health": 1`, `"not_standby": "it is drained (valguard undrain b)"`, `"drained": true`}},
		{"stopped replicas, no leader", "", func(reps map[string]*fakeReplica, s *fakeStore) {
			reps["a"].stopped, reps["a"].state = true, "Shutdown"
			reps["b"].stopped = true
		}, StatusNoLeader,
			[]string{"leader    none", "CRITICAL: no leader holds the lock: the validator is not signing", "silent", "stopped 1m0s ago"},
			[]string{`"health": 2`, `"leader": null`, `"session_alive": false`}},
		{"a request", "a", func(reps map[string]*fakeReplica, s *fakeStore) {
			s.ho = &roster.Handover{ID: "r1", From: "a", To: "b", Until: epoch.Add(10 * time.Second)}
		}, StatusOK,
			[]string{"hand-over r1 from a to b (10s left)"},
			[]string{`"handover": {`, `"id": "r1"`}},
	}
	for _, tc := range cases {
		for _, asJSON := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s json %v", tc.name, asJSON), func(t *testing.T) {
				reps := standbyPair()
				r := newRig(t, tc.leader, reps)
				r.store.sim = false
				if tc.change != nil {
					tc.change(reps, r.store)
				}
				code, err := r.v.Status(t.Context(), DefaultMaxLag, asJSON)
				if err != nil || code != tc.code {
					t.Fatalf("status %d, %v; want %d\n%s", code, err, tc.code, r.out)
				}
				want := tc.text
				if asJSON {
					want = tc.jsonHas
					var v map[string]any
					if err := json.Unmarshal(r.out.Bytes(), &v); err != nil {
						t.Fatalf("not JSON: %v\n%s", err, r.out)
					}
				}
				for _, w := range want {
					if !strings.Contains(r.out.String(), w) {
						t.Errorf("output does not say %q:\n%s", w, r.out)
					}
				}
			})
		}
	}

	r := newRig(t, "a", standbyPair())
	r.store.readErr = errConsul
	if code, err := r.v.Status(t.Context(), DefaultMaxLag, false); code != StatusUnknown || err == nil {
		t.Fatalf("status with Consul down: %d, %v; want %d with an error", code, err, StatusUnknown)
	}
}

// TestWatchStatus prints a look every interval until ctx ends, and goes
// on after a failed read.
func TestWatchStatus(t *testing.T) {
	r := newRig(t, "a", standbyPair())
	ctx, cancel := context.WithCancel(t.Context())
	r.clk.At(2*time.Second, func() { r.store.mu.Lock(); r.store.readErr = errConsul; r.store.mu.Unlock() })
	r.clk.At(4*time.Second, func() { r.store.mu.Lock(); r.store.readErr = nil; r.store.mu.Unlock() })
	r.clk.At(5*time.Second, cancel)
	r.v.WatchStatus(ctx, DefaultMaxLag, false, time.Second)
	if n := strings.Count(r.out.String(), "OK: leader a"); n != 3 {
		t.Errorf("%d looks printed, want 3 (at 0, 1 and 4 s):\n%s", n, r.out)
	}
	if n := strings.Count(r.err.String(), "valguard: read valguard/v/leader"); n != 2 {
		t.Errorf("%d errors printed, want 2:\n%s", n, r.err)
	}
}

func TestParseState(t *testing.T) {
	for _, s := range []State{Startup, Syncing, Registering, Voting, Validating, Shutdown} {
		if got := ParseState(s.String()); got != s {
			t.Errorf("ParseState(%q) = %v", s.String(), got)
		}
	}
	for _, name := range []string{"", "voting", "Migrating"} {
		if got := ParseState(name); got != Unknown || got.inElection() {
			t.Errorf("ParseState(%q) = %v, want Unknown, out of the election", name, got)
		}
	}
	if !Voting.inElection() || !Registering.inElection() || Validating.inElection() {
		t.Error("inElection: Voting and Registering only")
	}
}
