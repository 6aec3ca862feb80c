package supervisor

import (
	"fmt"
	"time"
)

// lagging reports why a synced standby whose node is at height h stays
// out of the election: its node is more than MaxLag blocks below the best
// height a live replica reports (Config.BestHeight). "" when it may take
// part: MaxLag 0, no BestHeight, or within the limit. A standby that won
// the lock while lagging would lead a validator whose node cannot sign
// the chain's current heights until it has caught up, while a replica
// that can may be waiting; such a standby waits until its node catches
// up instead.
//
// Not guaranteed: the best height is what the replicas last published (a
// second or so old), and a replica that died keeps its last report until
// its report session expires (TTL to 2×TTL); a standby more than MaxLag
// behind a dead leader's last height waits for its own node to catch up
// or for that report to expire.
func (s *Supervisor) lagging(h int64) string {
	if s.cfg.MaxLag <= 0 || s.cfg.BestHeight == nil {
		return ""
	}
	if best := s.cfg.BestHeight(); best-h > s.cfg.MaxLag {
		return fmt.Sprintf("node at height %d is %d blocks behind the best height %d a replica reports (more than --max-lag %d)", h, best-h, best, s.cfg.MaxLag)
	}
	return ""
}

// takeDelayPerBlock is TakeDelay's wait for each block a standby's node
// is below the best height.
const takeDelayPerBlock = 100 * time.Millisecond

// TakeDelay is how long this standby lets fresher ones take a freed lock
// first (election.Config.TakeDelay): takeDelayPerBlock for each block its
// node, as last read, is below the best height a replica reports (the
// most, 10 s, capped by the election at 1 s, when its node has no block
// yet); 0 at the best height, or without BestHeight. Of several eligible standbys
// the freshest thus wins, and one alone loses at most that wait.
func (s *Supervisor) TakeDelay() time.Duration {
	if s.cfg.BestHeight == nil {
		return 0
	}
	h := s.Snapshot().Node.Height
	behind := s.cfg.BestHeight() - h
	if behind <= 0 {
		return 0
	}
	if h <= 0 { // no block read yet: the least fresh there is
		behind = 100
	}
	return time.Duration(min(behind, 100)) * takeDelayPerBlock
}
