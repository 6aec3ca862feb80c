// Command demo runs valguard's local demo and benchmark: a Consul agent, a
// 4-validator CometBFT localnet whose validator 3 is held by two valguard
// replicas, then failovers with a printed timeline. For `make demo` and
// `make bench`; not needed in production.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/valguard/valguard/scripts/localnet"
)

func main() {
	valguard := flag.String("valguard", "bin/valguard", "the valguard binary")
	bench := flag.Bool("bench", false, "run the benchmark instead of the single demo failover")
	runs := flag.Int("runs", 5, "benchmark runs of each kind")
	keep := flag.Bool("keep", false, "keep the working directory (logs) afterwards")
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "demo: --runs must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *valguard, *bench, *runs, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, valguard string, bench bool, runs int, keep bool) error {
	bin, err := filepath.Abs(valguard)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("valguard binary: %w (run make build)", err)
	}
	dir, err := os.MkdirTemp("", "valguard-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Printf("working directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	env, err := setUp(ctx, dir, bin)
	defer env.tearDown()
	if err != nil {
		return err
	}
	if bench {
		return runBench(ctx, env, runs)
	}
	return runDemo(ctx, env)
}

func runDemo(ctx context.Context, env *demoEnv) error {
	leader, standby, err := env.leaderAndStandby(ctx)
	if err != nil {
		return err
	}
	fmt.Println()
	env.say("active validator: %s", env.activeValidator())
	h0, _ := localnet.Height(ctx, env.rpc)
	if _, err := env.firstSigned(ctx, h0, time.Minute); err != nil {
		return err
	}
	env.say("validator %s is signing through replica %s; replica %s is a warm standby", short(env.net.HAAddress), leader.id, standby.id)

	env.say("SIGKILL valguard of replica %s (its node must die with it)", leader.id)
	tl, err := env.failover(ctx, leader, standby, syscall.SIGKILL)
	if err != nil {
		return err
	}
	tl.print(env)
	env.say("active validator: %s", env.activeValidator())
	return env.checkSafety(ctx)
}

func runBench(ctx context.Context, env *demoEnv, runs int) error {
	results := map[string][]timeline{}
	for _, kind := range []struct {
		name string
		sig  syscall.Signal
	}{{"graceful (SIGTERM)", syscall.SIGTERM}, {"crash (SIGKILL)", syscall.SIGKILL}} {
		for i := 0; i < runs; i++ {
			leader, standby, err := env.leaderAndStandby(ctx)
			if err != nil {
				return err
			}
			h0, _ := localnet.Height(ctx, env.rpc)
			if _, err := env.firstSigned(ctx, h0, time.Minute); err != nil {
				return err
			}
			if i == 0 && kind.sig == syscall.SIGTERM {
				if err := env.measureIdle(leader); err != nil {
					return err
				}
			}
			tl, err := env.failover(ctx, leader, standby, kind.sig)
			if err != nil {
				return err
			}
			env.say("%s run %d/%d: kill→first signature %.2fs, missed heights %d", kind.name, i+1, runs, tl.toSign().Seconds(), tl.missed)
			results[kind.name] = append(results[kind.name], tl)
			if err := leader.start(ctx); err != nil {
				return err
			}
			if err := leader.waitState(ctx, "Voting", 2*time.Minute); err != nil {
				return err
			}
		}
	}
	fmt.Println()
	fmt.Printf("%-20s %-34s %-22s\n", "failover", "kill→first signature (s)", "missed heights")
	fmt.Printf("%-20s %-34s %-22s\n", "", "min / median / max", "min / median / max")
	for _, name := range []string{"graceful (SIGTERM)", "crash (SIGKILL)"} {
		var secs, missed []float64
		for _, tl := range results[name] {
			secs = append(secs, tl.toSign().Seconds())
			missed = append(missed, float64(tl.missed))
		}
		fmt.Printf("%-20s %-34s %-22s\n", name, stats(secs, "%.2f"), stats(missed, "%.0f"))
	}
	fmt.Printf("valguard while Validating: RSS %.1f MB, CPU %.2f%% of a core (over %s)\n", env.idle.rssMB, env.idle.cpuPct, env.idle.window)
	return env.checkSafety(ctx)
}

func stats(v []float64, format string) string {
	sort.Float64s(v)
	f := func(x float64) string { return fmt.Sprintf(format, x) }
	return f(v[0]) + " / " + f(v[len(v)/2]) + " / " + f(v[len(v)-1])
}

func short(addr string) string {
	if len(addr) > 8 {
		return addr[:8] + "…"
	}
	return addr
}
