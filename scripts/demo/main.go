// Command demo runs valguard's local demo and benchmark: a Consul agent, a
// 4-validator CometBFT localnet whose validator 3 is held by two valguard
// replicas, then failovers with a printed timeline (the demo) or, with
// --bench, the same failovers repeated in the restart mode and then in the
// signer mode on the same network and Consul, printed side by side. For
// `make demo` and `make bench`; not needed in production.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

func main() {
	valguard := flag.String("valguard", "bin/valguard", "the valguard binary")
	bench := flag.Bool("bench", false, "run the benchmark instead of the single demo failover")
	runs := flag.Int("runs", 5, "benchmark runs of each kind")
	keep := flag.Bool("keep", false, "keep the working directory (logs) afterwards")
	consulServers := flag.Int("consul-servers", 1, "1: a Consul dev agent; 3 or 5: a cluster of that many servers, each replica talking to its own")
	wiring := flag.String("wiring", string(localnet.WiringDialOut), "dial-out (only the replicas dial the validators, as in production) or mesh (the validators dial the replicas too)")
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "demo: --runs must be at least 1")
		os.Exit(2)
	}
	if *consulServers < 1 {
		fmt.Fprintln(os.Stderr, "demo: --consul-servers must be at least 1")
		os.Exit(2)
	}
	if w := localnet.Wiring(*wiring); w != localnet.WiringDialOut && w != localnet.WiringMesh {
		fmt.Fprintf(os.Stderr, "demo: --wiring %q, want %s or %s\n", *wiring, localnet.WiringDialOut, localnet.WiringMesh)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *valguard, *bench, *runs, *keep, localnet.Wiring(*wiring), *consulServers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, valguard string, bench bool, runs int, keep bool, wiring localnet.Wiring, consulServers int) error {
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
	env, err := setUp(ctx, dir, bin, wiring, consulServers)
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
	_, err = env.checkSafety(ctx)
	return err
}

func short(addr string) string {
	if len(addr) > 8 {
		return addr[:8] + "…"
	}
	return addr
}
