package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// BuildValguard builds cmd/valguard into dir; broken adds the chaosbroken
// build tag (a valguard that breaks one safety ordering on purpose, for
// the checker's own test).
func BuildValguard(ctx context.Context, dir string, broken bool) (string, error) {
	if broken {
		return goBuild(ctx, filepath.Join(dir, "valguard-broken"), "./cmd/valguard", "-tags", "chaosbroken")
	}
	return goBuild(ctx, filepath.Join(dir, "valguard"), "./cmd/valguard")
}

// BuildStandin builds the neard stand-in (internal/neardstandin) into dir
// as a binary named neard, for the NEAR drill.
func BuildStandin(ctx context.Context, dir string) (string, error) {
	return goBuild(ctx, filepath.Join(dir, "neard"), "./internal/neardstandin")
}

// goBuild builds the module's package pkg into out, with flags.
func goBuild(ctx context.Context, out, pkg string, flags ...string) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}

// Binaries finds consul and cometbft where scripts/install-deps.sh puts
// them.
func Binaries() (consul, cometbft string, err error) {
	if consul, err = localnet.ConsulBinary(); err != nil {
		return "", "", err
	}
	if cometbft, err = localnet.CometBFTBinary(); err != nil {
		return "", "", err
	}
	return consul, cometbft, nil
}

// Execute runs a whole drill: builds the topology, runs the schedule, runs
// the checker a last time, tears everything down, and writes report.json
// and timeline.svg into cfg.Dir. The report is returned also when the
// drill failed; its Result says why. Logs stay in cfg.Dir.
func Execute(ctx context.Context, cfg Config) (*Report, error) {
	start := time.Now()
	d, err := NewDrill(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	runErr := d.Run(ctx)
	var findings []string
	// An interrupted run has lost its chain (its processes end with ctx):
	// no final check then.
	if ctx.Err() == nil && (runErr == nil || !errors.Is(runErr, ErrDoubleSign)) {
		f, err := d.FinalCheck(context.WithoutCancel(ctx))
		findings = f
		if len(f) > 0 {
			runErr = errors.Join(runErr, fmt.Errorf("final check: %w:\n%s", ErrDoubleSign, strings.Join(f, "\n")))
		} else if err != nil && runErr == nil {
			runErr = fmt.Errorf("final check: %w", err)
		}
	}
	rep := d.report(start)
	rep.Findings = findings
	rep.Result = "pass"
	if runErr != nil {
		rep.Result = runErr.Error()
	}
	if ctx.Err() != nil && !errors.Is(runErr, ErrDoubleSign) {
		// Stopped on purpose (a signal): the faults checked count.
		rep = rep.Complete()
	}
	if err := rep.WriteJSON(filepath.Join(cfg.Dir, "report.json")); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if f, err := os.Create(filepath.Join(cfg.Dir, "timeline.svg")); err == nil {
		if err := d.WriteSVG(context.WithoutCancel(ctx), f); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("timeline: %w", err))
		}
		f.Close()
	}
	return rep, runErr
}
