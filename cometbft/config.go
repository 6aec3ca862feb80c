package cometbft

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"github.com/valguard/valguard/internal/setting"
)

// nodeConfig is the part of config.toml the adapter reads.
type nodeConfig struct {
	PrivValidatorKeyFile   string `toml:"priv_validator_key_file"`
	PrivValidatorStateFile string `toml:"priv_validator_state_file"`
	PrivValidatorLaddr     string `toml:"priv_validator_laddr"`
	Genesis                string `toml:"genesis_file"`
	RPC                    struct {
		Laddr string `toml:"laddr"`
	} `toml:"rpc"`
	P2P struct {
		Laddr string `toml:"laddr"`
	} `toml:"p2p"`
}

// paths are the files of a node home the adapter works with.
type paths struct {
	config   string // config/config.toml
	key      string // where priv_validator_key.json goes (a link we own)
	state    string // the sign-state file the node reads and writes
	rpc      string // http://host:port
	laddr    string // priv_validator_laddr as config.toml has it
	genesis  string // genesis.json
	rpcLaddr string // [rpc] laddr as config.toml has it (with CometBFT's default)
	p2pLaddr string // [p2p] laddr as config.toml has it (with CometBFT's default)
	own      string // <home>/valguard: our files
	voterKey string // the replica's non-validator key
	vstate   string // the validator's last known sign state on this replica
}

// readConfig reads home/config/config.toml and resolves the paths in it
// the way CometBFT does (relative to home).
func readConfig(home string) (paths, error) {
	var p paths
	p.config = filepath.Join(home, "config", "config.toml")
	data, err := os.ReadFile(p.config)
	if errors.Is(err, os.ErrNotExist) {
		return p, setting.Errorf("Home", "node home %s has no config/config.toml: give an initialised node home (cometbft init --home %s)", home, home)
	}
	if err != nil {
		return p, fmt.Errorf("read %s: %w", p.config, err)
	}
	if err := checkShadowingConfig(home, p.config); err != nil {
		return p, err
	}
	var c nodeConfig
	if err := toml.Unmarshal(data, &c); err != nil {
		return p, fmt.Errorf("parse %s: %w", p.config, err)
	}
	p.laddr = c.PrivValidatorLaddr
	rootify := func(f, def string) string {
		if f == "" {
			f = def
		}
		if filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(home, f)
	}
	p.key = rootify(c.PrivValidatorKeyFile, "config/priv_validator_key.json")
	p.state = rootify(c.PrivValidatorStateFile, "data/priv_validator_state.json")
	p.genesis = rootify(c.Genesis, "config/genesis.json")
	p.rpcLaddr = c.RPC.Laddr
	if p.rpcLaddr == "" {
		p.rpcLaddr = defaultRPCLaddr
	}
	p.p2pLaddr = c.P2P.Laddr
	if p.p2pLaddr == "" {
		p.p2pLaddr = defaultP2PLaddr
	}
	p.rpc, err = rpcURL(p.rpcLaddr)
	if err != nil {
		return p, fmt.Errorf("%s: [rpc] laddr: %w", p.config, err)
	}
	p.own = filepath.Join(home, "valguard")
	p.voterKey = filepath.Join(p.own, "voter_priv_validator_key.json")
	p.vstate = filepath.Join(p.own, "validator_state.json")
	return p, nil
}

// CometBFT's defaults for the listen addresses (config.DefaultConfig).
const (
	defaultRPCLaddr = "tcp://127.0.0.1:26657"
	defaultP2PLaddr = "tcp://0.0.0.0:26656"
)

// viperExts are the extensions viper (v1.19, as CometBFT v0.38 uses it)
// tries, in this order, for a file named "config".
var viperExts = []string{"json", "toml", "yaml", "yml", "properties", "props", "prop", "hcl", "tfvars", "dotenv", "env", "ini"}

// checkShadowingConfig refuses a home where CometBFT would read another
// file than config/config.toml: its viper looks for config.<ext> in the
// home first, then in home/config, each time trying viperExts in order,
// and reads the first file it finds. A config.json beside config.toml
// (or a config.toml in the home itself) would set key paths valguard
// never sees.
func checkShadowingConfig(home, config string) error {
	for _, dir := range []string{home, filepath.Join(home, "config")} {
		for _, ext := range viperExts {
			f := filepath.Join(dir, "config."+ext)
			if fi, err := os.Stat(f); err != nil || fi.IsDir() {
				continue
			}
			if f == config {
				return nil
			}
			return fmt.Errorf("%s: the node reads this file instead of %s (CometBFT looks for config.* in the home, then in home/config, and takes the first), so it could load a key valguard does not manage: move %s out of the node home", f, config, f)
		}
	}
	return nil
}

// rpcURL turns an RPC listen address (tcp://0.0.0.0:26657) into a URL to
// dial; an unspecified host becomes loopback.
func rpcURL(laddr string) (string, error) {
	if laddr == "" {
		laddr = defaultRPCLaddr
	}
	u, err := url.Parse(laddr)
	if err != nil {
		return "", err
	}
	if u.Scheme != "tcp" && u.Scheme != "http" {
		return "", fmt.Errorf("%q: only tcp:// listen addresses are supported", laddr)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		return "", fmt.Errorf("%q has no port", laddr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + (&url.URL{Host: host + ":" + port}).Host, nil
}
