package main

import (
	"fmt"
	"os"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/flagenv"
)

// env is the environment names of a flag: VALGUARD_<FLAG>, then
// kuutamod's (flagenv.Names).
func env(flag string) []string { return flagenv.Names(flag) }

// deprecatedEnv lists the kuutamod names set in the environment for the
// flags of command c (flagenv.Deprecated).
func deprecatedEnv(c *cli.Context) []flagenv.Deprecation {
	var flags []string
	for _, f := range c.Command.Flags {
		flags = append(flags, f.Names()[0])
	}
	return flagenv.Deprecated(flags, os.LookupEnv)
}

func logDeprecatedEnv(c *cli.Context, log zerolog.Logger) {
	for _, d := range deprecatedEnv(c) {
		log.Warn().Str("env", d.Name).Str("flag", "--"+d.Flag).Msg("deprecated environment variable: " + d.Msg)
	}
}

func printDeprecatedEnv(c *cli.Context) {
	for _, d := range deprecatedEnv(c) {
		fmt.Fprintln(c.App.ErrWriter, "valguard: deprecated environment variable: "+d.Msg)
	}
}
