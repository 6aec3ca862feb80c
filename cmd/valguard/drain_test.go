package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/roster"
)

// fakeRoster writes, straight into a real Consul, what the replicas of one
// validator would: their sessions, reports and the lock.
type fakeRoster struct {
	t      *testing.T
	client *api.Client
	id     string
}

// session creates a TTL-only session with a 1 ms lock-delay, so that the
// lock can move at once after it is destroyed.
func (f *fakeRoster) session() string {
	f.t.Helper()
	id, _, err := f.client.Session().CreateNoChecks(&api.SessionEntry{TTL: "60s", Behavior: api.SessionBehaviorRelease, LockDelay: time.Millisecond}, nil)
	if err != nil {
		f.t.Fatalf("create session: %v", err)
	}
	return id
}

// acquire takes key for session with value, retrying through the
// lock-delay.
func (f *fakeRoster) acquire(key, session string, value any) {
	f.t.Helper()
	b, err := json.Marshal(value)
	if err != nil {
		f.t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok, _, err := f.client.KV().Acquire(&api.KVPair{Key: key, Value: b, Session: session}, nil)
		if err == nil && ok {
			return
		}
		if time.Now().After(end) {
			f.t.Fatalf("acquire %s: %v, %v", key, ok, err)
		}
	}
}

// report publishes replica's report under its session.
func (f *fakeRoster) report(session, replica, state string) {
	f.acquire("valguard/"+f.id+"/replicas/"+replica, session,
		roster.Report{Replica: replica, State: state, Height: 100, Synced: true, Updated: time.Now()})
}

// lead makes replica, with session, the lock holder.
func (f *fakeRoster) lead(session, replica string) {
	f.acquire("valguard/"+f.id+"/leader", session, election.LeaderInfo{ReplicaID: replica, Since: time.Now()})
}

// drainMarked reports whether replica carries a drain mark.
func (f *fakeRoster) drainMarked(replica string) bool {
	f.t.Helper()
	pair, _, err := f.client.KV().Get("valguard/"+f.id+"/control/drain/"+replica, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		f.t.Fatal(err)
	}
	return pair != nil
}

// Item 5 of "Fail closed everywhere": valguard drain decides what to do
// with the replica only after any blackout wait. Two replicas, a leading
// and b its synced standby; the drain waits for a blackout window, and
// meanwhile a dies and b takes the lock. Draining b must not just mark it
// (it would step down, leaving no leader): with nobody to take over, the
// drain is refused and nothing is written. Draining a, which led before
// the wait, must not hand over from b, the new leader: a is drained as
// the standby (here: dead replica) it now is. The code before the fix
// drained b (exit 0, mark written) and, for a, refused because nobody
// could take over from b. When nobody took the lock and no other replica
// could, draining a is refused too.
func TestDrainRechecksTheLeaderAfterTheBlackoutWait(t *testing.T) {
	agent := consultest.Start(t)
	bTakes := func(f *fakeRoster, sa, sb string) {
		if _, err := f.client.Session().Destroy(sa, nil); err != nil {
			t.Fatal(err)
		}
		f.lead(sb, "b")
		f.report(sb, "b", "Validating")
	}
	cases := []struct {
		name   string
		drain  string
		during func(f *fakeRoster, sa, sb string) // while the drain waits
		code   int
		says   []string
		marked bool
		holder string // the lock holder at the end ("" none)
	}{
		{"standby became the leader, nobody to take over", "b", bTakes, 1,
			[]string{"b not drained", "became the leader while the command waited", "no synced standby"}, false, "b"},
		{"leader lost the lock meanwhile", "a", bTakes, 0,
			[]string{"a no longer leads (b does): draining it without a hand-over", "a drained"}, true, "b"},
		{"leader lost the lock, nobody could take it", "a", func(f *fakeRoster, sa, sb string) {
			if _, err := f.client.Session().Destroy(sa, nil); err != nil {
				t.Fatal(err)
			}
			f.report(sb, "b", "Syncing")
		}, 1, []string{"a not drained", "nobody holds the lock"}, false, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeRoster{t: t, client: agent.Client(t), id: fmt.Sprintf("drain-recheck-%d", i)}
			sa, sb := f.session(), f.session()
			f.report(sa, "a", "Validating")
			f.lead(sa, "a")
			f.report(sb, "b", "Voting")

			dir := t.TempDir()
			closed := filepath.Join(dir, "closed")
			logPath := filepath.Join(dir, "drain.log")
			log, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, valguardBin, "drain", "--consul-url", "http://"+agent.Addr, "--validator-id", f.id,
				"--timeout", "40s", "--blackout-command", "test -e "+closed, tc.drain)
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			output := func() string { b, _ := os.ReadFile(logPath); return string(b) }
			for end := time.Now().Add(20 * time.Second); !strings.Contains(output(), "waiting for the blackout window"); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("drain does not wait for the blackout window:\n%s", output())
				}
			}
			tc.during(f, sa, sb)
			if err := os.WriteFile(closed, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			out := output()
			t.Logf("valguard drain %s → exit %d\n%s", tc.drain, code, out)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(out, s) {
					t.Errorf("output does not say %q", s)
				}
			}
			if got := f.drainMarked(tc.drain); got != tc.marked {
				t.Errorf("%s drain mark written: %v, want %v", tc.drain, got, tc.marked)
			}
			if pair, _, err := f.client.KV().Get("valguard/"+f.id+"/control/handover", &api.QueryOptions{RequireConsistent: true}); err != nil || pair != nil {
				t.Errorf("hand-over request %s (%v), want none", pair.Value, err)
			}
			want := map[string]string{"": "", "b": sb}[tc.holder]
			if l, _, err := f.client.KV().Get("valguard/"+f.id+"/leader", &api.QueryOptions{RequireConsistent: true}); err != nil || l == nil || l.Session != want {
				t.Errorf("lock %+v (%v), want held by %q", l, err, tc.holder)
			}
		})
	}
}
