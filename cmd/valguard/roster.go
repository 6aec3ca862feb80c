package main

import (
	"context"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/operator"
	"github.com/valguard/valguard/roster"
)

// rosterFlags name the validator, as active-validator does.
func rosterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "the validator's id in Consul", EnvVars: env("validator-id")},
		&cli.PathFlag{Name: "validator-key", Usage: "derive the validator id from this key (CometBFT address or NEAR account_id)", EnvVars: env("validator-key")},
	}
}

// openRoster finds the validator's lock id as active-validator does,
// opens its election (read only) and roster, checks that the token
// allows need, and returns the validator the operator commands work
// with, printing to the command's writers.
func openRoster(c *cli.Context, need consulclient.Access) (*operator.Validator, error) {
	printDeprecatedEnv(c)
	id := c.String("validator-id")
	if id == "" {
		var err error
		if id, err = validatorIDFromKey(c); err != nil {
			return nil, err
		}
	}
	client, err := consulClient(c)
	if err != nil {
		return nil, err
	}
	store := &operator.ConsulStore{URL: c.String("consul-url")}
	if c.IsSet("validator-id") {
		ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
		defer cancel()
		if id, err = operator.LockIDForLabel(ctx, client, id); err != nil {
			return nil, store.Hint(err)
		}
	}
	if store.El, err = election.New(election.Config{Client: client, ValidatorID: id, ReplicaID: "operator", CallTimeout: c.Duration("consul-timeout")}); err != nil {
		return nil, err
	}
	if store.Roster, err = roster.New(roster.Config{Client: client, ValidatorID: id, CallTimeout: c.Duration("consul-timeout")}); err != nil {
		return nil, err
	}
	if err := checkConsulAccess(c, client, id, need); err != nil {
		return nil, err
	}
	return &operator.Validator{ID: id, Store: store, Out: c.App.Writer, Err: c.App.ErrWriter, Hint: store.Hint,
		Host: hostname(), CallTimeout: c.Duration("consul-timeout")}, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
