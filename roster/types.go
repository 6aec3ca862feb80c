package roster

import (
	"fmt"
	"time"
)

// Report is what a replica publishes about itself under replicas/<id>.
type Report struct {
	Replica  string `json:"replica"`
	Hostname string `json:"hostname,omitempty"`
	Version  string `json:"version,omitempty"`
	SignMode string `json:"sign_mode,omitempty"`
	// Signers is the signer mode's policy (leader or any); empty in the
	// key-file mode, and from versions before the policy existed (leader).
	Signers string `json:"signers,omitempty"`
	// RacesWon and RacesLost: under --signers any, the new signatures this
	// replica committed to the sign record, and its check-and-sets that
	// found another replica's signature there first.
	RacesWon  uint64 `json:"races_won,omitempty"`
	RacesLost uint64 `json:"races_lost,omitempty"`
	// State is the supervisor state; Since when it was entered and
	// Reason why.
	State  string    `json:"state"`
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
	// Height, BlockTime, CatchingUp and Synced are the node's last
	// status.
	Height     int64     `json:"height"`
	BlockTime  time.Time `json:"block_time,omitzero"`
	CatchingUp bool      `json:"catching_up"`
	Synced     bool      `json:"synced"`
	// Lag is how far Height was behind the best height any live replica
	// reported, when this report was written.
	Lag int64 `json:"lag"`
	// Drained and Hold are the operator's requests as this replica sees
	// them: Hold is why it stays out of the election ("" when it takes
	// part).
	Drained bool   `json:"drained"`
	Hold    string `json:"hold,omitempty"`
	// LeaseDeadline is the leader's local lease deadline on its wall
	// clock; zero when not leading.
	LeaseDeadline time.Time `json:"lease_deadline,omitzero"`
	// NodeRPC is where the replica reads its node's status.
	NodeRPC string `json:"node_rpc,omitempty"`
	// Progress is set while the node syncs.
	Progress *Progress `json:"progress,omitempty"`
	// Updated is when the report was written (the writer's wall clock).
	Updated time.Time `json:"updated"`
}

// Progress is a syncing node's progress.
type Progress struct {
	Height int64   `json:"height"`
	Best   int64   `json:"best_height"`
	Rate   float64 `json:"blocks_per_second"`
	// ETASeconds is the time left at Rate to reach Best; 0 when unknown.
	ETASeconds float64 `json:"eta_seconds"`
}

// sameContent reports whether two reports differ only in Updated, Lag,
// the lease deadline and the race counts, which move on their own: those
// alone are written only at the heartbeat.
func sameContent(a, b Report) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	a.RacesWon, b.RacesWon, a.RacesLost, b.RacesLost = 0, 0, 0, 0
	a.Lag, b.Lag = 0, 0
	a.LeaseDeadline, b.LeaseDeadline = time.Time{}, time.Time{}
	pa, pb := a.Progress, b.Progress
	a.Progress, b.Progress = nil, nil
	if (pa == nil) != (pb == nil) || (pa != nil && *pa != *pb) {
		return false
	}
	return a == b
}

// Drain marks a replica drained: it stays out of the election.
type Drain struct {
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// Handover is a request to move leadership from From to To (any synced
// standby when To is empty) until Until.
type Handover struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to,omitempty"`
	// Go: the leader may step down. Before it, the replicas other than
	// To are kept out, so that when the lock is released only To is
	// waiting for it.
	Go          bool      `json:"go"`
	RequestedAt time.Time `json:"requested_at"`
	Until       time.Time `json:"until"`
	By          string    `json:"by,omitempty"`
	Force       bool      `json:"force,omitempty"`
}

// target names the replica a request hands over to.
func (h *Handover) target() string {
	if h.To == "" {
		return "any synced standby"
	}
	return h.To
}

// HoldFor is why replica must stay out of the election at now, given its
// drain mark (nil: not drained) and the hand-over request (nil: none);
// "" when it may take part:
//
//   - drained: out;
//   - the request's leader (From), once Go: out until the window ends,
//     so that it steps down and does not take the lock back;
//   - with a named target, every other replica: out for the window;
//   - otherwise: in.
func HoldFor(replica string, d *Drain, h *Handover, now time.Time) string {
	if d != nil {
		return "drained"
	}
	if h == nil || !now.Before(h.Until) {
		return ""
	}
	switch {
	case replica == h.From && h.Go:
		return fmt.Sprintf("handing over to %s (request %s)", h.target(), h.ID)
	case replica == h.From:
		return ""
	case h.To != "" && replica != h.To:
		return fmt.Sprintf("hand-over from %s to %s under way (request %s)", h.From, h.To, h.ID)
	}
	return ""
}
