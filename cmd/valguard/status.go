package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/roster"
)

// Exit codes of valguard status, usable as a monitoring check.
const (
	statusOK       = 0 // one leader, at least one synced standby
	statusDegraded = 1 // a leader, no synced standby
	statusNoLeader = 2 // no leader
	statusUnknown  = 3 // Consul could not be read
)

// defaultMaxLag is how many blocks a synced standby may be behind the
// best replica.
const defaultMaxLag = 5

func statusCommand() *cli.Command {
	flags := append(fleetFlags(),
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "watch", Usage: "print again every --interval until interrupted"},
		&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "with --watch: time between two looks"},
		&cli.Int64Flag{Name: "max-lag", Value: defaultMaxLag, Usage: "blocks a standby may be behind the best replica and count as synced"},
	)
	return &cli.Command{
		Name: "status",
		Usage: "one row per replica: the leader, lease, heights and lag, drained and silent replicas; " +
			"exit 0 with one leader and a synced standby, 1 without a synced standby, 2 without a leader, 3 when Consul cannot be read",
		Flags:  append(flags, consulFlags()...),
		Action: status,
	}
}

func status(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("unexpected arguments %q", c.Args().Slice()), statusUnknown)
	}
	f, err := openFleet(c)
	if err == nil {
		err = checkConsulAccess(c, f.el.Config().Client, f.id, accessRead)
	}
	if err != nil {
		return cli.Exit(err.Error(), statusUnknown)
	}
	if !c.Bool("watch") {
		code, err := statusOnce(c.Context, c, f)
		if err != nil {
			return cli.Exit(err.Error(), statusUnknown)
		}
		return cli.Exit("", code)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	for {
		if _, err := statusOnce(ctx, c, f); err != nil && ctx.Err() == nil {
			fmt.Fprintln(c.App.ErrWriter, "valguard:", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Duration("interval")):
		}
		if !c.Bool("json") {
			fmt.Fprintln(c.App.Writer)
		}
	}
}

// statusOnce prints one look and returns the exit code it calls for.
func statusOnce(ctx context.Context, c *cli.Context, f *fleetCtx) (int, error) {
	v, err := f.look(ctx)
	if err != nil {
		return statusUnknown, err
	}
	maxLag := c.Int64("max-lag")
	code, verdict := v.health(maxLag)
	if c.Bool("json") {
		return code, printStatusJSON(c.App.Writer, f, v, code, verdict, maxLag)
	}
	printStatus(c.App.Writer, f, v, verdict, maxLag)
	return code, nil
}

// health is the exit code and a sentence for it.
func (v *view) health(maxLag int64) (int, string) {
	sb := v.standbys(maxLag)
	switch {
	case v.leader == nil:
		return statusNoLeader, "CRITICAL: no leader holds the lock: the validator is not signing"
	case len(sb) == 0:
		return statusDegraded, "WARNING: no synced standby: a failure of " + v.leaderID() + " would stop the validator"
	}
	return statusOK, fmt.Sprintf("OK: leader %s, synced standby %s", v.leaderID(), strings.Join(sb, ", "))
}

// role is the replica's role in the table.
func (v *view) role(e roster.Entry, maxLag int64) string {
	switch {
	case e.Replica == v.leaderID():
		return "* leader"
	case !v.reporting(e):
		return "silent"
	case v.notStandby(e, maxLag) == "":
		return "standby"
	}
	return "-"
}

func printStatus(w io.Writer, f *fleetCtx, v *view, verdict string, maxLag int64) {
	fmt.Fprintf(w, "validator %s (%s)  at %s\n", f.id, f.el.LockKey(), v.at.Format(time.RFC3339))
	if v.leader != nil {
		lease := "unknown"
		if e, ok := v.entry(v.leaderID()); ok && !e.LeaseDeadline.IsZero() {
			lease = e.LeaseDeadline.Sub(v.at).Round(100*time.Millisecond).String() + " left"
		}
		fmt.Fprintf(w, "leader    %s on %s since %s, lease %s\n", v.leader.ReplicaID, v.leader.Hostname, ago(v.at, v.leader.Since)+" ago", lease)
	} else {
		fmt.Fprintln(w, "leader    none")
	}
	if h := v.handover; h != nil {
		state := "window over"
		if v.at.Before(h.Until) {
			state = h.Until.Sub(v.at).Round(time.Second).String() + " left"
		}
		fmt.Fprintf(w, "hand-over %s from %s to %s (%s)\n", h.ID, h.From, orAny(h.To), state)
	}
	fmt.Fprintln(w, verdict)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tROLE\tSTATE\tMODE\tHEIGHT\tLAG\tBLOCK AGE\tDRAINED\tREPORTED\tVERSION\tLAST CHANGE")
	for _, e := range v.entries {
		blockAge := "-"
		if !e.BlockTime.IsZero() {
			blockAge = ago(v.at, e.BlockTime)
		}
		height := fmt.Sprint(e.Height)
		if e.CatchingUp {
			height += " (catching up)"
		}
		reported := ago(v.at, e.Updated) + " ago"
		if !e.Alive {
			reported = "stopped " + reported
		}
		change := fmt.Sprintf("%s ago: %s", ago(v.at, e.Since), e.Reason)
		if e.Hold != "" && e.Hold != "drained" {
			change += " [held: " + e.Hold + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Replica, v.role(e, maxLag), e.State, e.SignMode,
			height, v.lag(e), blockAge, yesNo(v.drained(e.Replica)), reported, e.Version, change)
	}
	tw.Flush()
	for _, e := range v.entries {
		if p := e.Progress; p != nil && e.State == "Syncing" && v.reporting(e) {
			eta := "unknown"
			if p.ETASeconds > 0 {
				eta = (time.Duration(p.ETASeconds) * time.Second).String()
			}
			fmt.Fprintf(w, "%s syncing: height %d of %d, %.1f blocks/s, ETA %s\n", e.Replica, p.Height, p.Best, p.Rate, eta)
		}
	}
	for id := range v.drains {
		if _, ok := v.entry(id); !ok {
			fmt.Fprintf(w, "%s is drained but has never reported\n", id)
		}
	}
}

func printStatusJSON(w io.Writer, f *fleetCtx, v *view, code int, verdict string, maxLag int64) error {
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
	}{Validator: f.id, LockKey: f.el.LockKey(), At: v.at, Handover: v.handover, Health: code, Verdict: verdict, Replicas: []row{}}
	if v.leader != nil {
		out.Leader = v.leader
		if e, ok := v.entry(v.leaderID()); ok && !e.LeaseDeadline.IsZero() {
			s := e.LeaseDeadline.Sub(v.at).Seconds()
			out.LeaseLeft = &s
		}
	}
	for _, e := range v.entries {
		out.Replicas = append(out.Replicas, row{Report: e.Report, Role: strings.TrimPrefix(v.role(e, maxLag), "* "),
			Reporting: v.reporting(e), SessionAlive: e.Alive, LagNow: v.lag(e), Drained: v.drained(e.Replica),
			NotStandby: v.notStandby(e, maxLag)})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orAny(to string) string {
	if to == "" {
		return "any synced standby"
	}
	return to
}
