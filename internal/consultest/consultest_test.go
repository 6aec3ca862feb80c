package consultest

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestStartElectsLeaderAndStops(t *testing.T) {
	t.Parallel()
	a := Start(t)
	leader, err := a.Client(t).Status().Leader()
	if err != nil {
		t.Fatalf("status leader: %v", err)
	}
	if leader == "" {
		t.Fatal("agent reports no leader after Start returned")
	}
	// Sessions need the agent's node in the catalog: Start waits for it.
	id, _, err := a.Client(t).Session().CreateNoChecks(nil, nil)
	if err != nil {
		t.Fatalf("create a session right after Start: %v", err)
	}
	if id == "" {
		t.Fatal("created session has no ID")
	}
	a.Stop()
	select {
	case <-a.p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("agent still running 5s after Stop")
	}
	a.Stop() // idempotent
}

// TestClusterSurvivesLeaderKill starts three servers, creates a TTL-only
// session through a follower, kills the Raft leader and checks that the
// other two elect a new one and still hold the session (Consul restarts
// session timers on a leader change, it does not drop them).
func TestClusterSurvivesLeaderKill(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	leader, err := c.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % 3
	client := NewClient(t, c.Servers[follower].Addr)
	id, _, err := client.Session().Create(&api.SessionEntry{TTL: "10s", Checks: []string{}, LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("create a session through a follower: %v", err)
	}
	if got := c.KillLeader(); got != leader {
		t.Fatalf("killed server %d, the leader was %d", got, leader)
	}
	killed := time.Now()
	if err := c.WaitReady(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	newLeader, err := c.Leader(t.Context())
	if err != nil || newLeader == leader {
		t.Fatalf("after the kill: leader %d (%v), killed %d", newLeader, err, leader)
	}
	t.Logf("leader %d killed; %d leads after %s", leader, newLeader, time.Since(killed).Round(time.Millisecond))
	s, _, err := client.Session().Info(id, &api.QueryOptions{RequireConsistent: true})
	if err != nil || s == nil {
		t.Fatalf("the session is gone after the leader change: %v", err)
	}
	c.Restart(leader)
	if _, err := c.Leader(t.Context()); err != nil {
		t.Fatal(err)
	}
}
