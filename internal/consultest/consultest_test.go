package consultest

import (
	"testing"
	"time"
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
