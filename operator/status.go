package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valguard/valguard/roster"
)

// Exit codes of valguard status, usable as a monitoring check.
const (
	StatusOK       = 0 // one leader, at least one synced standby
	StatusDegraded = 1 // a leader, no synced standby
	StatusNoLeader = 2 // no leader
	StatusUnknown  = 3 // Consul could not be read
)

// DefaultMaxLag is how many blocks a synced standby may be behind the
// best replica.
const DefaultMaxLag = 5

// Status prints one look (as JSON with asJSON) and returns the exit code
// it calls for; StatusUnknown with the error when Consul cannot be read.
func (v *Validator) Status(ctx context.Context, maxLag int64, asJSON bool) (int, error) {
	w, err := v.Look(ctx)
	if err != nil {
		return StatusUnknown, err
	}
	code, verdict := w.Health(maxLag)
	if asJSON {
		return code, v.printStatusJSON(w, code, verdict, maxLag)
	}
	v.printStatus(w, verdict, maxLag)
	return code, nil
}

// WatchStatus prints Status every interval until ctx ends; an error
// goes to Err and the watch goes on.
func (v *Validator) WatchStatus(ctx context.Context, maxLag int64, asJSON bool, interval time.Duration) {
	for {
		if _, err := v.Status(ctx, maxLag, asJSON); err != nil && ctx.Err() == nil {
			fmt.Fprintln(v.errOut(), "valguard:", err)
		}
		if sleep(ctx, v.clock(), interval) != nil {
			return
		}
		if !asJSON {
			fmt.Fprintln(v.out())
		}
	}
}

// Health is the exit code and a sentence for it.
func (w *View) Health(maxLag int64) (int, string) {
	if w.Leaderless() && w.Leader == nil {
		return w.leaderlessHealth()
	}
	sb := w.Standbys(maxLag)
	switch {
	case w.Leader == nil:
		return StatusNoLeader, "CRITICAL: no leader holds the lock: the validator is not signing"
	case len(sb) == 0:
		return StatusDegraded, "WARNING: no synced standby: a failure of " + w.LeaderID() + " would stop the validator"
	}
	return StatusOK, fmt.Sprintf("OK: leader %s, synced standby %s", w.LeaderID(), strings.Join(sb, ", "))
}

// role is the replica's role in the table.
func (w *View) role(e roster.Entry, maxLag int64) string {
	switch {
	case e.Replica == w.LeaderID():
		return "* leader"
	case e.Signers == signersAny && slices.Contains(w.Signing(), e.Replica):
		return "* signer"
	case !w.Reporting(e):
		return "silent"
	case w.NotStandby(e, maxLag) == "":
		return "standby"
	}
	return "-"
}

