package cometbft

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// nodeConfig is the part of config.toml the adapter reads.
type nodeConfig struct {
	PrivValidatorKeyFile   string `toml:"priv_validator_key_file"`
	PrivValidatorStateFile string `toml:"priv_validator_state_file"`
	PrivValidatorLaddr     string `toml:"priv_validator_laddr"`
	RPC                    struct {
		Laddr string `toml:"laddr"`
	} `toml:"rpc"`
}

// paths are the files of a node home the adapter works with.
type paths struct {
	config   string // config/config.toml
	key      string // where priv_validator_key.json goes (a link we own)
	state    string // the sign-state file the node reads and writes
	rpc      string // http://host:port
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
		return p, fmt.Errorf("node home %s has no config/config.toml: point --node-home at an initialised node home (cometbft init --home %s)", home, home)
	}
	if err != nil {
		return p, fmt.Errorf("read %s: %w", p.config, err)
	}
	var c nodeConfig
	if err := toml.Unmarshal(data, &c); err != nil {
		return p, fmt.Errorf("parse %s: %w", p.config, err)
	}
	if c.PrivValidatorLaddr != "" {
		return p, fmt.Errorf("%s sets priv_validator_laddr = %q (a remote signer): valguard's cometbft adapter manages a file key; set it to \"\"", p.config, c.PrivValidatorLaddr)
	}
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
	p.rpc, err = rpcURL(c.RPC.Laddr)
	if err != nil {
		return p, fmt.Errorf("%s: [rpc] laddr: %w", p.config, err)
	}
	p.own = filepath.Join(home, "valguard")
	p.voterKey = filepath.Join(p.own, "voter_priv_validator_key.json")
	p.vstate = filepath.Join(p.own, "validator_state.json")
	return p, nil
}

// rpcURL turns an RPC listen address (tcp://0.0.0.0:26657) into a URL to
// dial; an unspecified host becomes loopback.
func rpcURL(laddr string) (string, error) {
	if laddr == "" {
		laddr = "tcp://127.0.0.1:26657"
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
