package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/cometbft"
	"github.com/valguard/valguard/internal/setting"
	"github.com/valguard/valguard/neard"
	"github.com/valguard/valguard/supervisor"
)

// Node types and sign modes.
const (
	nodeCometBFT = "cometbft"
	nodeNEAR     = "neard"
	// nodeExternal: a CometBFT node valguard signs for but does not run.
	nodeExternal = "external"

	// signRestart: the key file is linked into the node home while
	// leading and the node restarted (or hot-reloaded) as the validator.
	signRestart = "restart"
	// signSigner: valguard holds the key and serves the node's privval
	// socket, fencing every new signature through Consul.
	signSigner = "signer"
)

// nodeKind is what differs between node adapters.
type nodeKind struct {
	// stopTimeout is the default --stop-timeout: neard may take long to
	// close RocksDB (kuutamod allows 60 s).
	stopTimeout time.Duration
	// keyCredential is the validator key's systemd credential name.
	keyCredential string
	// signModes are the --sign-mode values the adapter supports, the
	// default first.
	signModes []string
	// flags are the flags only this adapter takes.
	flags []string
	build func(c *cli.Context, mode, keyPath string, log zerolog.Logger) (nodeSetup, error)
}

// nodeKinds is every node adapter, by --node.
var nodeKinds = map[string]nodeKind{
	nodeCometBFT: {
		stopTimeout: supervisor.DefaultStopTimeout, keyCredential: "priv_validator_key.json",
		signModes: []string{signRestart, signSigner}, build: newCometBFT,
	},
	nodeNEAR: {
		stopTimeout: 60 * time.Second, keyCredential: "validator_key.json",
		signModes: []string{signRestart}, build: newNEAR,
		flags: []string{"validator-node-key", "voter-node-key", "boot-nodes", "public-address", "promotion",
			"validator-network-addr", "voter-network-addr", "promotion-timeout"},
	},
	nodeExternal: {
		stopTimeout: supervisor.DefaultStopTimeout, keyCredential: "priv_validator_key.json",
		signModes: []string{signSigner}, build: newExternal,
		flags: []string{"node-rpc", "chain-id", "state-dir"},
	},
}

// signerFlags are the flags of --sign-mode signer only.
var signerFlags = []string{"signer-addr", "signer-park-hold", "fence-timeout", "signer-depose-after", "signer-depose-holdoff"}

// nodeFlags are the flags of the node adapters.
func nodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "node", Usage: "node adapter: cometbft, neard, or external (a CometBFT node valguard only signs for) (default: neard when KUUTAMO_NEARD_HOME is set, else cometbft)", EnvVars: env("node")},
		&cli.StringFlag{Name: "sign-mode", Usage: "restart (the key file is linked into the leader's node home, which is restarted) or signer (cometbft and external: valguard is the node's remote signer and fences every signature through Consul; no node restart) (default: restart; signer for --node external)", EnvVars: env("sign-mode")},
		&cli.PathFlag{Name: "node-home", Usage: "the node's home directory (cometbft: with config/config.toml; neard: with config.json); required except with --node external", EnvVars: env("node-home")},
		// external
		&cli.StringFlag{Name: "node-rpc", Usage: "external: the node's RPC address, http://host:port", EnvVars: env("node-rpc")},
		&cli.StringFlag{Name: "chain-id", Usage: "external: the node's chain id", EnvVars: env("chain-id")},
		&cli.PathFlag{Name: "state-dir", Usage: "external: where valguard keeps its files (default: $STATE_DIRECTORY, systemd's StateDirectory=)", EnvVars: env("state-dir")},
		&cli.StringFlag{Name: "node-binary", Usage: "node binary, a name looked up in PATH or a path (default: cometbft or neard)", EnvVars: env("node-binary")},
		&cli.StringSliceFlag{Name: "node-args", Usage: "extra node arguments, after 'start --home HOME' (cometbft) or '--home HOME run' (neard)", EnvVars: env("node-args")},
		&cli.PathFlag{Name: "validator-key", Usage: "validator key (default: $CREDENTIALS_DIRECTORY/priv_validator_key.json, or validator_key.json for neard)", EnvVars: env("validator-key")},
		&cli.DurationFlag{Name: "max-block-age", Value: time.Minute, Usage: "a node whose latest block is older is not synced; 0 disables (restarting a halted chain); in the signer mode no limit unless set", EnvVars: env("max-block-age")},
		// neard
		&cli.PathFlag{Name: "validator-node-key", Usage: "neard: the validator's node_key.json (default: $CREDENTIALS_DIRECTORY/validator_node_key.json; not needed with --promotion hot)", EnvVars: env("validator-node-key")},
		&cli.PathFlag{Name: "voter-node-key", Usage: "neard: the standby's node_key.json (default: $CREDENTIALS_DIRECTORY/voter_node_key.json, else created once in <home>/valguard)", EnvVars: env("voter-node-key")},
		&cli.StringFlag{Name: "validator-network-addr", Value: neard.DefaultValidatorAddr, Usage: "neard: network.addr while validating", EnvVars: env("validator-network-addr")},
		&cli.StringFlag{Name: "voter-network-addr", Value: neard.DefaultVoterAddr, Usage: "neard: network.addr while voting", EnvVars: env("voter-network-addr")},
		&cli.StringFlag{Name: "boot-nodes", Usage: "neard: passed as 'run --boot-nodes'", EnvVars: env("boot-nodes")},
		&cli.StringSliceFlag{Name: "public-address", Usage: "neard: the validator's public IP (or IP:port), announced in network.public_addrs with the validator node key; repeat or comma-separate", EnvVars: env("public-address")},
		&cli.StringFlag{Name: "promotion", Value: string(neard.PromotionAuto), Usage: "neard: hot (SIGHUP, neard >= 2.1), restart, or auto (hot when the running neard is >= 2.1)", EnvVars: env("promotion")},
		&cli.DurationFlag{Name: "promotion-timeout", Value: neard.DefaultPromotionTimeout, Usage: "neard: how long a hot promotion may take to show in /status before it counts as failed", EnvVars: env("promotion-timeout")},
	}
}

