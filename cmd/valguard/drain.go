package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/roster"
)

// drainSettle bounds the wait for a drained or undrained replica to show
// it in its report.
const drainSettle = 15 * time.Second

func drainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "keep a replica out of the election, across restarts, until undrain; the leader hands over first",
		ArgsUsage: "[REPLICA] (default: this host's name, as --replica-id)",
		Flags: slices.Concat(fleetFlags(), []cli.Flag{
			&cli.StringFlag{Name: "reason", Usage: "why, shown by valguard status"},
		}, moveFlags(), blackoutFlags(), consulFlags()),
		Action: drain,
	}
}

func undrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "undrain",
		Usage:     "let a drained replica take part in the election again",
		ArgsUsage: "[REPLICA] (default: this host's name, as --replica-id)",
		Flags:     slices.Concat(fleetFlags(), consulFlags()),
		Action:    undrain,
	}
}

// replicaArg is the one optional REPLICA argument, the hostname without.
func replicaArg(c *cli.Context) (string, error) {
	switch c.NArg() {
	case 0:
		if h := hostname(); h != "" {
			return h, nil
		}
		return "", errors.New("name the replica: this host's name is unknown")
	case 1:
		return c.Args().First(), nil
	}
	if rest := c.Args().Slice()[1:]; strings.HasPrefix(rest[0], "-") {
		return "", fmt.Errorf("flags go before REPLICA: valguard %s %s %s", c.Command.Name, strings.Join(rest, " "), c.Args().First())
	}
	return "", fmt.Errorf("one replica at a time, got %q", c.Args().Slice())
}

