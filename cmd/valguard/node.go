package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/internal/flagenv"
	"github.com/valguard/valguard/internal/secretfile"
)

// The --node defaults and the one kind cmd itself needs to name.
const (
	nodeCometBFT = "cometbft"
	nodeNEAR     = "neard"
	// nodeExternal: a CometBFT node valguard signs for but does not run.
	nodeExternal = "external"
)

// signerFlags are the flags of --sign-mode signer only.
var signerFlags = []string{"signers", "signer-addr", "signer-park-hold", "fence-timeout", "signer-depose-after", "signer-depose-holdoff"}

// nodeFlags are the flags of the node adapters: those every kind reads,
// then each registered kind's own.
func nodeFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "node", Usage: "node adapter: " + strings.Join(chain.Names(), ", ") + " (external: a CometBFT node valguard only signs for) (default: neard when KUUTAMO_NEARD_HOME is set, else cometbft)", EnvVars: env("node")},
		&cli.StringFlag{Name: "sign-mode", Usage: "restart (the key file is linked into the leader's node home, which is restarted) or signer (cometbft and external: valguard is the node's remote signer and fences every signature through Consul; no node restart) (default: restart; signer for --node external)", EnvVars: env("sign-mode")},
		&cli.PathFlag{Name: "node-home", Usage: "the node's home directory (cometbft: with config/config.toml; neard: with config.json); required except with --node external", EnvVars: env("node-home")},
		&cli.StringFlag{Name: "node-binary", Usage: "node binary, a name looked up in PATH or a path (default: cometbft or neard)", EnvVars: env("node-binary")},
		&cli.StringSliceFlag{Name: "node-args", Usage: "extra node arguments, after 'start --home HOME' (cometbft) or '--home HOME run' (neard)", EnvVars: env("node-args")},
		&cli.PathFlag{Name: "validator-key", Usage: "validator key (default: $CREDENTIALS_DIRECTORY/priv_validator_key.json, or validator_key.json for neard)", EnvVars: env("validator-key")},
		&cli.DurationFlag{Name: "max-block-age", Value: time.Minute, Usage: "a node whose latest block is older is not synced; 0 disables (restarting a halted chain); in the signer mode no limit unless set", EnvVars: env("max-block-age")},
	}
	for _, f := range chain.Flags() {
		flags = append(flags, cliFlag(f))
	}
	return flags
}

// cliFlag is an adapter's flag on the command line, with its environment
// names.
func cliFlag(f chain.Flag) cli.Flag {
	switch v := f.Value.(type) {
	case time.Duration:
		return &cli.DurationFlag{Name: f.Name, Value: v, Usage: f.Usage, EnvVars: env(f.Name)}
	case []string:
		return &cli.StringSliceFlag{Name: f.Name, Usage: f.Usage, EnvVars: env(f.Name)}
	case string, nil:
		s, _ := v.(string)
		if f.Path {
			return &cli.PathFlag{Name: f.Name, Value: s, Usage: f.Usage, EnvVars: env(f.Name)}
		}
		return &cli.StringFlag{Name: f.Name, Value: s, Usage: f.Usage, EnvVars: env(f.Name)}
	}
	panic(fmt.Sprintf("flag --%s: default of type %T", f.Name, f.Value))
}

// chooseNode is --node (defaulting to neard in a kuutamod environment)
// and --sign-mode, checked against the registered kinds (chain.Choose).
func chooseNode(c *cli.Context) (chain.Kind, chain.SignMode, error) {
	name := c.String("node")
	if name == "" {
		name = nodeCometBFT
		if flagenv.Kuutamod(os.LookupEnv) {
			name = nodeNEAR
		}
	}
	return chain.Choose(c, name, chain.SignMode(c.String("sign-mode")), signerFlags)
}

// credential is the path given by flag, else the systemd credential name
// under $CREDENTIALS_DIRECTORY (secretfile.Credential), for chain.Input.
func credential(c *cli.Context) func(flag, name string, required bool) (string, error) {
	return func(flag, name string, required bool) (string, error) {
		return secretfile.Credential(c.Path(flag), flag, flagenv.Valguard(flag), name, required)
	}
}
