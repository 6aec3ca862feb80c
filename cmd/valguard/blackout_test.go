package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/testnet"
	"github.com/valguard/valguard/roster"
)

func TestBlackoutCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Query().Get("body"))
	}))
	defer srv.Close()
	dead := fmt.Sprintf("http://127.0.0.1:%d/", testnet.FreePort(t))
	cases := []struct {
		name, url, field, command string
		open                      bool
		why                       string
	}{
		{"field true", srv.URL + `?body={"is_confirmation_poc_active":true}`, "is_confirmation_poc_active", "", true, "is true"},
		{"field false", srv.URL + `?body={"is_confirmation_poc_active":false}`, "is_confirmation_poc_active", "", false, ""},
		{"nested path", srv.URL + `?body={"epoch":{"poc":false}}`, "epoch.poc", "", false, ""},
		{"field missing", srv.URL + `?body={"phase":1}`, "is_confirmation_poc_active", "", true, "missing"},
		{"not a boolean", srv.URL + `?body={"x":"yes"}`, "x", "", true, "not true or false"},
		{"not JSON", srv.URL + `?body=hello`, "x", "", true, "did not answer JSON"},
		{"no answer", dead, "x", "", true, "does not answer"},
		{"command fails", "", "", "exit 3", true, "exit status 3"},
		{"command succeeds", "", "", "true", false, ""},
		{"url closed, command fails", srv.URL + `?body={"x":false}`, "x", "false", true, "blackout-command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &blackoutCheck{url: tc.url, field: tc.field, command: tc.command, timeout: 2 * time.Second}
			open, why := b.open(t.Context())
			if open != tc.open || !strings.Contains(why, tc.why) {
				t.Fatalf("open %v (%q), want %v with %q", open, why, tc.open, tc.why)
			}
		})
	}
}

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
		{"ok", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 99, true)}, nil, statusOK},
		{"standby lags", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 90, true)}, nil, statusDegraded},
		{"standby drained", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 100, true)}, []string{"b"}, statusDegraded},
		{"standby stopped", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Voting", 100, false)}, nil, statusDegraded},
		{"standby syncing", true, []roster.Entry{rep("a", "Validating", 100, true), rep("b", "Syncing", 100, true)}, nil, statusDegraded},
		{"no leader", false, []roster.Entry{rep("a", "Voting", 100, true), rep("b", "Voting", 100, true)}, nil, statusNoLeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := &view{at: now, entries: tc.entries, drains: map[string]roster.Drain{}}
			if tc.leader {
				v.leader = &election.LeaderInfo{ReplicaID: "a"}
			}
			for _, d := range tc.drains {
				v.drains[d] = roster.Drain{}
			}
			for _, e := range v.entries {
				if v.reporting(e) && e.Height > v.best {
					v.best = e.Height
				}
			}
			if code, verdict := v.health(defaultMaxLag); code != tc.code {
				t.Fatalf("health %d (%s), want %d; b: %s", code, verdict, tc.code, v.notStandby(tc.entries[1], defaultMaxLag))
			}
		})
	}
}
