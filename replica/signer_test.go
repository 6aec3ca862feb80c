package replica

import "testing"

// TestRestoreBound: a missing watermark is raised above the higher of the
// node's height and the best reported one, plus --max-lag; at a launch (no
// block known anywhere) the bound is 0, so a new validator leads from zero.
func TestRestoreBound(t *testing.T) {
	for _, tc := range []struct{ own, best, lag, want int64 }{
		{0, 0, 10, 0},
		{100, 0, 10, 110},
		{100, 120, 10, 130},
		{0, 50, 10, 60},
		{100, 90, 0, 100},
	} {
		if got := restoreBound(tc.own, tc.best, tc.lag); got != tc.want {
			t.Errorf("restoreBound(%d, %d, %d) = %d, want %d", tc.own, tc.best, tc.lag, got, tc.want)
		}
	}
}