func (v *Validator) printStatus(w *View, verdict string, maxLag int64) {
	out := v.out()
	fmt.Fprintf(out, "validator %s (%s)  at %s\n", v.ID, v.Store.LockKey(), w.At.Format(time.RFC3339))
	if w.Leader != nil {
		lease := "unknown"
		if e, ok := w.Entry(w.LeaderID()); ok && !e.LeaseDeadline.IsZero() {
			lease = e.LeaseDeadline.Sub(w.At).Round(100*time.Millisecond).String() + " left"
		}
		fmt.Fprintf(out, "leader    %s on %s since %s, lease %s\n", w.Leader.ReplicaID, w.Leader.Hostname, ago(w.At, w.Leader.Since)+" ago", lease)
	} else if w.Leaderless() {
		fmt.Fprintln(out, "signers   any: every replica signs for its own node; the sign record in Consul decides each signature")
	} else {
		fmt.Fprintln(out, "leader    none")
	}
	if h := w.Handover; h != nil {
		state := "window over"
		if w.At.Before(h.Until) {
			state = h.Until.Sub(w.At).Round(time.Second).String() + " left"
		}
		fmt.Fprintf(out, "hand-over %s from %s to %s (%s)\n", h.ID, h.From, orAny(h.To), state)
	}
	fmt.Fprintln(out, verdict)
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	leaderless := w.Leaderless()
	races := ""
	if leaderless {
		races = "RACES WON/LOST\t"
	}
	fmt.Fprintln(tw, "REPLICA\tROLE\tSTATE\tMODE\tHEIGHT\tLAG\tBLOCK AGE\tDRAINED\t"+races+"REPORTED\tVERSION\tLAST CHANGE")
	for _, e := range w.Entries {
		blockAge := "-"
		if !e.BlockTime.IsZero() {
			blockAge = ago(w.At, e.BlockTime)
		}
		height := fmt.Sprint(e.Height)
		if e.CatchingUp {
			height += " (catching up)"
		}
		reported := ago(w.At, e.Updated) + " ago"
		if !e.Alive {
			reported = "stopped " + reported
		}
		change := fmt.Sprintf("%s ago: %s", ago(w.At, e.Since), e.Reason)
		if e.Hold != "" && e.Hold != "drained" {
			change += " [held: " + e.Hold + "]"
		}
		mode := e.SignMode
		if e.Signers != "" {
			mode += "/" + e.Signers
		}
		r := ""
		if leaderless {
			r = w.races(e) + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s%s\t%s\t%s\n", e.Replica, w.role(e, maxLag), e.State, mode,
			height, w.Lag(e), blockAge, yesNo(w.Drained(e.Replica)), r, reported, e.Version, change)
	}
	tw.Flush()
	for _, e := range w.Entries {
		if p := e.Progress; p != nil && StateOf(e) == Syncing && w.Reporting(e) {
			eta := "unknown"
			if p.ETASeconds > 0 {
				eta = (time.Duration(p.ETASeconds) * time.Second).String()
			}
			fmt.Fprintf(out, "%s syncing: height %d of %d, %.1f blocks/s, ETA %s\n", e.Replica, p.Height, p.Best, p.Rate, eta)
		}
	}
	for id := range w.Drains {
		if _, ok := w.Entry(id); !ok {
			fmt.Fprintf(out, "%s is drained but has never reported\n", id)
		}
	}
}

func (v *Validator) printStatusJSON(w *View, code int, verdict string, maxLag int64) error {
	type row struct {
		roster.Report
		Role         string `json:"role"`
		Reporting    bool   `json:"reporting"`
		SessionAlive bool   `json:"session_alive"`
		LagNow       int64  `json:"lag_now"`
		Drained      bool   `json:"drained"`
		NotStandby   string `json:"not_standby,omitempty"`
	}
	out := struct {
		Validator string           `json:"validator"`
		LockKey   string           `json:"lock_key"`
		At        time.Time        `json:"at"`
		Leader    any              `json:"leader"`
		LeaseLeft *float64         `json:"lease_remaining_seconds"`
		Handover  *roster.Handover `json:"handover"`
		Health    int              `json:"health"`
		Verdict   string           `json:"verdict"`
		Replicas  []row            `json:"replicas"`
	}{Validator: v.ID, LockKey: v.Store.LockKey(), At: w.At, Handover: w.Handover, Health: code, Verdict: verdict, Replicas: []row{}}
	if w.Leader != nil {
		out.Leader = w.Leader
		if e, ok := w.Entry(w.LeaderID()); ok && !e.LeaseDeadline.IsZero() {
			s := e.LeaseDeadline.Sub(w.At).Seconds()
			out.LeaseLeft = &s
		}
	}
	for _, e := range w.Entries {
		out.Replicas = append(out.Replicas, row{Report: e.Report, Role: strings.TrimPrefix(w.role(e, maxLag), "* "),
			Reporting: w.Reporting(e), SessionAlive: e.Alive, LagNow: w.Lag(e), Drained: w.Drained(e.Replica),
			NotStandby: w.NotStandby(e, maxLag)})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(v.out(), string(b))
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
