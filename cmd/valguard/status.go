package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/operator"
)

func statusCommand() *cli.Command {
	flags := append(rosterFlags(),
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "watch", Usage: "print again every --interval until interrupted"},
		&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "with --watch: time between two looks"},
		&cli.Int64Flag{Name: "max-lag", Value: operator.DefaultMaxLag, Usage: "blocks a standby may be behind the best replica and count as synced"},
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
		return cli.Exit(fmt.Sprintf("unexpected arguments %q", c.Args().Slice()), operator.StatusUnknown)
	}
	v, err := openRoster(c, consulclient.AccessRead)
	if err != nil {
		return cli.Exit(err.Error(), operator.StatusUnknown)
	}
	if !c.Bool("watch") {
		code, err := v.Status(c.Context, c.Int64("max-lag"), c.Bool("json"))
		if err != nil {
			return cli.Exit(err.Error(), operator.StatusUnknown)
		}
		return cli.Exit("", code)
	}
	ctx, stop := interruptible(c.Context)
	defer stop()
	v.WatchStatus(ctx, c.Int64("max-lag"), c.Bool("json"), c.Duration("interval"))
	return nil
}
