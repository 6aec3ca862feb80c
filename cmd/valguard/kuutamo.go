package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// kuutamoEnv maps flags to the environment names kuutamod reads, so that a
// kuutamod environment file works unchanged. The VALGUARD_* name wins when
// both are set; each kuutamod name in use is reported once at start-up.
var kuutamoEnv = map[string][]string{
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

// env is the environment names of a flag: VALGUARD_<FLAG>, then kuutamod's.
func env(flag string) []string {
	return append([]string{valguardEnv(flag)}, kuutamoEnv[flag]...)
}

func valguardEnv(flag string) string {
	return "VALGUARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// deprecatedEnv is one line per kuutamod variable set in the environment.
type deprecatedEnv struct{ name, flag, msg string }

// findDeprecatedEnv lists the kuutamod names set in the environment for
// the flags of command c.
func findDeprecatedEnv(c *cli.Context) []deprecatedEnv {
	var out []deprecatedEnv
	for _, f := range c.Command.Flags {
		flag := f.Names()[0]
		var winner string // the first name set wins, as in the flag's EnvVars
		for _, name := range env(flag) {
			if _, ok := os.LookupEnv(name); !ok {
				continue
			}
			if winner == "" {
				winner = name
			}
			if !strings.HasPrefix(name, "KUUTAMO_") {
				continue
			}
			msg := fmt.Sprintf("%s is kuutamod's name: rename it %s (or use --%s)", name, valguardEnv(flag), flag)
			if winner != name {
				msg = fmt.Sprintf("%s is ignored: %s is set and takes precedence", name, winner)
			}
			out = append(out, deprecatedEnv{name, flag, msg})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func logDeprecatedEnv(c *cli.Context, log zerolog.Logger) {
	for _, d := range findDeprecatedEnv(c) {
		log.Warn().Str("env", d.name).Str("flag", "--"+d.flag).Msg("deprecated environment variable: " + d.msg)
	}
}

func printDeprecatedEnv(c *cli.Context) {
	for _, d := range findDeprecatedEnv(c) {
		fmt.Fprintln(c.App.ErrWriter, "valguard: deprecated environment variable: "+d.msg)
	}
}

// kuutamoNode reports whether the environment is kuutamod's: then the node
// type defaults to neard.
func kuutamoNode() bool {
	_, ok := os.LookupEnv("KUUTAMO_NEARD_HOME")
	return ok
}
