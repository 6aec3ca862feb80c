// Command valguard keeps one blockchain validator signing from a set of
// replicas, and never from two at once. See the README.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := &cli.App{
		Name:  "valguard",
		Usage: "high-availability failover for blockchain validators, never double-signing",
		Commands: []*cli.Command{
			runCommand(),
			activeValidatorCommand(),
			stateCommand(),
			statusCommand(),
			handoverCommand(),
			drainCommand(),
			undrainCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "valguard %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
					return nil
				},
			},
		},
		ExitErrHandler: func(c *cli.Context, err error) {
			if err == nil {
				return
			}
			if ec, ok := err.(cli.ExitCoder); ok {
				if msg := ec.Error(); msg != "" {
					fmt.Fprintln(os.Stderr, "valguard:", msg)
				}
				os.Exit(ec.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "valguard:", err)
			os.Exit(1)
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "valguard:", err)
		os.Exit(2)
	}
}
