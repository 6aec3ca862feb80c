package supervisor

import (
	"fmt"
	"math"
	"time"
)

// A replica out of the election (Syncing) runs its node as a voter: it
// holds no key and nothing it asks is signed. Such a node can stop taking
// part in consensus while its process and RPC stay up: CometBFT stops its
// consensus for good on a failed write of its WAL (a full disk) and waits,
// its height frozen, until it is restarted. The leader's node gets the
// recovery restart (signermode.go); a standby's node would otherwise stay
// frozen and the replica out of the election for ever. So a standby
// whose node's height has not moved for MaxStall, and all that time below
// the best height a replica reports (the chain moves on without it), has
// its node restarted, in the voter role. Being behind is what counts:
// when a stall of the whole chain ends, another replica's node may show
// the next height a poll before this one does, and that is not a stuck
// node. A node that comes back at the same height and stays there is
// restarted again after twice as long, up to MaxStall×32; a height above
// the one it was restarted at resets that.
//
// Not restarted: a node that says it is catching up or is at height 0 (a
// state sync or a header sync keeps its height for as long as it takes:
// neard's head stays while it syncs), a node whose status cannot be read
// (the start-up and crash paths handle one that exits), a node valguard
// does not run (Unsupervised), a node in the validator role (its restart
// is the key-file mode's release), and a node at the top (no replica
// reports a height above it: the whole chain stands).
type stuckWatch struct {
	height int64     // the node's height as last read
	since  time.Time // when it was first read at that height
	behind time.Time // since when a replica has reported a higher one (zero: none does); never before since
}

// nodeStuck notes the status st, read in Syncing, and returns why the
// node is to be restarted, or "" while it is not.
func (s *Supervisor) nodeStuck(w *stuckWatch, st Status) string {
	now := s.clock.Now()
	if st.Height != w.height || w.since.IsZero() {
		if st.Height > s.stuckAt {
			s.stuckRestarts = 0
		}
		w.height, w.since, w.behind = st.Height, now, time.Time{}
		return ""
	}
	if s.cfg.Unsupervised || s.cfg.BestHeight == nil || s.sess != nil || s.proc == nil || s.proc.role != RoleVoter ||
		st.Height <= 0 || st.CatchingUp {
		w.behind = time.Time{}
		return ""
	}
	best := s.cfg.BestHeight()
	if best <= st.Height {
		w.behind = time.Time{}
		return ""
	}
	if w.behind.IsZero() {
		w.behind = now
	}
	window := s.cfg.MaxStall << min(s.stuckRestarts, 5)
	if window < s.cfg.MaxStall { // overflowed
		window = math.MaxInt64
	}
	// behind is reset with since, so behind for the window is also
	// frozen for it.
	if now.Sub(w.behind) < window {
		return ""
	}
	return fmt.Sprintf("node height %d has not moved for %s while a replica reports height %d", st.Height, now.Sub(w.since).Round(time.Second), best)
}

// restartStuck stops the stuck node; Startup starts it again (after its
// reap if the stop did not reap it).
func (s *Supervisor) restartStuck(why string, height int64) (State, string) {
	s.log.Warn().Str("reason", why).Int("restarts", s.stuckRestarts+1).
		Msg("the node stopped taking part in consensus while the chain moves on: restarting it (it holds no key)")
	s.cfg.Metrics.stuckRestart()
	s.stuckRestarts++
	s.stuckAt = height
	s.stopNode("stuck node restart")
	return Startup, "stuck node restarted: " + why
}
