package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/internal/secretfile"
	"github.com/valguard/valguard/internal/setting"
	vgreplica "github.com/valguard/valguard/replica"
)

// The --node defaults and the one kind cmd itself needs to name.
const (
	nodeCometBFT = "cometbft"
	nodeNEAR     = "neard"
	// nodeExternal: a CometBFT node valguard signs for but does not run.
	nodeExternal = "external"
)

// signerFlags are the flags of --sign-mode signer only.
var signerFlags = []string{"signer-addr", "signer-park-hold", "fence-timeout", "signer-depose-after", "signer-depose-holdoff"}

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
	case string:
		if f.Path {
			return &cli.PathFlag{Name: f.Name, Value: v, Usage: f.Usage, EnvVars: env(f.Name)}
		}
		return &cli.StringFlag{Name: f.Name, Value: v, Usage: f.Usage, EnvVars: env(f.Name)}
	case nil:
		if f.Path {
			return &cli.PathFlag{Name: f.Name, Usage: f.Usage, EnvVars: env(f.Name)}
		}
		return &cli.StringFlag{Name: f.Name, Usage: f.Usage, EnvVars: env(f.Name)}
	}
	panic(fmt.Sprintf("flag --%s: default of type %T", f.Name, f.Value))
}

// nodeSetup is the chosen adapter and what run reports about it.
type nodeSetup struct {
	chain.Setup
	kind     string
	signMode chain.SignMode
	keyPath  string
	// stateDir holds valguard's own files: <node-home>/valguard, or
	// --state-dir for an external node.
	stateDir string
}

// chooseNode is --node (defaulting to neard in a kuutamod environment)
// and --sign-mode, checked against the registered kinds (chain.Choose).
func chooseNode(c *cli.Context) (string, chain.Kind, chain.SignMode, error) {
	name := c.String("node")
	if name == "" {
		name = nodeCometBFT
		if kuutamoNode() {
			name = nodeNEAR
		}
	}
	kind, mode, err := chain.Choose(c, name, chain.SignMode(c.String("sign-mode")), signerFlags)
	return name, kind, mode, err
}

// newNode builds the adapter chosen by chooseNode.
func newNode(c *cli.Context, name string, kind chain.Kind, mode chain.SignMode, log zerolog.Logger) (nodeSetup, error) {
	keyPath, err := validatorKey(c, kind.KeyCredential)
	if err != nil {
		return nodeSetup{}, err
	}
	cred := func(flag, name string, required bool) (string, error) { return credential(c, flag, name, required) }
	st, err := kind.Build(c, chain.Input{Mode: mode, KeyPath: keyPath, Credential: cred, Log: log})
	ns := nodeSetup{Setup: st, kind: name, signMode: mode, keyPath: keyPath}
	if err != nil {
		return ns, withFlag(err, kind.SettingFlags)
	}
	ns.stateDir, err = stateDir(c, name)
	return ns, err
}

// stateDir is where valguard keeps its files for node kind name
// (replica.StateDir).
func stateDir(c *cli.Context, name string) (string, error) {
	return vgreplica.StateDir(name == nodeExternal, c.Path("node-home"), c.IsSet("node-home"), c.Path("state-dir"))
}

// validatorLabel is --validator-id checked against the key
// (replica.Label).
func validatorLabel(c *cli.Context, ns nodeSetup) (string, error) {
	return vgreplica.Label(c.String("validator-id"), ns.Labels, ns.keyPath, ns.LockID)
}

// validatorKey is the validator key's path (--validator-key, else the
// systemd credential name), refused when others can read it
// (secretfile.CheckPrivate; credentials are exempt).
func validatorKey(c *cli.Context, credentialName string) (string, error) {
	p, err := credential(c, "validator-key", credentialName, true)
	if err != nil {
		return "", err
	}
	return p, secretfile.CheckPrivate(p, "validator-key")
}

// credential is the path given by flag, else the systemd credential name
// under $CREDENTIALS_DIRECTORY (secretfile.Credential).
func credential(c *cli.Context, flag, name string, required bool) (string, error) {
	return secretfile.Credential(c.Path(flag), flag, valguardEnv(flag), name, required)
}

// commonSettings maps the config fields every adapter has to the flags
// every kind reads (nodeFlags); a kind maps the settings of its own flags
// (chain.Kind.SettingFlags).
var commonSettings = map[string]string{
	"Home": "node-home", "Binary": "node-binary", "Args": "node-args",
	"ValidatorKey": "validator-key", "MaxBlockAge": "max-block-age",
}

// withFlag puts the flag's name before an adapter's error about one of
// its settings (flags maps the kind's own settings, commonSettings the
// others); the adapters name no flags themselves.
func withFlag(err error, flags map[string]string) error {
	var se *setting.Error
	if errors.As(err, &se) {
		f, ok := flags[se.Name]
		if !ok {
			f, ok = commonSettings[se.Name]
		}
		if ok {
			return fmt.Errorf("--%s: %w", f, err)
		}
	}
	return err
}