// nodeSetup is the chosen adapter and what run reports about it.
type nodeSetup struct {
	kind     string
	signMode string
	node     supervisor.Node
	keyPath  string
	status   string // where the node's status is read
	// lockID is derived from the validator's public key and names its lock
	// (valguard/<lockID>/leader): one validator, one lock, whatever the
	// replicas call it.
	lockID    string
	publicKey string
	// labels are the values --validator-id may take: what the key itself
	// names the validator (CometBFT address; NEAR account_id or lock id).
	labels []string
	// compare orders two published watermarks of this node type.
	compare func(a, b []byte) (int, error)
	// signer is what the signer mode needs of the adapter; nil without.
	signer signerNode
	// unsupervised: valguard does not run the node (--node external).
	unsupervised bool
	// stateDir holds valguard's own files: <node-home>/valguard, or
	// --state-dir for an external node.
	stateDir string
}

// chooseNode is --node (defaulting to neard in a kuutamod environment)
// and --sign-mode, checked against the table: a flag of another adapter
// or sign mode is refused rather than ignored.
func chooseNode(c *cli.Context) (string, nodeKind, string, error) {
	name := c.String("node")
	if name == "" {
		name = nodeCometBFT
		if kuutamoNode() {
			name = nodeNEAR
		}
	}
	kind, ok := nodeKinds[name]
	if !ok {
		return "", kind, "", fmt.Errorf("--node %q: unknown node type; supported: %s", name, strings.Join(sortedKeys(nodeKinds), ", "))
	}
	mode := c.String("sign-mode")
	if mode == "" {
		mode = kind.signModes[0]
	}
	if !slices.Contains(kind.signModes, mode) {
		return "", kind, "", fmt.Errorf("--sign-mode %q is not supported with --node %s; it supports: %s", mode, name, strings.Join(kind.signModes, ", "))
	}
	for other, k := range nodeKinds {
		if other == name {
			continue
		}
		for _, f := range k.flags {
			if c.IsSet(f) && !slices.Contains(kind.flags, f) {
				return "", kind, "", fmt.Errorf("--%s is a %s setting; this is --node %s", f, other, name)
			}
		}
	}
	if mode != signSigner {
		for _, f := range signerFlags {
			if c.IsSet(f) {
				return "", kind, "", fmt.Errorf("--%s is a --sign-mode signer setting; this is --sign-mode %s", f, mode)
			}
		}
	}
	return name, kind, mode, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// newNode builds the adapter chosen by chooseNode.
func newNode(c *cli.Context, name string, kind nodeKind, mode string, log zerolog.Logger) (nodeSetup, error) {
	keyPath, err := validatorKey(c, kind.keyCredential)
	if err != nil {
		return nodeSetup{}, err
	}
	ns, err := kind.build(c, mode, keyPath, log)
	if err != nil {
		return ns, err
	}
	ns.kind, ns.signMode, ns.keyPath = name, mode, keyPath
	ns.stateDir, err = stateDir(c, name)
	return ns, err
}

// stateDir is where valguard keeps its files for node kind name:
// <node-home>/valguard, or for an external node --state-dir (default
// $STATE_DIRECTORY).
func stateDir(c *cli.Context, name string) (string, error) {
	if name != nodeExternal {
		if c.Path("node-home") == "" {
			return "", errors.New("--node-home is required: the node's home directory")
		}
		return filepath.Join(c.Path("node-home"), "valguard"), nil
	}
	if c.IsSet("node-home") {
		return "", errors.New("--node-home is not used with --node external (valguard does not touch the node's home): give --state-dir for valguard's own files")
	}
	dir := c.Path("state-dir")
	if dir == "" {
		dir = os.Getenv("STATE_DIRECTORY")
	}
	if dir == "" {
		return "", errors.New("--node external needs --state-dir (or systemd's StateDirectory=) for valguard's own files: the lock, the signer's floor file, its connection key")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("--state-dir %s: not a directory (%v): create it, owned by valguard's user", dir, err)
	}
	return filepath.Abs(dir)
}

// signerNode is what the signer mode needs of a CometBFT adapter.
type signerNode interface {
	PrivKey() (crypto.PrivKey, error)
	ChainID() (string, error)
	LastSigned(ctx context.Context, maxScan int64) (height int64, round int32, err error)
	SignerAddr() string
}

// maxBlockAge is --max-block-age, 0 meaning no limit. In the signer mode
// it has no default limit: a validator with a third of the power or more
// halts the chain while it does not sign (Consul down, say), and a rule on
// the age of the latest block would then keep every replica out of the
// election for good; a node catching up still says so.
func maxBlockAge(c *cli.Context, mode string) time.Duration {
	if mode == signSigner && !c.IsSet("max-block-age") {
		return -1
	}
	if d := c.Duration("max-block-age"); d != 0 {
		return d
	}
	return -1
}

func newCometBFT(c *cli.Context, mode, keyPath string, log zerolog.Logger) (nodeSetup, error) {
	signMode := cometbft.SignRestart
	if mode == signSigner {
		signMode = cometbft.SignSigner
	}
	n, err := cometbft.New(cometbft.Config{
		Home: c.Path("node-home"), Binary: c.String("node-binary"), Args: c.StringSlice("node-args"),
		ValidatorKey: keyPath, MaxBlockAge: maxBlockAge(c, mode), Log: log,
		SignMode: signMode, SignerAddr: c.String("signer-addr"),
	})
	if errors.Is(err, cometbft.ErrSignerAddr) {
		return nodeSetup{}, fmt.Errorf("--signer-addr: %w", err)
	}
	if err != nil {
		return nodeSetup{}, withFlag(err)
	}
	ns := nodeSetup{node: n, status: n.RPC(), lockID: n.LockID(), publicKey: n.PublicKey(),
		labels: []string{n.Address()}, compare: cometbft.CompareWatermarks}
	if mode == signSigner {
		ns.signer = n
	}
	return ns, nil
}

func newExternal(c *cli.Context, _, keyPath string, _ zerolog.Logger) (nodeSetup, error) {
	for _, f := range []string{"node-rpc", "chain-id", "signer-addr"} {
		if c.String(f) == "" {
			return nodeSetup{}, fmt.Errorf("--node external needs --%s", f)
		}
	}
	for _, f := range []string{"node-binary", "node-args"} {
		if c.IsSet(f) {
			return nodeSetup{}, fmt.Errorf("--%s: valguard does not start an external node", f)
		}
	}
	n, err := cometbft.NewRemote(cometbft.RemoteConfig{
		RPC: c.String("node-rpc"), ValidatorKey: keyPath, ChainID: c.String("chain-id"),
		SignerAddr: c.String("signer-addr"), MaxBlockAge: maxBlockAge(c, signSigner),
	})
	if errors.Is(err, cometbft.ErrSignerAddr) {
		return nodeSetup{}, fmt.Errorf("--signer-addr: %w", err)
	}
	if err != nil {
		return nodeSetup{}, withFlag(err)
	}
	return nodeSetup{node: n, status: n.RPC(), lockID: n.LockID(), publicKey: n.PublicKey(),
		labels: []string{n.Address()}, compare: cometbft.CompareWatermarks, signer: n, unsupervised: true}, nil
}

func newNEAR(c *cli.Context, mode, keyPath string, log zerolog.Logger) (nodeSetup, error) {
	vnode, err := credential(c, "validator-node-key", "validator_node_key.json", false)
	if err != nil {
		return nodeSetup{}, err
	}
	voter, err := credential(c, "voter-node-key", "voter_node_key.json", false)
	if err != nil {
		return nodeSetup{}, err
	}
	promotion, err := neard.ParsePromotion(c.String("promotion"))
	if err != nil {
		return nodeSetup{}, withFlag(err)
	}
	n, err := neard.New(neard.Config{
		Home: c.Path("node-home"), Binary: c.String("node-binary"), Args: c.StringSlice("node-args"),
		BootNodes: c.String("boot-nodes"), ValidatorKey: keyPath, ValidatorNodeKey: vnode, VoterNodeKey: voter,
		ValidatorAddr: c.String("validator-network-addr"), VoterAddr: c.String("voter-network-addr"),
		PublicAddresses: c.StringSlice("public-address"), Promotion: promotion,
		PromotionTimeout: c.Duration("promotion-timeout"), MaxBlockAge: maxBlockAge(c, mode), Log: log,
	})
	if err != nil {
		return nodeSetup{}, withFlag(err)
	}
	return nodeSetup{node: n, status: n.StatusURL(), lockID: n.LockID(), publicKey: n.PublicKey(),
		labels: []string{n.AccountID(), n.LockID()}, compare: neard.CompareWatermarks}, nil
}

// validatorLabel is --validator-id, checked against the key: a label that
// names another validator (a typo, or another key's id) is refused, so
// that replicas of one key never run under two names. Empty: the key's own
// name.
func validatorLabel(c *cli.Context, ns nodeSetup) (string, error) {
	id := c.String("validator-id")
	if id == "" {
		return ns.labels[0], nil
	}
	for _, l := range ns.labels {
		if strings.EqualFold(id, l) {
			return l, nil
		}
	}
	return "", fmt.Errorf("--validator-id %q does not name the validator key %s (it is %s): "+
		"remove --validator-id, or fix it, or point --validator-key at the right key; "+
		"the lock is derived from the key's public key (valguard/%s/leader)",
		id, ns.keyPath, strings.Join(quoteAll(ns.labels), " or "), ns.lockID)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// validatorKey is the validator key's path (--validator-key, else the
// systemd credential name), refused when others can read it
// (checkPrivate; credentials are exempt).
func validatorKey(c *cli.Context, credentialName string) (string, error) {
	p, err := credential(c, "validator-key", credentialName, true)
	if err != nil {
		return "", err
	}
	return p, checkPrivate(p, "validator-key")
}

// credential is the path given by flag, else the systemd credential name
// under $CREDENTIALS_DIRECTORY; "" when neither and not required.
func credential(c *cli.Context, flag, name string, required bool) (string, error) {
	if p := c.Path(flag); p != "" {
		return p, nil
	}
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if required {
			return "", fmt.Errorf("no --%s and no %s in $CREDENTIALS_DIRECTORY (%s): set one of them", flag, name, dir)
		}
		return "", nil
	}
	if required {
		return "", errors.New("no validator key: set --" + flag + " (or " + valguardEnv(flag) + ", or a systemd credential named " + name + ")")
	}
	return "", nil
}

// settingFlags maps an adapter's Config field, as a setting.Error names
// it, to the flag that sets it.
var settingFlags = map[string]string{
	"Home": "node-home", "Binary": "node-binary", "Args": "node-args",
	"ValidatorKey": "validator-key", "ValidatorNodeKey": "validator-node-key", "VoterNodeKey": "voter-node-key",
	"ValidatorAddr": "validator-network-addr", "VoterAddr": "voter-network-addr",
	"PublicAddresses": "public-address", "Promotion": "promotion", "PromotionTimeout": "promotion-timeout",
	"BootNodes": "boot-nodes", "MaxBlockAge": "max-block-age",
}

// withFlag puts the flag's name before an adapter's error about one of
// its settings; the adapters name no flags themselves.
func withFlag(err error) error {
	var se *setting.Error
	if errors.As(err, &se) {
		if f, ok := settingFlags[se.Name]; ok {
			return fmt.Errorf("--%s: %w", f, err)
		}
	}
	return err
}
