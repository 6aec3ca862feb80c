package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/cometbft"
	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consulclient"
	"github.com/valguard/valguard/internal/consulkey"
	"github.com/valguard/valguard/neard"
)

func activeValidatorCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "the validator's id in Consul", EnvVars: env("validator-id")},
		&cli.PathFlag{Name: "validator-key", Usage: "derive the validator id from this key (CometBFT address or NEAR account_id)", EnvVars: env("validator-key")},
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
	printDeprecatedEnv(c)
	id := c.String("validator-id")
	if id == "" {
		var err error
		if id, err = validatorIDFromKey(c); err != nil {
			return err
		}
	}
	client, err := consulClient(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
	defer cancel()
	if c.IsSet("validator-id") {
		if id, err = lockIDForLabel(ctx, client, id); err != nil {
			return err
		}
	}
	if err := checkConsulAccess(c, client, id, consulclient.AccessRead); err != nil {
		return err
	}
	el, err := election.New(election.Config{Client: client, ValidatorID: id, ReplicaID: "active-validator", CallTimeout: c.Duration("consul-timeout")})
	if err != nil {
		return err
	}
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

// lockIDForLabel maps --validator-id to a lock id: the id itself when
// valguard/<id>/leader exists, else the lock whose value carries id as its
// label (a NEAR account_id, a CometBFT address in another case), else id.
func lockIDForLabel(ctx context.Context, client *api.Client, id string) (string, error) {
	q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	if pair, _, err := client.KV().Get(consulkey.Validator(id).Leader(), q); err != nil {
		return "", fmt.Errorf("read %s from Consul: %w", consulkey.Validator(id).Leader(), err)
	} else if pair != nil {
		return id, nil
	}
	pairs, _, err := client.KV().List(consulkey.Root(), q)
	if err != nil {
		return "", fmt.Errorf("list %s in Consul: %w", consulkey.Root(), err)
	}
	for _, p := range pairs {
		v, ok := consulkey.LeaderOf(p.Key)
		if !ok {
			continue
		}
		var info election.LeaderInfo
		if json.Unmarshal(p.Value, &info) == nil && strings.EqualFold(info.Label, id) {
			return string(v), nil
		}
	}
	return id, nil
}

// validatorIDFromKey derives the lock id valguard run uses: from the
// validator's public key (a CometBFT key's address; for a NEAR key, the
// hash neard.LockID gives).
func validatorIDFromKey(c *cli.Context) (string, error) {
	path := c.Path("validator-key")
	if path == "" {
		for _, name := range []string{"priv_validator_key.json", "validator_key.json"} {
			if p, _ := credential(c, "validator-key", name, false); p != "" {
				path = p
				break
			}
		}
	}
	if path == "" {
		return "", errors.New("set --validator-id or --validator-key")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--validator-key: %w", err)
	}
	var probe struct {
		AccountID *string `json:"account_id"`
	}
	if json.Unmarshal(data, &probe) == nil && probe.AccountID != nil {
		k, err := neard.LoadKey(path)
		if err != nil {
			return "", err
		}
		return neard.LockID(k.PublicKey)
	}
	k, err := cometbft.LoadKey(path)
	return k.Address, withFlag(err, map[string]string{"ValidatorKey": "validator-key"})
}
