package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/consul/api"
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/signer"
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

// stateElection is the election of the validator named by the flags.
func stateElection(c *cli.Context) (*election.Election, *api.Client, error) {
	printDeprecatedEnv(c)
	id := c.String("validator-id")
	if id == "" {
		var err error
		if id, err = validatorIDFromKey(c); err != nil {
			return nil, nil, err
		}
	}
	client, err := consulClient(c)
	if err != nil {
		return nil, nil, err
	}
	if c.IsSet("validator-id") {
		ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
		defer cancel()
		if id, err = lockIDForLabel(ctx, client, id); err != nil {
			return nil, nil, err
		}
	}
	if err := checkConsulAccess(c, client, id, stateAccess(c)); err != nil {
		return nil, nil, err
	}
	el, err := election.New(election.Config{Client: client, ValidatorID: id, ReplicaID: "state", CallTimeout: c.Duration("consul-timeout")})
	return el, client, err
}

// readWatermark reads and parses the stored watermark; ok is false when
// none is stored.
func readWatermark(ctx context.Context, el *election.Election) (w signer.Watermark, index uint64, ok bool, err error) {
	value, index, err := el.ReadWatermark(ctx)
	if err != nil {
		return w, 0, false, fmt.Errorf("read %s from Consul: %w", el.WatermarkKey(), err)
	}
	if value == nil {
		return w, 0, false, nil
	}
	if w, err = signer.ParseWatermark(value); err != nil {
		return w, 0, false, fmt.Errorf("%s in Consul: %w", el.WatermarkKey(), err)
	}
	return w, index, true, nil
}

func stateShow(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", c.Args().Slice())
	}
	el, _, err := stateElection(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
	defer cancel()
	w, index, ok, err := readWatermark(ctx, el)
	if err != nil {
		return err
	}
	digest := ""
	if len(w.SignBytes) > 0 {
		sum := sha256.Sum256(w.SignBytes)
		digest = hex.EncodeToString(sum[:])
	}
	if c.Bool("json") {
		out := map[string]any{"key": el.WatermarkKey(), "watermark": nil}
		if ok {
			out["watermark"] = map[string]any{"chain_id": w.ChainID, "height": w.Height, "round": w.Round, "step": w.Step,
				"sign_bytes_sha256": digest, "signed": len(w.Signature) > 0, "modify_index": index}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(c.App.Writer, string(b))
		return nil
	}
	if !ok {
		fmt.Fprintf(c.App.Writer, "%s: no watermark stored\n", el.WatermarkKey())
		return nil
	}
	fmt.Fprintf(c.App.Writer, "%s: chain %q height %d round %d step %d", el.WatermarkKey(), w.ChainID, w.Height, w.Round, w.Step)
	if digest != "" {
		fmt.Fprintf(c.App.Writer, ", sign bytes sha256 %s", digest)
	}
	fmt.Fprintf(c.App.Writer, " (modify index %d)\n", index)
	return nil
}

// errImportLower: the file would lower the stored watermark.
var errImportLower = errors.New("would lower the watermark")

func stateImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("state import takes one FILE: a priv_validator_state.json or a tmkms state file")
	}
	path := c.Args().First()
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	in, err := signer.ParseState(data)
	if err != nil {
		return fmt.Errorf("state file %s: %w: give a priv_validator_state.json or a tmkms state file", path, err)
	}
	el, client, err := stateElection(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
	defer cancel()
	stored, index, ok, err := readWatermark(ctx, el)
	if err != nil {
		return err
	}
	chainID := c.String("chain-id")
	for _, named := range []struct{ what, id string }{{"the state file", in.ChainID}, {"the stored watermark", stored.ChainID}} {
		switch {
		case named.id == "":
		case chainID == "":
			chainID = named.id
		case chainID != named.id:
			return fmt.Errorf("chain id %q (from --chain-id or the state file) differs from %s's %q: nothing imported", chainID, named.what, named.id)
		}
	}
	if chainID == "" {
		return errors.New("no chain id: neither the state file nor the stored watermark names one; set --chain-id")
	}
	in.ChainID = chainID
	if ok {
		switch signer.Compare(in, stored) {
		case -1:
			return fmt.Errorf("%s (%s) %w stored in Consul (%s): nothing imported; a lower watermark could let the signer sign again what was signed", path, in, errImportLower, stored)
		case 0:
			if !in.Equal(stored) {
				return fmt.Errorf("%s is at the stored height/round/step %s but with other sign bytes or chain: nothing imported", path, in)
			}
			fmt.Fprintf(c.App.Writer, "%s: already at %s; nothing to import\n", el.WatermarkKey(), in)
			return nil
		}
	}
	value, err := json.Marshal(in)
	if err != nil {
		return err
	}
	// A check-and-set on the index read: a leader fencing meanwhile wins.
	// A leader's next fence after this import is refused (the watermark
	// moved); it reads the key back and, the imported value being above
	// its own, adopts it and decides the request again against it, so it
	// never signs below the import.
	done, _, err := client.KV().CAS(&api.KVPair{Key: el.WatermarkKey(), Value: value, ModifyIndex: index}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("write %s: %w", el.WatermarkKey(), err)
	}
	if !done {
		return fmt.Errorf("%s changed while importing (a leader signed): run the import again", el.WatermarkKey())
	}
	fmt.Fprintf(c.App.Writer, "%s: raised to chain %q %s\n", el.WatermarkKey(), chainID, in)
	return nil
}
