package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults of neard's config.json used when a field is absent.
const (
	defaultRPCAddr      = "0.0.0.0:3030"
	defaultNetworkAddr  = "0.0.0.0:24567"
	defaultGenesisFile  = "genesis.json"
	defaultValidatorKey = "validator_key.json"
	defaultNodeKey      = "node_key.json"
)

// nodeConfig is the part of config.json the stand-in uses, with paths made
// absolute against the home.
type nodeConfig struct {
	RPCAddr      string
	NetworkAddr  string
	BootNodes    string
	GenesisFile  string
	ValidatorKey string
	NodeKey      string
}

// readConfig reads home/config.json. Absent fields take neard's defaults;
// unknown fields are ignored.
func readConfig(home string) (nodeConfig, error) {
	path := filepath.Join(home, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nodeConfig{}, fmt.Errorf("read config: %w", err)
	}
	var raw struct {
		GenesisFile      string `json:"genesis_file"`
		ValidatorKeyFile string `json:"validator_key_file"`
		NodeKeyFile      string `json:"node_key_file"`
		RPC              *struct {
			Addr string `json:"addr"`
		} `json:"rpc"`
		Network struct {
			Addr      string `json:"addr"`
			BootNodes string `json:"boot_nodes"`
		} `json:"network"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nodeConfig{}, fmt.Errorf("parse config %s: %w", path, err)
	}
	c := nodeConfig{
		RPCAddr:      defaultRPCAddr,
		NetworkAddr:  or(raw.Network.Addr, defaultNetworkAddr),
		BootNodes:    raw.Network.BootNodes,
		GenesisFile:  inHome(home, or(raw.GenesisFile, defaultGenesisFile)),
		ValidatorKey: inHome(home, or(raw.ValidatorKeyFile, defaultValidatorKey)),
		NodeKey:      inHome(home, or(raw.NodeKeyFile, defaultNodeKey)),
	}
	if raw.RPC != nil {
		c.RPCAddr = or(raw.RPC.Addr, defaultRPCAddr)
	}
	return c, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func inHome(home, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(home, p)
}

// genesisFile is the part of genesis.json the stand-in writes and reads.
type genesisFile struct {
	ChainID         string             `json:"chain_id"`
	GenesisTime     time.Time          `json:"genesis_time"`
	ProtocolVersion int                `json:"protocol_version"`
	Validators      []genesisValidator `json:"validators"`
}

type genesisValidator struct {
	AccountID string `json:"account_id"`
	PublicKey string `json:"public_key"`
	Amount    string `json:"amount"`
}

// readGenesis reads genesis.json; a missing file gives an error matching
// os.ErrNotExist.
func readGenesis(path string) (genesisFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return genesisFile{}, err
	}
	var g genesisFile
	if err := json.Unmarshal(b, &g); err != nil {
		return genesisFile{}, fmt.Errorf("parse genesis %s: %w", path, err)
	}
	return g, nil
}

// knobs are the STANDIN_* environment variables (see the package doc).
type knobs struct {
	Version       string
	Genesis       *time.Time // nil: from genesis.json or the start
	BlockInterval time.Duration
	StartDelay    time.Duration
	SyncDelay     time.Duration
	ShutdownDelay time.Duration
	Journal       string
	IgnoreSIGHUP  bool
}

// readKnobs reads the STANDIN_* variables through getenv; an invalid value
// is an error naming the variable.
func readKnobs(getenv func(string) string) (knobs, error) {
	k := knobs{Version: or(getenv("STANDIN_VERSION"), "2.1.1"), BlockInterval: 500 * time.Millisecond}
	if _, _, err := parseVersion(k.Version); err != nil {
		return knobs{}, fmt.Errorf("STANDIN_VERSION: %w", err)
	}
	if s := getenv("STANDIN_GENESIS"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return knobs{}, fmt.Errorf("STANDIN_GENESIS: want Unix milliseconds: %w", err)
		}
		g := time.UnixMilli(ms).UTC()
		k.Genesis = &g
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"STANDIN_BLOCK_INTERVAL", &k.BlockInterval},
		{"STANDIN_START_DELAY", &k.StartDelay},
		{"STANDIN_SYNC_DELAY", &k.SyncDelay},
		{"STANDIN_SHUTDOWN_DELAY", &k.ShutdownDelay},
	}
	for _, d := range durations {
		s := getenv(d.name)
		if s == "" {
			continue
		}
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return knobs{}, fmt.Errorf("%s: want a non-negative Go duration, got %q", d.name, s)
		}
		*d.dst = v
	}
	if k.BlockInterval <= 0 {
		return knobs{}, errors.New("STANDIN_BLOCK_INTERVAL: must be positive")
	}
	k.Journal = getenv("STANDIN_JOURNAL")
	switch s := getenv("STANDIN_SIGHUP"); s {
	case "":
	case "ignore":
		k.IgnoreSIGHUP = true
	default:
		return knobs{}, fmt.Errorf("STANDIN_SIGHUP: want empty or \"ignore\", got %q", s)
	}
	return k, nil
}

// parseVersion reads the major and minor numbers of a release such as
// "2.1.1" or "2.2.0-rc.1".
func parseVersion(v string) (major, minor int, err error) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("want MAJOR.MINOR[.PATCH], got %q", v)
	}
	major, err = strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, fmt.Errorf("want MAJOR.MINOR[.PATCH], got %q", v)
	}
	minor, err = strconv.Atoi(strings.SplitN(parts[1], "-", 2)[0])
	if err != nil {
		return 0, 0, fmt.Errorf("want MAJOR.MINOR[.PATCH], got %q", v)
	}
	return major, minor, nil
}

// reloadsKeyOnSIGHUP reports whether a release hot-swaps the validator key
// on SIGHUP (nearcore ≥ 2.1, PR #11536).
func reloadsKeyOnSIGHUP(version string) bool {
	major, minor, err := parseVersion(version)
	return err == nil && (major > 2 || major == 2 && minor >= 1)
}
