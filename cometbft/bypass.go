package cometbft

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/valguard/valguard/internal/setting"
)

// A managed setting: one that, given to the node on its command line or in its
// environment, would take the node out of what valguard checks: another
// home, key or sign-state file, a remote signer, CometBFT's double-sign
// check, or listen addresses other than the ones valguard probes and
// reads the status from.
type managed struct {
	key    string // normalised: lower case, '.' and '-' as '_'
	reason string
	fix    string
}

var settings = []managed{
	{"home", "the node would use another home than the node home valguard was given, where it manages no key link", "give that home to valguard instead"},
	{"priv_validator_key_file", "the node would load a key file valguard does not manage (S1, S2)", "set priv_validator_key_file in config.toml, which valguard reads"},
	{"priv_validator_state_file", "the node would use a sign-state file valguard does not raise (S8)", "set priv_validator_state_file in config.toml, which valguard reads"},
	{"priv_validator_laddr", "the node would take its key from a remote signer valguard does not control", "remove it: in the signer sign mode valguard passes its own address, in the restart mode it manages a file key"},
	{"consensus_double_sign_check_height", "valguard passes 0: CometBFT's check refuses every start after a takeover, and the sign-state raise replaces it", "remove it"},
	{"double_sign_check_height", "valguard passes consensus.double_sign_check_height 0: the sign-state raise replaces CometBFT's check", "remove it"},
	{"rpc_laddr", "valguard reads the node's status (and its loaded key) from [rpc] laddr in config.toml; another address would hide this node or show another process", "set [rpc] laddr in config.toml"},
	{"p2p_laddr", "valguard checks before each start that no leftover node listens on [p2p] laddr from config.toml", "set [p2p] laddr in config.toml"},
}

// anyPrefix are the settings refused in the environment under any prefix.
var anyPrefix = []string{"priv_validator_key_file", "priv_validator_state_file", "priv_validator_laddr", "double_sign_check_height"}

func findSetting(key string) (managed, bool) {
	for _, s := range settings {
		if s.key == key {
			return s, true
		}
	}
	return managed{}, false
}

// normalise maps every spelling of a setting name to one: lower case,
// '.' and '-' as '_'.
func normalise(name string) string {
	return strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToLower(name))
}

// checkArgs refuses node arguments that override a setting valguard
// manages, in any spelling: --x=v, --x v, -x, dashes or underscores,
// dots or underscores. Every argument is looked at, also values and
// anything after "--": a false refusal costs an edit, a missed one a key.
func checkArgs(args []string) error {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		s, ok := findSetting(normalise(name))
		if !ok {
			continue
		}
		return setting.Errorf("Args", "node argument %q: %s: %s and remove it from the node arguments", a, s.reason, s.fix)
	}
	return nil
}

// envPrefixes are the prefixes under which the node reads its settings
// from the environment:
//   - CMT and TM: CometBFT's viper (cli.PrepareBaseCmd with "CMT"; TM in
//     Tendermint and older daemons). cli.copyEnvVars also turns CMTX into
//     CMT_X, and CMTHOME/TMHOME choose the home before --home.
//   - the binary's base name, upper case: a Cosmos SDK daemon's server
//     viper (server.InterceptConfigsPreRunHandler: SetEnvPrefix of the
//     executable's base name, "." and "-" as "_"), e.g. GAIAD_HOME; its
//     bindFlags also binds each flag to <base name>_<FLAG> with the base
//     name's case and the flag's dots kept (gaiad_HOME). Both
//     the name given and the file it resolves to are taken (os.Executable
//     resolves symlinks), and DAEMON_NAME when set (cosmovisor runs it).
func envPrefixes(binary string, env []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if name == "" || name == "." || name == "/" {
			return
		}
		p := strings.ToUpper(normalise(name))
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	add("CMT")
	add("TM")
	add(filepath.Base(binary))
	if r, err := filepath.EvalSymlinks(binary); err == nil {
		add(filepath.Base(r))
	}
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k == "DAEMON_NAME" {
			add(filepath.Base(v))
		}
	}
	return out
}

// checkEnv refuses an environment that sets one of the settings valguard
// manages under one of the node's prefixes (set at all, even empty: unset
// it). Names are compared after normalise, upper-cased.
func checkEnv(binary string, env []string) error {
	prefixes := envPrefixes(binary, env)
	var bad []string
	var reasons []string
	for _, e := range env {
		name, _, _ := strings.Cut(e, "=")
		n := strings.ToUpper(normalise(name))
		for _, p := range prefixes {
			rest, ok := strings.CutPrefix(n, p)
			if !ok {
				continue
			}
			// CMTX is read as CMT_X (cli.copyEnvVars); for the others only P_X.
			under := strings.HasPrefix(rest, "_")
			rest = strings.TrimPrefix(rest, "_")
			if !under && p != "CMT" && p != "TM" {
				continue
			}
			if s, ok := findSetting(strings.ToLower(rest)); ok {
				bad = append(bad, name)
				reasons = append(reasons, name+": "+s.reason)
				break
			}
		}
		if len(bad) > 0 && bad[len(bad)-1] == name {
			continue
		}
		// A Cosmos SDK daemon may read its settings under a prefix of its
		// own choosing (the one its main passes to the SDK's Execute),
		// which cannot be known from outside: refuse the key settings
		// under any prefix. (Not the home: X_HOME is too common a name.)
		for _, key := range anyPrefix {
			if n == strings.ToUpper(key) || strings.HasSuffix(n, "_"+strings.ToUpper(key)) {
				s, _ := findSetting(key)
				bad = append(bad, name)
				reasons = append(reasons, name+": "+s.reason+" (whatever prefix the daemon reads)")
				break
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	sort.Strings(reasons)
	return fmt.Errorf("the environment sets %s, which the node would read (%s): unset %s in valguard's environment (systemd unit, shell) and put the value in config.toml or valguard's flags",
		strings.Join(bad, ", "), strings.Join(reasons, "; "), plural(bad))
}

func plural(names []string) string {
	if len(names) == 1 {
		return "it"
	}
	return "them"
}

// environ is cfg.Environ, or a copy of the process environment.
func environ(env []string) []string {
	if env == nil {
		return os.Environ()
	}
	return append([]string(nil), env...)
}
