package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/operator"
)

// stateCommand shows and imports the validator's watermark: the last
// height/round/step signed, as the fence keeps it in Consul.
func stateCommand() *cli.Command {
	id := []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "the validator's id in Consul", EnvVars: env("validator-id")},
		&cli.PathFlag{Name: "validator-key", Usage: "derive the validator id from this key (its CometBFT address)", EnvVars: env("validator-key")},
	}
	return &cli.Command{
		Name:  "state",
		Usage: "show or import the validator's sign-state watermark in Consul",
		Subcommands: []*cli.Command{
			{
				Name:   "show",
				Usage:  "print the watermark (the last height/round/step signed)",
				Flags:  append(append(id, &cli.BoolFlag{Name: "json", Usage: "print JSON"}), consulFlags()...),
				Action: stateShow,
			},
			{
				Name:      "import",
				Usage:     "raise the watermark from a priv_validator_state.json or a tmkms state file; never lowers it",
				ArgsUsage: "FILE",
				Flags: append(append(id,
					&cli.StringFlag{Name: "chain-id", Usage: "the chain the file belongs to (required when neither the file nor the stored watermark names it)", EnvVars: env("chain-id")},
				), consulFlags()...),
				Action: stateImport,
			},
		},
	}
}

func stateShow(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", c.Args().Slice())
	}
	el, client, err := openValidator(c, consulclient.AccessRead, nil, "state")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
	defer cancel()
	return operator.ShowState(ctx, operator.ConsulWatermark{Election: el, KV: client.KV()}, c.App.Writer, c.Bool("json"))
}

func stateImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("state import takes one FILE: a priv_validator_state.json or a tmkms state file")
	}
	path := c.Args().First()
	in, err := operator.ReadStateFile(path)
	if err != nil {
		return err
	}
	el, client, err := openValidator(c, consulclient.AccessWrite, nil, "state")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
	defer cancel()
	return operator.ImportState(ctx, operator.ConsulWatermark{Election: el, KV: client.KV()}, c.App.Writer, path, in, c.String("chain-id"))
}
