// Command chaos runs a fault drill (see internal/chaos): a 3-server
// Consul cluster, a 4-validator CometBFT localnet and replicas of one
// validator in network namespaces, FAULTS faults from the schedule SEED,
// the double-sign checker after each; prints the table per fault kind and
// writes report.json and timeline.svg into the run directory it names.
// Needs root. A failing run keeps its directory (logs, homes) and prints
// the command that replays it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/valguard/valguard/internal/chaos"
)

func main() {
	faults := flag.Int("faults", 200, "faults per mode")
	seed := flag.Uint64("seed", 0, "schedule seed (0: from the clock)")
	mode := flag.String("mode", "both", "restart, signer, both (restart and signer), near (key-file mode beside the neard stand-in), any (signer mode, --signers any) or all")
	dir := flag.String("dir", "", "run directory (default: a new one under $TMPDIR)")
	kinds := flag.String("kinds", "", "comma-separated fault kinds (default: every kind of the mode)")
	replicas := flag.Int("replicas", 2, "replicas of the validator (2 or 3)")
	broken := flag.Bool("broken", false, "run a valguard built with the chaosbroken tag (the checker must fail)")
	list := flag.Bool("list", false, "list the fault kinds with their bounds (markdown) and exit")
	markdown := flag.String("markdown", "", "print the table of report.json files (comma-separated: runs of one mode, merged) as markdown and exit")
	table := flag.String("table", "", "print the table of report.json files (comma-separated: runs of one mode, merged) and exit")
	flag.Parse()
	if *list {
		fmt.Print(chaos.KindsMarkdown())
		return
	}
	if *markdown != "" || *table != "" {
		paths := *markdown + *table
		var reps []*chaos.Report
		for _, p := range strings.Split(paths, ",") {
			rep, err := chaos.ReadReport(p)
			if err != nil {
				fail(err)
			}
			reps = append(reps, rep)
		}
		rep := reps[0].Complete()
		if len(reps) > 1 {
			var err error
			if rep, err = chaos.MergeReports(reps...); err != nil {
				fail(err)
			}
		}
		if *markdown != "" {
			fmt.Print(rep.Markdown())
		} else {
			rep.WriteTable(os.Stdout)
		}
		return
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano() % 1_000_000)
	}
	var modes []string
	switch *mode {
	case chaos.ModeRestart, chaos.ModeSigner, chaos.ModeNEAR, chaos.ModeAny:
		modes = []string{*mode}
	case "both":
		modes = []string{chaos.ModeRestart, chaos.ModeSigner}
	case "all":
		modes = []string{chaos.ModeRestart, chaos.ModeSigner, chaos.ModeNEAR, chaos.ModeAny}
	default:
		fail(fmt.Errorf("--mode %q: give restart, signer, both, near, any (signer mode, --signers any) or all", *mode))
	}
	if err := chaos.Tools(); err != nil {
		fail(err)
	}
	consul, cometbft, err := chaos.Binaries()
	if err != nil {
		fail(err)
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "valguard-chaos-"); err != nil {
			fail(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := chaos.BuildValguard(ctx, *dir, *broken)
	if err != nil {
		fail(err)
	}
	var standin string
	if slices.Contains(modes, chaos.ModeNEAR) {
		if standin, err = chaos.BuildStandin(ctx, *dir); err != nil {
			fail(err)
		}
	}
	var kindList []string
	if *kinds != "" {
		kindList = strings.Split(*kinds, ",")
	}
	fmt.Printf("chaos: run directory %s\n", *dir)
	failed := false
	var reports []*chaos.Report
	for _, m := range modes {
		mdir := filepath.Join(*dir, m)
		if err := os.MkdirAll(mdir, 0o755); err != nil {
			fail(err)
		}
		cfg := chaos.Config{
			RigConfig: chaos.RigConfig{Mode: m, Dir: mdir, Replicas: *replicas, Valguard: bin, Consul: consul, CometBFT: cometbft, Standin: standin,
				Logf: func(format string, args ...any) {
					fmt.Printf("%s [%s] %s\n", time.Now().Format("15:04:05"), m, fmt.Sprintf(format, args...))
				}},
			Faults: *faults, Seed: *seed, Kinds: kindList,
		}
		rep, err := chaos.Execute(ctx, cfg)
		if rep != nil {
			reports = append(reports, rep)
		}
		if err != nil && ctx.Err() != nil && rep != nil && !errors.Is(err, chaos.ErrDoubleSign) {
			fmt.Printf("\nchaos: %s mode stopped by a signal: %s\nlogs kept in %s\n", m, rep.Result, mdir)
		} else if err != nil {
			failed = true
			fmt.Printf("\nchaos: %s mode FAILED: %v\nlogs kept in %s\nreplay: make chaos MODE=%s FAULTS=%d SEED=%d\n", m, err, mdir, m, *faults, *seed)
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Println()
	for _, rep := range reports {
		rep.WriteTable(os.Stdout)
		fmt.Printf("JSON: %s\nSVG:  %s\n\n", filepath.Join(*dir, rep.Mode, "report.json"), filepath.Join(*dir, rep.Mode, "timeline.svg"))
	}
	if failed {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "chaos:", err)
	os.Exit(2)
}
