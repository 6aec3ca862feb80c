package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/cometbft"
	"github.com/valguard/valguard/election"
)

func activeValidatorCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "the validator's id in Consul", EnvVars: env("validator-id")},
		&cli.PathFlag{Name: "validator-key", Usage: "derive the validator id from this key", EnvVars: env("validator-key")},
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	}
	return &cli.Command{
		Name:   "active-validator",
		Usage:  "print which replica holds the lock; exit 0 when one does, 1 when none",
		Flags:  append(flags, consulFlags()...),
		Action: activeValidator,
	}
}

func activeValidator(c *cli.Context) error {
	id := c.String("validator-id")
	if id == "" {
		keyPath, err := validatorKeyPath(c, "priv_validator_key.json")
		if err != nil {
			return errors.New("set --validator-id or --validator-key")
		}
		k, err := cometbft.LoadKey(keyPath)
		if err != nil {
			return err
		}
		id = k.Address
	}
	client, err := consulClient(c)
	if err != nil {
		return err
	}
	el, err := election.New(election.Config{Client: client, ValidatorID: id, ReplicaID: "active-validator", CallTimeout: c.Duration("consul-timeout")})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*c.Duration("consul-timeout"))
	defer cancel()
	l, err := el.Leader(ctx)
	if err != nil {
		return fmt.Errorf("read %s from Consul: %w", el.LockKey(), err)
	}
	if c.Bool("json") {
		out := map[string]any{"validator": id, "leader": nil}
		if l != nil {
			out["leader"] = map[string]any{"replica": l.ReplicaID, "hostname": l.Hostname, "since": l.Since, "session": l.Session}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(c.App.Writer, string(b))
	} else if l != nil {
		fmt.Fprintf(c.App.Writer, "%s: replica %s on %s, since %s (%s ago)\n", id, l.ReplicaID, l.Hostname,
			l.Since.Format(time.RFC3339), time.Since(l.Since).Round(time.Second))
	} else {
		fmt.Fprintf(c.App.Writer, "%s: no active validator\n", id)
	}
	if l == nil {
		return cli.Exit("", 1)
	}
	return nil
}
