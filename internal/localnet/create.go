package localnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/types"
)

// Defaults of Config.
const (
	DefaultValidators     = 4
	DefaultPower          = 10
	DefaultReplicas       = 2
	DefaultTimeoutCommit  = 500 * time.Millisecond
	DefaultTimeoutPropose = time.Second
)

// Wiring says which homes list which others as persistent peers.
type Wiring string

// Wirings of Config.Wiring.
const (
	// WiringDialOut: a validator home lists the other validator homes
	// only; a replica home lists every validator home and every other
	// replica home. Only the replicas dial out, as in production, where
	// sentries and validators do not know a standby's address: a restarted
	// replica node is found again only when it redials. The default.
	WiringDialOut Wiring = "dial-out"
	// WiringMesh: as WiringDialOut, and every validator home lists every
	// replica home too, so a restarted replica node is also redialled by
	// the validators (CometBFT retries persistent peers with a backoff).
	WiringMesh Wiring = "mesh"
)

// Config describes the network Create builds. Zero fields take the
// documented defaults.
type Config struct {
	// Dir is the base directory; it is created if missing and must not
	// already hold a network (Dir/net, Dir/replicas or Dir/secrets).
	Dir string
	// Binary is the cometbft binary; default CometBFTBinary().
	Binary string
	// Validators is the number of validators; default 4.
	Validators int
	// Powers is the voting power per validator; default 10 each. Keep every
	// power below a third of the total by integer division (power 1 of 4
	// is not): CometBFT lets a node holding that much skip block sync, and
	// a restarted node of that validator then re-signs old heights.
	Powers []int64
	// HA is the index of the HA validator. Zero selects the default, the
	// last validator (Validators-1); validator 0 cannot be chosen.
	HA int
	// Replicas is the number of replica homes for the HA validator;
	// default 2.
	Replicas int
	// TimeoutCommit and TimeoutPropose go to [consensus] of every home;
	// defaults 500ms and 1s.
	TimeoutCommit, TimeoutPropose time.Duration
	// Wiring is WiringDialOut (the default, also for "") or WiringMesh.
	Wiring Wiring
}

// Net is a network made by Create. Its processes are started with
// StartNode or StartValidators.
type Net struct {
	Dir     string
	ChainID string
	Binary  string
	// HA is the index of the HA validator in Homes and Addresses.
	HA int
	// Homes are the validator homes 0..n-1. Homes[HA] exists but holds no
	// validator key and is not meant to be started.
	Homes []string
	// ReplicaHomes are full-node homes for the HA validator, made with
	// cometbft init: each has its own non-validator key, the network's
	// genesis, its own ports, and every validator home and every other
	// replica home as persistent peers. Whether the validator homes list
	// them in turn is the Wiring.
	ReplicaHomes []string
	// Wiring is the Config's, its default applied.
	Wiring Wiring
	// ValidatorKey is Dir/secrets/priv_validator_key.json, the HA
	// validator's key, moved out of Homes[HA].
	ValidatorKey string
	// HAAddress is the hex address of the HA validator.
	HAAddress string
	// Addresses are the hex addresses of the validators, by index.
	Addresses []string

	nodes map[string]nodePorts // by home
}

type nodePorts struct {
	p2p, rpc int
	id       p2p.ID
}

