package operator

import (
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
