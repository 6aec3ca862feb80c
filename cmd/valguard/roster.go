package main

import (
	"context"
	"os"

	"github.com/hashicorp/consul/api"
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

// openValidator finds the validator the flags name: --validator-id (a
// lock id or a label: operator.LockIDForLabel) or else the lock id of
// --validator-key, checks that the token allows need, and opens the
// validator's election, read only, as replica. hint adds the likely fix
// to an error of the lookup; nil: none.
func openValidator(c *cli.Context, need consulclient.Access, hint func(error) error, replica string) (*election.Election, *api.Client, error) {
	printDeprecatedEnv(c)
	id := c.String("validator-id")
	if id == "" {
		var err error
		if id, err = validatorIDFromKey(c); err != nil {
			return nil, nil, err
		}
	}
	client, _, err := consulclient.New(c.Context, consulOptions(c))
	if err != nil {
		return nil, nil, err
	}
	if c.IsSet("validator-id") {
		ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
		id, err = operator.LockIDForLabel(ctx, client, id)
		cancel()
		if err != nil && hint != nil {
			err = hint(err)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if err := consulclient.CheckAccess(c.Context, client, consulOptions(c), id, need); err != nil {
		return nil, nil, err
	}
	el, err := election.New(election.Config{Client: client, ValidatorID: id, ReplicaID: replica, CallTimeout: c.Duration("consul-timeout")})
	return el, client, err
}

// openRoster opens the election and roster of the validator the flags
// name (openValidator), and returns the validator the operator commands
// work with, printing to the command's writers.
func openRoster(c *cli.Context, need consulclient.Access) (*operator.Validator, error) {
	store := &operator.ConsulStore{URL: c.String("consul-url")}
	var client *api.Client
	var err error
	if store.El, client, err = openValidator(c, need, store.Hint, "operator"); err != nil {
		return nil, err
	}
	id := store.El.Config().ValidatorID
	if store.Roster, err = roster.New(roster.Config{Client: client, ValidatorID: id, CallTimeout: c.Duration("consul-timeout")}); err != nil {
		return nil, err
	}
	return &operator.Validator{ID: id, Store: store, Out: c.App.Writer, Err: c.App.ErrWriter, Hint: store.Hint,
		Host: hostname(), CallTimeout: c.Duration("consul-timeout")}, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