func (c *Config) applyDefaults() error {
	if c.Dir == "" {
		return errors.New("localnet: Config.Dir is required")
	}
	if c.Binary == "" {
		b, err := CometBFTBinary()
		if err != nil {
			return err
		}
		c.Binary = b
	}
	if c.Validators == 0 {
		c.Validators = DefaultValidators
	}
	if c.Validators < 1 {
		return fmt.Errorf("localnet: Validators = %d, want at least 1", c.Validators)
	}
	if c.Powers == nil {
		c.Powers = make([]int64, c.Validators)
		for i := range c.Powers {
			c.Powers[i] = DefaultPower
		}
	}
	if len(c.Powers) != c.Validators {
		return fmt.Errorf("localnet: %d powers for %d validators", len(c.Powers), c.Validators)
	}
	for i, p := range c.Powers {
		if p < 1 {
			return fmt.Errorf("localnet: power of validator %d is %d, want at least 1", i, p)
		}
	}
	if c.HA == 0 {
		c.HA = c.Validators - 1
	}
	if c.HA < 0 || c.HA >= c.Validators {
		return fmt.Errorf("localnet: HA = %d, want an index in [0, %d)", c.HA, c.Validators)
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Replicas < 1 {
		return fmt.Errorf("localnet: Replicas = %d, want at least 1", c.Replicas)
	}
	if c.TimeoutCommit == 0 {
		c.TimeoutCommit = DefaultTimeoutCommit
	}
	if c.TimeoutPropose == 0 {
		c.TimeoutPropose = DefaultTimeoutPropose
	}
	if c.TimeoutCommit < 0 || c.TimeoutPropose < 0 {
		return errors.New("localnet: negative consensus timeout")
	}
	switch c.Wiring {
	case "":
		c.Wiring = WiringDialOut
	case WiringDialOut, WiringMesh:
	default:
		return fmt.Errorf("localnet: Wiring %q, want %q or %q", c.Wiring, WiringDialOut, WiringMesh)
	}
	return nil
}

// Create writes a new network under cfg.Dir: validator homes in Dir/net
// (cometbft testnet), replica homes in Dir/replicas (cometbft init) and
// the HA validator's key in Dir/secrets. It starts no process. Ports are
// free loopback ports at the time of the call, unique within the network;
// another process may still take one before the node binds it.
func Create(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	n := &Net{
		Dir:          dir,
		Binary:       cfg.Binary,
		HA:           cfg.HA,
		Wiring:       cfg.Wiring,
		ValidatorKey: filepath.Join(dir, "secrets", "priv_validator_key.json"),
		nodes:        map[string]nodePorts{},
	}
	for _, sub := range []string{"net", "replicas", "secrets"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err == nil {
			return nil, fmt.Errorf("localnet: %s already exists; Create needs a fresh directory", filepath.Join(dir, sub))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := n.run(ctx, "testnet", "--v", strconv.Itoa(cfg.Validators), "--n", "0",
		"--o", filepath.Join(dir, "net"), "--starting-ip-address", "127.0.0.1"); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Validators; i++ {
		home := filepath.Join(dir, "net", fmt.Sprintf("node%d", i))
		addr, err := keyAddress(filepath.Join(home, "config", "priv_validator_key.json"))
		if err != nil {
			return nil, err
		}
		n.Homes = append(n.Homes, home)
		n.Addresses = append(n.Addresses, addr)
	}
	n.HAAddress = n.Addresses[cfg.HA]
	for i := 0; i < cfg.Replicas; i++ {
		home := filepath.Join(dir, "replicas", fmt.Sprintf("replica%d", i))
		if err := n.run(ctx, "init", "--home", home); err != nil {
			return nil, err
		}
		n.ReplicaHomes = append(n.ReplicaHomes, home)
	}
	gen, err := n.writeGenesis(cfg.Powers)
	if err != nil {
		return nil, err
	}
	n.ChainID = gen.ChainID
	if err := n.assignPorts(); err != nil {
		return nil, err
	}
	if err := n.writeConfigs(cfg); err != nil {
		return nil, err
	}
	if err := n.moveValidatorKey(); err != nil {
		return nil, err
	}
	return n, nil
}

// run runs a short cometbft command and returns its output in the error.
func (n *Net) run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, n.Binary, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("localnet: cometbft %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// keyAddress reads the address of a priv_validator_key.json.
func keyAddress(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var k struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(data, &k); err != nil || k.Address == "" {
		return "", fmt.Errorf("localnet: %s: no address (%v)", path, err)
	}
	return strings.ToUpper(k.Address), nil
}

// writeGenesis sets the powers in the genesis of validator home 0 and
// writes it to every home, replica homes included.
func (n *Net) writeGenesis(powers []int64) (*types.GenesisDoc, error) {
	gen, err := types.GenesisDocFromFile(genesisPath(n.Homes[0]))
	if err != nil {
		return nil, fmt.Errorf("localnet: %w", err)
	}
	if len(gen.Validators) != len(n.Homes) {
		return nil, fmt.Errorf("localnet: genesis has %d validators, want %d", len(gen.Validators), len(n.Homes))
	}
	set := 0
	for i := range gen.Validators {
		for j, addr := range n.Addresses {
			if strings.EqualFold(gen.Validators[i].Address.String(), addr) {
				gen.Validators[i].Power = powers[j]
				set++
			}
		}
	}
	if set != len(n.Homes) {
		return nil, fmt.Errorf("localnet: matched %d of %d genesis validators to homes", set, len(n.Homes))
	}
	if err := gen.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("localnet: genesis: %w", err)
	}
	for _, home := range append(append([]string{}, n.Homes...), n.ReplicaHomes...) {
		if err := gen.SaveAs(genesisPath(home)); err != nil {
			return nil, fmt.Errorf("localnet: %w", err)
		}
	}
	return gen, nil
}

func genesisPath(home string) string { return filepath.Join(home, "config", "genesis.json") }

func (n *Net) allHomes() []string {
	return append(append([]string{}, n.Homes...), n.ReplicaHomes...)
}

func (n *Net) writeConfigs(cfg Config) error {
	for i, home := range n.Homes {
		peers := n.peers(home, n.Homes)
		if cfg.Wiring == WiringMesh {
			peers = append(peers, n.peers(home, n.ReplicaHomes)...)
		}
		if err := n.writeConfig(home, fmt.Sprintf("node%d", i), peers, cfg); err != nil {
			return err
		}
	}
	for i, home := range n.ReplicaHomes {
		peers := append(n.peers(home, n.Homes), n.peers(home, n.ReplicaHomes)...)
		if err := n.writeConfig(home, fmt.Sprintf("replica%d", i), peers, cfg); err != nil {
			return err
		}
	}
	return nil
}

// peers lists id@127.0.0.1:port of every home in homes except self.
func (n *Net) peers(self string, homes []string) []string {
	var out []string
	for _, h := range homes {
		if h == self {
			continue
		}
		p := n.nodes[h]
		out = append(out, fmt.Sprintf("%s@127.0.0.1:%d", p.id, p.p2p))
	}
	return out
}

func (n *Net) writeConfig(home, moniker string, peers []string, cfg Config) error {
	p := n.nodes[home]
	return rewriteConfig(filepath.Join(home, "config", "config.toml"), []setting{
		{"", "moniker", moniker},
		{"", "proxy_app", "kvstore"},
		{"rpc", "laddr", fmt.Sprintf("tcp://127.0.0.1:%d", p.rpc)},
		{"rpc", "pprof_laddr", ""},
		{"p2p", "laddr", fmt.Sprintf("tcp://127.0.0.1:%d", p.p2p)},
		{"p2p", "persistent_peers", strings.Join(peers, ",")},
		{"p2p", "addr_book_strict", false},
		{"p2p", "allow_duplicate_ip", true},
		{"consensus", "timeout_commit", cfg.TimeoutCommit.String()},
		{"consensus", "timeout_propose", cfg.TimeoutPropose.String()},
		{"instrumentation", "prometheus", false},
	})
}

// moveValidatorKey moves the HA validator's key from its home to
// n.ValidatorKey, so that only a replica that links it in can sign.
func (n *Net) moveValidatorKey() error {
	src := filepath.Join(n.Homes[n.HA], "config", "priv_validator_key.json")
	secrets := filepath.Dir(n.ValidatorKey)
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return err
	}
	if err := os.Rename(src, n.ValidatorKey); err != nil {
		return fmt.Errorf("localnet: move validator key: %w", err)
	}
	if err := os.Chmod(n.ValidatorKey, 0o600); err != nil {
		return err
	}
	return syncDir(secrets)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
