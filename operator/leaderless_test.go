package operator

import (
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/roster"
)

// TestLeaderlessView: under --signers any, health counts the replicas
// that sign (no lock holder is expected), a hand-over has nothing to do,
// the last replica that signs is not drained without --force, and the
// status table gives each replica's races won and lost with its share.
func TestLeaderlessView(t *testing.T) {
	now := time.Now()
	rep := func(id, state string, won, lost uint64) roster.Entry {
		return roster.Entry{Alive: true, Report: roster.Report{Replica: id, State: state, Height: 100, Synced: true,
			SignMode: "signer", Signers: "any", RacesWon: won, RacesLost: lost, Updated: now.Add(-time.Second)}}
	}
	cases := []struct {
		name    string
		entries []roster.Entry
		drains  []string
		code    int
		verdict string
	}{
		{"two sign", []roster.Entry{rep("a", "Validating", 30, 10), rep("b", "Validating", 10, 30)}, nil, StatusOK, "OK: 2 replicas sign (--signers any): a, b"},
		{"one drained", []roster.Entry{rep("a", "Validating", 30, 10), rep("b", "Syncing", 10, 30)}, []string{"b"}, StatusDegraded, "WARNING: only a signs"},
		{"none", []roster.Entry{rep("a", "Syncing", 0, 0), rep("b", "Startup", 0, 0)}, nil, StatusNoLeader, "CRITICAL: no replica signs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drains := map[string]roster.Drain{}
			for _, d := range tc.drains {
				drains[d] = roster.Drain{}
			}
			w := NewView(now, nil, tc.entries, drains, nil)
			if !w.Leaderless() {
				t.Fatal("not seen as leaderless")
			}
			code, verdict := w.Health(DefaultMaxLag)
			if code != tc.code || !strings.HasPrefix(verdict, tc.verdict) {
				t.Fatalf("health %d %q, want %d %q", code, verdict, tc.code, tc.verdict)
			}
			if err := w.CanMove("", DefaultMaxLag, false); err == nil || !strings.Contains(err.Error(), "nothing to hand over") {
				t.Fatalf("CanMove: %v, want nothing to hand over", err)
			}
		})
	}
	w := NewView(now, nil, cases[1].entries, map[string]roster.Drain{"b": {}}, nil)
	if why := w.lastSigner("a"); !strings.Contains(why, "would stop the validator") {
		t.Fatalf("draining the last signer: %q", why)
	}
	w = NewView(now, nil, cases[0].entries, nil, nil)
	if why := w.lastSigner("a"); why != "" {
		t.Fatalf("draining one of two signers: %q", why)
	}
	if got := w.races(cases[0].entries[0]); got != "30/10 (75%)" {
		t.Fatalf("races of a: %q", got)
	}
	if got := w.role(cases[0].entries[1], DefaultMaxLag); got != "* signer" {
		t.Fatalf("role of b: %q", got)
	}
}
