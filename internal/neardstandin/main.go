package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
)

// errUsage marks a command-line error; its message has been printed.
var errUsage = errors.New("usage error")

const usage = `usage:
  neard --version
  neard [--home DIR] init [--chain-id ID] [--account-id ACC]
  neard [--home DIR] run [--boot-nodes LIST]
`

func main() {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(os.Stderr).With().Timestamp().Int("pid", os.Getpid()).Logger()
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr, log))
}

// runMain runs the command line and returns the exit status: 0, 1 on
// failure (the message on stderr), 2 on a usage error.
func runMain(args []string, stdout, stderr io.Writer, log zerolog.Logger) int {
	global := newFlagSet("neard", stderr)
	home := global.String("home", defaultHome(), "the node home directory")
	showVersion := global.Bool("version", false, "print the version and exit")
	if err := global.Parse(args); err != nil {
		return exitStatus(err, stderr)
	}
	k, err := readKnobs(os.Getenv)
	if err != nil {
		return exitStatus(err, stderr)
	}
	if *showVersion {
		fmt.Fprintf(stdout, "neard (release %s) (build %s) (rustc %s) (protocol %d) (db %d)\n",
			k.Version, k.Version, rustcVersion, protocolVersion, dbVersion)
		return 0
	}
	rest := global.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, "neard: no subcommand\n"+usage)
		return 2
	}
	switch rest[0] {
	case "init":
		err = initCmd(*home, rest[1:], stderr)
	case "run":
		err = runCmd(*home, rest[1:], k, stderr, log)
	default:
		fmt.Fprintf(stderr, "neard: unknown subcommand %q\n%s", rest[0], usage)
		return 2
	}
	return exitStatus(err, stderr)
}

func exitStatus(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "neard: %v\n", err)
		return 1
	}
}

// newFlagSet returns a flag set whose parse errors are errUsage.
func newFlagSet(name string, stderr io.Writer) *usageFlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return &usageFlagSet{fs}
}

type usageFlagSet struct{ *flag.FlagSet }

func (f *usageFlagSet) Parse(args []string) error {
	err := f.FlagSet.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}

// defaultHome is neard's default home, ~/.near.
func defaultHome() string {
	dir, err := os.UserHomeDir()
	if err != nil {
		return ".near"
	}
	return filepath.Join(dir, ".near")
}

// runCmd is `neard run`.
func runCmd(home string, args []string, k knobs, stderr io.Writer, log zerolog.Logger) error {
	fs := newFlagSet("run", stderr)
	bootNodes := fs.String("boot-nodes", "", "comma-separated boot nodes (accepted, unused)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "neard run: unexpected argument %q\n%s", fs.Arg(0), usage)
		return errUsage
	}
	return run(home, *bootNodes, k, log)
}
