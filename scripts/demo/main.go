// Command demo runs valguard's local demo and benchmark: a Consul agent, a
// 4-validator CometBFT localnet whose validator 3 is held by two valguard
// replicas, then failovers with a printed timeline (the demo) or, with
// --bench, the same failovers repeated in the restart mode, then in the
// signer mode's leader policy, then in its leaderless policy (--signers
// any) on the same network and Consul, printed side by side. The demo
// shows a key-file-mode leader's crash, then a replica's crash under
// --signers any. --latency-sweep adds delay on the replicas' Consul path
// and counts what each signer policy signs. For `make demo` and
// `make bench`; not needed in production.
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
	sweep := flag.Bool("latency-sweep", false, "run the Consul latency sweep instead: each signer policy (leader, any) with 0, 50, 100, 200, 300 ms added one way on every replica's Consul path")
	sweepWindow := flag.Duration("sweep-window", 30*time.Second, "with --latency-sweep: how long each delay is measured under each policy")
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
	if *bench && *sweep {
		fmt.Fprintln(os.Stderr, "demo: --bench and --latency-sweep are separate runs")
		os.Exit(2)
	}
	mode := modeDemo
	switch {
	case *bench:
		mode = modeBench
	case *sweep:
		mode = modeSweep
	}
	err := run(ctx, *valguard, mode, *runs, *sweepWindow, *keep, localnet.Wiring(*wiring), *consulServers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// What a run of the command does.
const (
	modeDemo  = "demo"
	modeBench = "bench"
	modeSweep = "sweep"
)

func run(ctx context.Context, valguard, mode string, runs int, sweepWindow time.Duration, keep bool, wiring localnet.Wiring, consulServers int) error {
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
	switch mode {
	case modeBench:
		return runBench(ctx, env, runs)
	case modeSweep:
		return runSweep(ctx, env, sweepWindow)
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
	if _, err := env.checkSafety(ctx); err != nil {
		return err
	}
	if _, err := env.demoAny(ctx, tl); err != nil {
		return err
	}
	_, err = env.checkSafety(ctx)
	return err
}

func short(addr string) string {
	if len(addr) > 8 {
		return addr[:8] + "…"
	}
	return addr
}
