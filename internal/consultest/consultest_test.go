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
	a.Stop()
	select {
	case <-a.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("agent still running 5s after Stop")
	}
	a.Stop() // idempotent
}
