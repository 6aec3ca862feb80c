package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/operator"
)

func activeValidatorCommand() *cli.Command {
	flags := append(rosterFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"})
	return &cli.Command{
		Name:   "active-validator",
		Usage:  "print which replica holds the lock; exit 0 when one does, 1 when none",
		Flags:  append(flags, consulFlags()...),
		Action: activeValidator,
	}
}

func activeValidator(c *cli.Context) error {
	el, _, err := openValidator(c, consulclient.AccessRead, nil, "active-validator")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
	defer cancel()
	held, err := operator.ShowLeader(ctx, el, el.Config().ValidatorID, c.App.Writer, nil, c.Bool("json"))
	if err != nil {
		return err
	}
	if !held {
		return cli.Exit("", 1)
	}
	return nil
}

// validatorIDFromKey derives the lock id valguard run uses from the
// validator's key (chain.KeyID: a CometBFT key's address; for a NEAR key,
// the hash neard.LockID gives).
func validatorIDFromKey(c *cli.Context) (string, error) {
	id, err := chain.KeyID(c.Path("validator-key"), credential(c), nodeCometBFT)
	if errors.Is(err, chain.ErrNoKey) {
		return "", errors.New("set --validator-id or --validator-key")
	}
	return id, err
}
