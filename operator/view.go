package operator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/roster"
)

// staleAfter: a report older than this, from a replica whose session
// still holds its key, counts as not reporting (a hung valguard).
const staleAfter = 3 * roster.DefaultHeartbeat

// View is one look at the roster (Validator.Look).
type View struct {
	At       time.Time
	Leader   *election.LeaderInfo
	Entries  []roster.Entry
	Drains   map[string]roster.Drain
	Handover *roster.Handover
	hoIndex  uint64
	// best is the highest height a reporting replica reports.
	best int64
}

// NewView is a view of these parts at at, as Look makes one.
func NewView(at time.Time, leader *election.LeaderInfo, entries []roster.Entry, drains map[string]roster.Drain, h *roster.Handover) *View {
	if drains == nil {
		drains = map[string]roster.Drain{}
	}
	w := &View{At: at, Leader: leader, Entries: entries, Drains: drains, Handover: h}
	w.findBest()
	return w
}

func (w *View) findBest() {
	for _, e := range w.Entries {
		if w.Reporting(e) && e.Height > w.best {
			w.best = e.Height
		}
	}
}

// LeaderID is the lock holder's replica id; "" when none.
func (w *View) LeaderID() string {
	if w.Leader == nil {
		return ""
	}
	return w.Leader.ReplicaID
}

// Reporting: the replica's session holds its key and its last report is
// recent.
func (w *View) Reporting(e roster.Entry) bool {
	return e.Alive && e.Unreadable == "" && w.At.Sub(e.Updated) < staleAfter
}

// Entry is replica's report.
func (w *View) Entry(replica string) (roster.Entry, bool) {
	i := slices.IndexFunc(w.Entries, func(e roster.Entry) bool { return e.Replica == replica })
	if i < 0 {
		return roster.Entry{}, false
	}
	return w.Entries[i], true
}

// Drained: replica carries a drain mark.
func (w *View) Drained(replica string) bool {
	_, ok := w.Drains[replica]
	return ok
}

// Lag is how far e is behind the best reporting replica.
func (w *View) Lag(e roster.Entry) int64 { return max(w.best-e.Height, 0) }

// NotStandby says why e is not a synced standby within maxLag blocks of
// the best replica; "" when it is one.
func (w *View) NotStandby(e roster.Entry, maxLag int64) string {
	switch {
	case e.Unreadable != "":
		return "its report is unreadable: " + e.Unreadable
	case !e.Alive:
		return fmt.Sprintf("it stopped reporting (last report %s ago, state then %s): its valguard is not running", ago(w.At, e.Updated), e.State)
	case !w.Reporting(e):
		return fmt.Sprintf("its last report is %s old: its valguard is hung or cut off from Consul", ago(w.At, e.Updated))
	case e.Replica == w.LeaderID():
		return "it is the leader"
	case w.Drained(e.Replica):
		return "it is drained (valguard undrain " + e.Replica + ")"
	case e.CatchingUp || !e.Synced:
		return fmt.Sprintf("its node is not synced (state %s, height %d, %d behind)", e.State, e.Height, w.Lag(e))
	case w.Lag(e) > maxLag:
		return fmt.Sprintf("it lags %d blocks behind the best replica (more than %d)", w.Lag(e), maxLag)
	case StateOf(e) != Voting:
		why := ""
		if e.Hold != "" {
			why = ": " + e.Hold
		}
		return fmt.Sprintf("it is %s, not Voting%s", e.State, why)
	}
	return ""
}

// Standbys are the synced standbys within maxLag.
func (w *View) Standbys(maxLag int64) []string {
	var out []string
	for _, e := range w.Entries {
		if w.NotStandby(e, maxLag) == "" {
			out = append(out, e.Replica)
		}
	}
	return out
}

// whyNone lists, for an error, why no replica is a synced standby.
func (w *View) whyNone(maxLag int64) string {
	var lines []string
	for _, e := range w.Entries {
		if e.Replica == w.LeaderID() {
			continue
		}
		lines = append(lines, fmt.Sprintf("  %s: %s", e.Replica, w.NotStandby(e, maxLag)))
	}
	if len(lines) == 0 {
		return "  no other replica has ever reported"
	}
	return strings.Join(lines, "\n")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(100 * time.Millisecond).String()
}

// knownReplicas lists the replica ids for an error message.
func (w *View) knownReplicas() string {
	var ids []string
	for _, e := range w.Entries {
		ids = append(ids, e.Replica)
	}
	if len(ids) == 0 {
		return "none has reported yet"
	}
	return strings.Join(ids, ", ")
}

func orAny(to string) string {
	if to == "" {
		return "any synced standby"
	}
	return to
}
