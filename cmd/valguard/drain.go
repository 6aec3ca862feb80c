package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/operator"
)

func drainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "keep a replica out of the election, across restarts, until undrain; the leader hands over first",
		ArgsUsage: "[REPLICA] (default: this host's name, as --replica-id)",
		Flags: slices.Concat(rosterFlags(), []cli.Flag{
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
		Flags:     slices.Concat(rosterFlags(), consulFlags()),
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
		return err
	}
	if err := operator.CheckWindow(c.Duration("window")); err != nil {
		return err
	}
	o, err := moveOptions(c)
	if err != nil {
		return err
	}
	v, err := openRoster(c, consulclient.AccessControl)
	if err != nil {
		return err
	}
	ctx, stop := interruptible(c.Context)
	defer stop()
	return v.Drain(ctx, replica, operator.DrainOptions{MoveOptions: o, Reason: c.String("reason")})
}

func undrain(c *cli.Context) error {
	replica, err := replicaArg(c)
	if err != nil {
		return err
	}
	v, err := openRoster(c, consulclient.AccessControl)
	if err != nil {
		return err
	}
	return v.Undrain(c.Context, replica)
}
