package cometbft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/valguard/valguard/supervisor"
)

// cosmovisor (cosmossdk.io/tools/cosmovisor, tested with v1.5.0) is the
// Cosmos SDK's process manager for chain upgrades. Given as the node
// binary, it runs as "cosmovisor run start --home HOME ...", and it runs
// the daemon $DAEMON_HOME/cosmovisor/current/bin/$DAEMON_NAME as its child
// with the same arguments. At an upgrade height the daemon stops (the
// SDK's x/upgrade writes data/upgrade-info.json), cosmovisor points
// current at the upgrade's binary and starts it; cosmovisor itself runs
// on, so valguard sees no exit: no failover, no lost lease. Its process
// tree is the node's (S10): a daemon cosmovisor starts is in the node's
// cgroup, and valguard's stop and kill reach it.
const cosmovisorName = "cosmovisor"

// DefaultCosmovisorShutdownGrace is the DAEMON_SHUTDOWN_GRACE valguard
// gives cosmovisor when the environment sets none: at an upgrade, the
// daemon is interrupted and given this long to stop cleanly (its last
// votes sent, its stores closed) before cosmovisor kills it; cosmovisor's
// own default is an immediate SIGKILL.
const DefaultCosmovisorShutdownGrace = "10s"

// DefaultCosmovisorRestartDelay is the DAEMON_RESTART_DELAY valguard gives
// cosmovisor in the signer mode with a unix socket when the environment
// sets none, and MinCosmovisorRestartDelay the least it accepts there: the
// upgraded daemon must not start before valguard has removed the socket
// the stopped one left behind. signer.Serve does that at its first redial
// after the connection ended, which comes once the request in hand is
// answered: up to the park hold, always below the node's 5 s read timeout
// (signer.NodeReadTimeout), then 100 ms (signer.DefaultRedialEvery).
// With a tcp signer address there is no socket file and no delay.
const (
	DefaultCosmovisorRestartDelay = "6s"
	MinCosmovisorRestartDelay     = 5500 * time.Millisecond
)

// Wrapped implements supervisor.WrappedNode: under cosmovisor, the daemon
// that loads the key is cosmovisor's child.
func (n *Node) Wrapped() bool { return n.cosmovisor }

var _ supervisor.WrappedNode = (*Node)(nil)

// isCosmovisor reports whether the node binary, a path, is cosmovisor:
// by its name, or the name of what it links to.
func isCosmovisor(binary string) bool {
	if filepath.Base(binary) == cosmovisorName {
		return true
	}
	r, err := filepath.EvalSymlinks(binary)
	return err == nil && filepath.Base(r) == cosmovisorName
}

// lookupEnv is the value of name in env (the last one, as os/exec passes
// it) and whether it is set.
func lookupEnv(env []string, name string) (string, bool) {
	v, ok := "", false
	for _, e := range env {
		if k, val, _ := strings.Cut(e, "="); k == name {
			v, ok = val, true
		}
	}
	return v, ok
}

// cosmovisorEnv checks what cosmovisor reads from env for a node whose
// home is home (absolute), and returns env with what valguard sets when
// it is unset: DAEMON_HOME (the node home), DAEMON_SHUTDOWN_GRACE
// (DefaultCosmovisorShutdownGrace) and, with unixSigner (the signer mode
// on a unix socket), DAEMON_RESTART_DELAY
// (DefaultCosmovisorRestartDelay). It refuses:
//   - DAEMON_NAME unset or not a plain file name;
//   - DAEMON_HOME set to another directory than the node home, or to a
//     relative path (cosmovisor would take the binaries and the upgrade
//     plans of another home, or refuse to start);
//   - DAEMON_RESTART_AFTER_UPGRADE false (cosmovisor would exit after an
//     upgrade: a node crash to valguard) or not a boolean;
//   - with unixSigner, DAEMON_RESTART_DELAY below
//     MinCosmovisorRestartDelay;
//   - no executable daemon at current/bin or genesis/bin.
func cosmovisorEnv(home string, env []string, unixSigner bool) ([]string, error) {
	env = append([]string(nil), env...)
	name, _ := lookupEnv(env, "DAEMON_NAME")
	switch {
	case name == "":
		return nil, errors.New("cosmovisor as the node binary: DAEMON_NAME is not set: set it in valguard's environment to the daemon's binary name (e.g. gaiad)")
	case name != filepath.Base(name) || name == "." || name == "..":
		return nil, fmt.Errorf("cosmovisor as the node binary: DAEMON_NAME %q is not a binary name: give the name only (e.g. gaiad); cosmovisor finds it under $DAEMON_HOME/cosmovisor", name)
	}
	switch dh, ok := lookupEnv(env, "DAEMON_HOME"); {
	case !ok || dh == "":
		env = append(env, "DAEMON_HOME="+home)
	case !filepath.IsAbs(dh) || !sameDir(dh, home):
		return nil, fmt.Errorf("cosmovisor as the node binary: DAEMON_HOME %s is not the node home %s: cosmovisor would run the binaries and follow the upgrades of another home (the daemon itself runs on the node home, --home); unset DAEMON_HOME (valguard sets it to the node home) or set it to the node home's absolute path", dh, home)
	}
	if v, ok := lookupEnv(env, "DAEMON_RESTART_AFTER_UPGRADE"); ok {
		switch strings.ToLower(v) {
		case "", "true":
		case "false":
			return nil, errors.New("cosmovisor as the node binary: DAEMON_RESTART_AFTER_UPGRADE=false makes cosmovisor exit after an upgrade, which valguard would take for a node crash: unset it (cosmovisor's default is true)")
		default:
			return nil, fmt.Errorf("cosmovisor as the node binary: DAEMON_RESTART_AFTER_UPGRADE=%q is not a boolean: unset it or set true", v)
		}
	}
	if v, ok := lookupEnv(env, "DAEMON_RESTART_DELAY"); unixSigner && (!ok || v == "") {
		env = append(env, "DAEMON_RESTART_DELAY="+DefaultCosmovisorRestartDelay)
	} else if unixSigner {
		if d, err := time.ParseDuration(v); err != nil || d < MinCosmovisorRestartDelay {
			return nil, fmt.Errorf("cosmovisor as the node binary: DAEMON_RESTART_DELAY=%q: in the signer mode on a unix socket the upgraded daemon must start %s or more after the old one stopped, so that valguard removes the socket the old one left (CometBFT does not, and the new one could not listen); unset it (valguard sets %s) or give a duration of %s or more", v, MinCosmovisorRestartDelay, DefaultCosmovisorRestartDelay, MinCosmovisorRestartDelay)
		}
	}
	if v, ok := lookupEnv(env, "DAEMON_SHUTDOWN_GRACE"); !ok || v == "" {
		env = append(env, "DAEMON_SHUTDOWN_GRACE="+DefaultCosmovisorShutdownGrace)
	}
	root := filepath.Join(home, "cosmovisor")
	current := filepath.Join(root, "current", "bin", name)
	genesis := filepath.Join(root, "genesis", "bin", name)
	if executable(current) || executable(genesis) {
		return env, nil
	}
	return nil, fmt.Errorf("cosmovisor as the node binary: no executable %s at %s or %s: install the daemon as cosmovisor's documentation says (cosmovisor init <path to %s>, with DAEMON_HOME=%s)", name, current, genesis, name, home)
}

// sameDir reports whether a and b name the same directory.
func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// executable reports whether path is a regular file someone may execute.
func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