func drain(c *cli.Context) error {
	replica, err := replicaArg(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if err := checkWindow(c); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	b, err := newBlackoutCheck(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	f, err := openFleet(c)
	if err == nil {
		err = checkConsulAccess(c, f.el.Config().Client, f.id, accessControl)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	ctx, stop := interruptible(c.Context)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
	defer cancel()
	v, err := f.look(ctx)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if v.drained(replica) {
		fmt.Fprintf(c.App.Writer, "%s is already drained; nothing changed\n", replica)
		return nil
	}
	if _, ok := v.entry(replica); !ok && !c.Bool("force") {
		return cli.Exit(fmt.Sprintf("replica %q is unknown (known: %s): check the name, or --force to drain a replica that has never reported; nothing changed",
			replica, v.knownReplicas()), 1)
	}
	led := replica == v.leaderID()
	if led {
		// Nobody to take over: refuse before any wait.
		if err := v.canMove("", c.Int64("max-lag"), c.Bool("force")); err != nil {
			return cli.Exit(fmt.Sprintf("%s not drained: %v", replica, err), 1)
		}
	}
	if err := awaitBlackout(ctx, c, b); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	mark := roster.Drain{At: time.Now(), By: hostname(), Reason: c.String("reason")}
	return f.drainNow(ctx, c, replica, mark, led)
}

// drainAttempts bounds drainNow's looks at a replica that keeps moving
// between leader and standby.
const drainAttempts = 3

// drainNow drains replica as things stand now, after any blackout wait,
// since the leader may have changed during it: a leader hands over first
// (or the drain is refused when nobody can take over), any other replica
// gets its drain mark in one transaction with a check that it does not
// hold the lock (roster.SetDrainUnlessLeading). Draining the leader
// without a hand-over would leave the validator with no leader. led says
// whether replica led before the wait, for the messages.
func (f *fleetCtx) drainNow(ctx context.Context, c *cli.Context, replica string, mark roster.Drain, led bool) error {
	for range drainAttempts {
		v, err := f.look(ctx)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		if v.drained(replica) {
			fmt.Fprintf(c.App.Writer, "%s was drained meanwhile; nothing changed\n", replica)
			return nil
		}
		if replica == v.leaderID() {
			return f.drainLeader(ctx, c, v, replica, mark, led)
		}
		if why := v.leaderlessDrain(replica, c.Int64("max-lag")); why != "" && !c.Bool("force") {
			return cli.Exit(fmt.Sprintf("%s not drained: %s\nnothing changed: check valguard status, or --force to drain it anyway", replica, why), 1)
		}
		if led {
			now := "nobody holds the lock"
			if l := v.leaderID(); l != "" {
				now = l + " does"
			}
			fmt.Fprintf(c.App.Writer, "%s no longer leads (%s): draining it without a hand-over\n", replica, now)
		}
		err = f.ro.SetDrainUnlessLeading(ctx, replica, mark, f.el.LockKey(), lockHolder)
		if errors.Is(err, roster.ErrLeading) {
			fmt.Fprintf(c.App.Writer, "%s took the lock meanwhile: looking again\n", replica)
			led = false
			continue
		}
		if err != nil {
			return cli.Exit(f.hint(err).Error(), 1)
		}
		fmt.Fprintf(c.App.Writer, "%s drained\n", replica)
		f.awaitReport(ctx, c, replica, func(e roster.Entry) bool { return e.Drained && e.State != "Voting" && e.State != "Registering" },
			"out of the election")
		return nil
	}
	return cli.Exit(fmt.Sprintf("%s not drained: it kept moving between leader and standby while the command looked (valguard status); nothing changed, run again", replica), 1)
}

// leaderlessDrain says why draining replica, which does not hold the
// lock, could leave the validator with no leader: nobody holds the lock
// and no other replica is a synced standby that could take it. "" when
// someone leads or could.
func (v *view) leaderlessDrain(replica string, maxLag int64) string {
	if v.leader != nil || slices.ContainsFunc(v.standbys(maxLag), func(r string) bool { return r != replica }) {
		return ""
	}
	return fmt.Sprintf("nobody holds the lock and no other replica is a synced standby within %d blocks that could take it, so draining %s could leave the validator with no leader:\n%s",
		maxLag, replica, v.whyNone(maxLag))
}

// drainLeader hands over from replica, the leader in v, and drains it
// before it steps down; with nobody to take over it refuses.
func (f *fleetCtx) drainLeader(ctx context.Context, c *cli.Context, v *view, replica string, mark roster.Drain, led bool) error {
	became := ""
	if !led {
		became = " (it became the leader while the command waited)"
	}
	if err := v.canMove("", c.Int64("max-lag"), c.Bool("force")); err != nil {
		return cli.Exit(fmt.Sprintf("%s not drained: it leads%s and draining it would leave the validator with no leader: %v", replica, became, err), 1)
	}
	fmt.Fprintf(c.App.Writer, "%s leads%s: handing over before it is drained\n", replica, became)
	setDrain := func(ctx context.Context) error { return f.ro.SetDrain(ctx, replica, mark) }
	if err := f.move(ctx, c, v, "", setDrain); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "%s drained\n", replica)
	return nil
}

func undrain(c *cli.Context) error {
	replica, err := replicaArg(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	f, err := openFleet(c)
	if err == nil {
		err = checkConsulAccess(c, f.el.Config().Client, f.id, accessControl)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	ctx, cancel := context.WithTimeout(c.Context, drainSettle+3*c.Duration("consul-timeout"))
	defer cancel()
	if err := f.ro.Undrain(ctx, replica); err != nil {
		if errors.Is(err, roster.ErrNotDrained) {
			return cli.Exit(fmt.Sprintf("%s is not drained; nothing changed (valguard status lists the drained replicas)", replica), 1)
		}
		return cli.Exit(f.hint(err).Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "%s undrained: it takes part in the election again once its node is synced\n", replica)
	f.awaitReport(ctx, c, replica, func(e roster.Entry) bool { return !e.Drained }, "no longer drained")
	return nil
}

// awaitReport waits (at most drainSettle) for replica's report to satisfy
// ok and says so; a replica that is not running is only named.
func (f *fleetCtx) awaitReport(ctx context.Context, c *cli.Context, replica string, ok func(roster.Entry) bool, what string) {
	ctx, cancel := context.WithTimeout(ctx, drainSettle)
	defer cancel()
	start := time.Now()
	for {
		v, err := f.look(ctx)
		if err == nil {
			e, known := v.entry(replica)
			switch {
			case !known || !v.reporting(e):
				fmt.Fprintf(c.App.Writer, "%s is not running; its valguard will see it when it starts\n", replica)
				return
			case ok(e):
				fmt.Fprintf(c.App.Writer, "%s reports it is %s (state %s) after %s\n", replica, what, e.State, time.Since(start).Round(10*time.Millisecond))
				return
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(c.App.Writer, "%s has not reported it yet (valguard status)\n", replica)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
