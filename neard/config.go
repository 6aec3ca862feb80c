package neard

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/valguard/valguard/internal/atomicfile"
	"github.com/valguard/valguard/internal/setting"
)

// paths are what the adapter reads from config.json: the files and
// addresses of a node home.
type paths struct {
	config       string // <home>/config.json
	validatorKey string // where validator_key.json goes (a link we own)
	nodeKey      string // where node_key.json goes (a link we own)
	status       string // http://host:port/status
	own          string // <home>/valguard: our files
}

// readConfig reads home/config.json and resolves the key paths in it the
// way neard does (relative to home).
func readConfig(home string) (paths, error) {
	p := paths{config: filepath.Join(home, "config.json"), own: filepath.Join(home, "valguard")}
	// A linked config.json is edited where it lives, and stays a link.
	if real, err := filepath.EvalSymlinks(p.config); err == nil {
		p.config = real
	}
	data, err := os.ReadFile(p.config)
	if errors.Is(err, os.ErrNotExist) {
		return p, setting.Errorf("Home", "%s not found: the node home must be an initialised neard home (run `neard --home %s init ...` or give the existing one)", p.config, home)
	}
	if err != nil {
		return p, err
	}
	if !gjson.ValidBytes(data) {
		return p, fmt.Errorf("%s is not valid JSON: fix or regenerate it", p.config)
	}
	rel := func(key, def string) string {
		v := gjson.GetBytes(data, key).String()
		if v == "" {
			v = def
		}
		if filepath.IsAbs(v) {
			return v
		}
		return filepath.Join(home, v)
	}
	p.validatorKey = rel("validator_key_file", "validator_key.json")
	p.nodeKey = rel("node_key_file", "node_key.json")
	rpc := gjson.GetBytes(data, "rpc.addr").String()
	if rpc == "" {
		rpc = "0.0.0.0:3030"
	}
	host, port, err := net.SplitHostPort(rpc)
	if err != nil {
		return p, fmt.Errorf("%s: rpc.addr %q: %w", p.config, rpc, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	p.status = "http://" + net.JoinHostPort(host, port) + "/status"
	return p, nil
}

// network is what valguard owns in config.json for one role.
type network struct {
	addr string
	// publicAddrs replaces network.public_addrs when not nil; nil leaves
	// the field as it was.
	publicAddrs []string
}

// writeNetwork sets network.addr (and public_addrs when owned) in
// config.json, keeping every other byte of the file: neard's config has
// many fields valguard does not know, and they must survive. The file is
// replaced atomically and only when something changes.
func writeNetwork(path string, n network) (changed bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	out := data
	if gjson.GetBytes(out, "network.addr").String() != n.addr {
		if out, err = sjson.SetBytes(out, "network.addr", n.addr); err != nil {
			return false, fmt.Errorf("%s: set network.addr: %w", path, err)
		}
	}
	if n.publicAddrs != nil {
		var cur []string
		for _, v := range gjson.GetBytes(out, "network.public_addrs").Array() {
			cur = append(cur, v.String())
		}
		if !slices.Equal(cur, n.publicAddrs) {
			if out, err = sjson.SetBytes(out, "network.public_addrs", n.publicAddrs); err != nil {
				return false, fmt.Errorf("%s: set network.public_addrs: %w", path, err)
			}
		}
	}
	if string(out) == string(data) {
		return false, nil
	}
	if err := atomicfile.Write(path, out, fi.Mode().Perm()); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
