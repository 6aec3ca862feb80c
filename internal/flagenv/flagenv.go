// Package flagenv names the environment variables that set valguard's
// flags: VALGUARD_<FLAG> and, so that a kuutamod environment file works
// unchanged, the names kuutamod reads. The VALGUARD_* name wins when both
// are set; Deprecated lists each kuutamod name in use, for the warnings at
// start-up. The package reads no environment itself: its callers pass
// os.LookupEnv.
package flagenv

import (
	"fmt"
	"slices"
	"strings"
)

// kuutamod maps flags to the environment names kuutamod reads.
var kuutamod = map[string][]string{
	"consul-url":             {"KUUTAMO_CONSUL_URL"},
	"consul-token-file":      {"KUUTAMO_CONSUL_TOKEN_FILE"},
	"replica-id":             {"KUUTAMO_NODE_ID"},
	"validator-id":           {"KUUTAMO_ACCOUNT_ID"},
	"node-home":              {"KUUTAMO_NEARD_HOME"},
	"validator-key":          {"KUUTAMO_VALIDATOR_KEY"},
	"validator-node-key":     {"KUUTAMO_VALIDATOR_NODE_KEY"},
	"voter-node-key":         {"KUUTAMO_VOTER_NODE_KEY"},
	"metrics-addr":           {"KUUTAMO_EXPORTER_ADDRESS"},
	"validator-network-addr": {"KUUTAMO_VALIDATOR_NETWORK_ADDR"},
	"voter-network-addr":     {"KUUTAMO_VOTER_NETWORK_ADDR"},
	"boot-nodes":             {"KUUTAMO_NEARD_BOOTNODES"},
	// kuutamod's NixOS module writes the plural, comma-separated form.
	"public-address": {"KUUTAMO_PUBLIC_ADDRESS", "KUUTAMO_PUBLIC_ADDRESSES"},
}

// Names are the environment names of a flag, in the order a flag's
// EnvVars take them (the first one set wins): VALGUARD_<FLAG>, then
// kuutamod's.
func Names(flag string) []string {
	return append([]string{Valguard(flag)}, kuutamod[flag]...)
}

// Valguard is the flag's own environment name: VALGUARD_CONSUL_URL for
// consul-url.
func Valguard(flag string) string {
	return "VALGUARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Deprecation is one kuutamod variable set in the environment: its Name,
// the Flag it sets, and Msg, what to do about it.
type Deprecation struct{ Name, Flag, Msg string }

// Deprecated lists the kuutamod names that lookup finds set for flags,
// sorted by name: one to rename, or one ignored because a name before it
// in Names is set too.
func Deprecated(flags []string, lookup func(string) (string, bool)) []Deprecation {
	var out []Deprecation
	for _, flag := range flags {
		var winner string // the first name set wins, as in the flag's EnvVars
		for _, name := range Names(flag) {
			if _, ok := lookup(name); !ok {
				continue
			}
			if winner == "" {
				winner = name
			}
			if !strings.HasPrefix(name, "KUUTAMO_") {
				continue
			}
			msg := fmt.Sprintf("%s is kuutamod's name: rename it %s (or use --%s)", name, Valguard(flag), flag)
			if winner != name {
				msg = fmt.Sprintf("%s is ignored: %s is set and takes precedence", name, winner)
			}
			out = append(out, Deprecation{name, flag, msg})
		}
	}
	slices.SortFunc(out, func(a, b Deprecation) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Kuutamod reports whether the environment lookup reads is kuutamod's
// (KUUTAMO_NEARD_HOME is set): then the node type defaults to neard.
func Kuutamod(lookup func(string) (string, bool)) bool {
	_, ok := lookup("KUUTAMO_NEARD_HOME")
	return ok
}
