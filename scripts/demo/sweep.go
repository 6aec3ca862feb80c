package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/valguard/valguard/internal/chaos"
	"github.com/valguard/valguard/internal/localnet"
)

// sweepDelays are the one-way delays the latency sweep adds on every
// replica's Consul path.
var sweepDelays = []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}

// sweepSettle is how long each delay is in force before its window starts.
const sweepSettle = 2 * time.Second

// sweepRow is one delay under one signer policy.
type sweepRow struct {
	policy     string // "leader" or "any"
	delay      time.Duration
	rate       blockRate
	signed     int
	fence      []float64
	results    map[string]int
	states     string // the replicas' states at the window's end
	recoverErr error  // the replicas did not come back after the delay was lifted
}

// runSweep puts a TCP proxy (internal/chaos) in front of each replica's
// Consul address, restarts the replicas in the signer mode through them,
// and, for each signer policy (the leader's, then --signers any), adds
// each of sweepDelays in turn to every proxy for window, counting the
// heights the validator signed and missed and the block rate. Between two
// delays the proxies pass unchanged until the replicas are back as the
// policy wants them and the validator signs.
func runSweep(ctx context.Context, e *demoEnv, window time.Duration) error {
	var proxies []*chaos.Proxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	for i, r := range e.replicas {
		p, err := chaos.NewProxy("127.0.0.1:0", []string{e.consulAddr(i)})
		if err != nil {
			return err
		}
		proxies = append(proxies, p)
		for j := range r.args {
			if r.args[j] == "--consul-url" && j+1 < len(r.args) {
				r.args[j+1] = "http://" + p.Addr()
			}
		}
		e.say("replica %s: Consul %s through the proxy %s", r.id, e.consulAddr(i), p.Addr())
	}
	degrade := func(d time.Duration) {
		for _, p := range proxies {
			if d == 0 {
				p.Pass()
			} else {
				p.Degrade(d, 0)
			}
		}
	}
	began := time.Now()
	var rows []sweepRow
	for _, policy := range []struct {
		name string
		mode []string
	}{{"leader", signerMode}, {"any", anyMode}} {
		if err := e.switchMode(ctx, policy.mode); err != nil {
			return err
		}
		for _, d := range sweepDelays {
			if err := e.sweepReady(ctx, policy.name); err != nil {
				if len(rows) > 0 && rows[len(rows)-1].policy == policy.name {
					rows[len(rows)-1].recoverErr = err
				}
				printSweep(os.Stdout, e.consulKind(), window, rows)
				return err
			}
			degrade(d)
			row, err := e.sweepWindow(ctx, policy.name, d, window)
			degrade(0)
			if err != nil {
				return err
			}
			e.say("sweep, signers %s, +%s one way: the validator signed %d of %d heights, missed %d; %.3f blocks/s; %s; %s",
				policy.name, d, row.signed, row.rate.to-row.rate.from, row.rate.missed, row.rate.perSecond(), resultsCell(row.results), row.states)
			rows = append(rows, row)
		}
	}
	if _, err := e.checkSafety(ctx); err != nil {
		return err
	}
	fmt.Println()
	printSweep(os.Stdout, e.consulKind(), window, rows)
	fmt.Printf("\nthe sweep took %s (set-up included: %s)\n", time.Since(began).Round(time.Second), time.Since(e.start).Round(time.Second))
	return nil
}

// sweepReady waits until the replicas are as the policy wants them (a
// leader and a standby, or both Validating) and the validator signs.
func (e *demoEnv) sweepReady(ctx context.Context, policy string) error {
	if policy == "any" {
		if err := e.bothValidating(ctx, 2*time.Minute); err != nil {
			return err
		}
	} else if _, _, err := e.leaderAndStandby(ctx); err != nil {
		return err
	}
	h0, err := localnet.Height(ctx, e.rpc)
	if err != nil {
		return err
	}
	_, err = e.firstSigned(ctx, h0, time.Minute)
	return err
}

// sweepWindow measures one delay: after sweepSettle, the heights made
// during window, which of them the validator signed, the block rate by
// header times, the sign requests by result and the signed ones' fence.
func (e *demoEnv) sweepWindow(ctx context.Context, policy string, d, window time.Duration) (sweepRow, error) {
	row := sweepRow{policy: policy, delay: d}
	select {
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(sweepSettle):
	}
	c, err := rpchttp.New(e.rpc, "/websocket")
	if err != nil {
		return row, err
	}
	t0 := time.Now()
	if row.rate.from, err = localnet.Height(ctx, e.rpc); err != nil {
		return row, err
	}
	select {
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(window):
	}
	t1 := time.Now()
	if row.rate.to, err = localnet.Height(ctx, e.rpc); err != nil {
		return row, err
	}
	var states []string
	for _, r := range e.replicas {
		states = append(states, r.id+" "+orDash(r.state()))
	}
	row.states = strings.Join(states, ", ")
	if row.rate.to > row.rate.from {
		var at [2]time.Time
		for i, h := range []int64{row.rate.from, row.rate.to} {
			blk, err := c.Block(ctx, &h)
			if err != nil {
				return row, err
			}
			at[i] = blk.Block.Time
		}
		row.rate.span = at[1].Sub(at[0])
		if err := localnet.WaitHeight(ctx, e.rpc, row.rate.to+1); err != nil { // the commit of to is final
			return row, err
		}
		signed, missed, err := localnet.Signers(ctx, e.rpc, row.rate.from+1, row.rate.to, e.net.HAAddress)
		if err != nil {
			return row, err
		}
		row.signed, row.rate.missed = len(signed), len(missed)
	}
	row.results = signResults(e.logPaths(), t0, t1)
	row.fence, _ = signLatencies(e.logPaths(), t0, t1)
	return row, nil
}

func orDash(s string) string {
	if s == "" {
		return noFigure
	}
	return s
}

// printSweep writes the sweep as a Markdown table, one row per policy and
// delay.
func printSweep(w io.Writer, consul string, window time.Duration, rows []sweepRow) {
	fmt.Fprintf(w, "latency sweep: one-way delay added on every replica's Consul path (a TCP proxy, both directions), %s per delay and signer policy, Consul: %s\n\n", window, consul)
	fmt.Fprintln(w, "| signer policy | one-way delay | heights in the window | validator signed | missed | blocks/s | fence (ms) p50 / p99, signed requests | sign requests by result | replicas at the window's end |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fence := noFigure
		if len(r.fence) > 0 {
			fence = fmt.Sprintf("%.1f / %.1f (%d)", percentile(r.fence, 50), percentile(r.fence, 99), len(r.fence))
		}
		states := r.states
		if r.recoverErr != nil {
			states += "; not back after the delay was lifted: " + r.recoverErr.Error()
		}
		fmt.Fprintf(w, "| %s | %d ms | %d..%d (%d) | %d | %d | %.3f | %s | %s | %s |\n",
			r.policy, r.delay.Milliseconds(), r.rate.from+1, r.rate.to, r.rate.to-r.rate.from, r.signed, r.rate.missed,
			r.rate.perSecond(), fence, resultsCell(r.results), states)
	}
}
