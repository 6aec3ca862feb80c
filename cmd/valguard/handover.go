package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/operator"
)

// moveFlags are shared by handover and drain.
func moveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-lag", Value: operator.DefaultMaxLag, Usage: "blocks a standby may be behind the best replica and still take over"},
		&cli.DurationFlag{Name: "timeout", Value: operator.DefaultHandoverTimeout, Usage: "give up (saying where things stand) after this long"},
		// The window is checked by each replica against its own wall
		// clock: the operator's host and the replicas are assumed to
		// agree within a second (NTP). See docs/operations.md, "Hand-over",
		// for what a larger skew does.
		&cli.DurationFlag{Name: "window", Value: operator.DefaultHandoverWindow, Usage: "how long only the target may take the lock and the old leader stays out (at most 10m; each replica checks it against its own wall clock, assumed within a second of this host's)"},
		&cli.StringSliceFlag{Name: "node-rpc", Usage: "CometBFT RPC (http://host:port) to watch the chain for the new leader's first signature, best a node outside the hand-over (default: the RPCs the replicas report)", EnvVars: env("node-rpc")},
	}
}

func handoverCommand() *cli.Command {
	flags := slices.Concat(rosterFlags(), []cli.Flag{
		&cli.StringFlag{Name: "to", Usage: "the replica to hand over to (default: any synced standby)"},
	}, moveFlags(), blackoutFlags(), consulFlags())
	return &cli.Command{
		Name:   "handover",
		Usage:  "move leadership to a synced standby without stopping any valguard; returns when the new leader's first signature is on chain",
		Flags:  flags,
		Action: handover,
	}
}

func handover(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: name the target with --to", c.Args().Slice())
	}
	if err := operator.CheckWindow(c.Duration("window")); err != nil {
		return err
	}
	v, err := openRoster(c, consulclient.AccessControl)
	if err != nil {
		return err
	}
	o, err := moveOptions(c)
	if err != nil {
		return err
	}
	ctx, stop := interruptible(c.Context)
	defer stop()
	return v.Handover(ctx, o)
}

// interruptible is ctx ended by SIGINT or SIGTERM: status --watch stops,
// and handover and drain remove their request on the way out instead of
// leaving it in Consul until its window ends (with a named target that
// died, nobody could lead meanwhile). A second signal after stop kills as
// usual.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
