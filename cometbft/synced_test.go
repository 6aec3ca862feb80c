package cometbft

import (
	"testing"
	"time"

	"github.com/valguard/valguard/supervisor"
)

// TestSynced: the adapter's verdict, a chain at its launch (no block yet,
// not catching up) included: waiting for a block there would never end
// when the first block needs this validator.
func TestSynced(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		st   supervisor.Status
		age  time.Duration
		want bool
	}{
		{"fresh block", supervisor.Status{Height: 9, BlockTime: now}, time.Minute, true},
		{"old block", supervisor.Status{Height: 9, BlockTime: now.Add(-2 * time.Minute)}, time.Minute, false},
		{"old block, any age", supervisor.Status{Height: 9, BlockTime: now.Add(-2 * time.Minute)}, -1, true},
		{"catching up", supervisor.Status{Height: 9, BlockTime: now, CatchingUp: true}, time.Minute, false},
		{"launch: no block yet", supervisor.Status{}, time.Minute, true},
		{"block sync at height 0", supervisor.Status{CatchingUp: true}, time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := synced(tc.st, tc.age); got != tc.want {
				t.Fatalf("synced(%+v, %s) = %v", tc.st, tc.age, got)
			}
		})
	}
}
