package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// noFigure stands in a table cell for a figure the mode does not have.
const noFigure = "—"

// stats is "min / median / max" of v (the upper median for an even
// count), noFigure if v is empty. v is not modified.
func stats(v []float64, format string) string {
	if len(v) == 0 {
		return noFigure
	}
	s := append([]float64{}, v...)
	sort.Float64s(s)
	f := func(x float64) string { return fmt.Sprintf(format, x) }
	return f(s[0]) + " / " + f(s[len(s)/2]) + " / " + f(s[len(s)-1])
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of v,
// NaN if v is empty. v is not modified.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64{}, v...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

// fenceLatencies reads the signer's "sign request" events with result
// "signed" logged after since, from valguard logs, and returns their
// fence_took fields and the took fields of those that were never parked
// (milliseconds, as valguard logs durations): a request parked across a
// takeover and then signed took the takeover's time, not the signer's.
func fenceLatencies(paths []string, since time.Time) (fence, reply []float64) {
	for _, path := range paths {
		for _, ev := range localnet.ValguardEvents(path) {
			if ev["message"] != "sign request" || ev["result"] != "signed" {
				continue
			}
			s, _ := ev["time"].(string)
			if at, err := time.Parse(time.RFC3339Nano, s); err != nil || !at.After(since) {
				continue
			}
			if f, ok := ev["fence_took"].(float64); ok {
				fence = append(fence, f)
			}
			if t, ok := ev["took"].(float64); ok && ev["parked"] == nil {
				reply = append(reply, t)
			}
		}
	}
	return fence, reply
}

// failoverCells are the two cells of a failover kind in a mode: kill →
// first signature (s) and missed heights, each min / median / max.
func failoverCells(tls []timeline) (toSign, missed string) {
	var secs, miss []float64
	for _, tl := range tls {
		secs = append(secs, tl.toSign().Seconds())
		miss = append(miss, float64(tl.missed))
	}
	return stats(secs, "%.2f"), stats(miss, "%.0f")
}

// latencyCell is "p50 / p99 / max ms (n)" of v, noFigure if v is empty.
func latencyCell(v []float64) string {
	if len(v) == 0 {
		return noFigure
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f (%d signatures)", percentile(v, 50), percentile(v, 99), percentile(v, 100), len(v))
}

// printBench writes the two modes side by side as a Markdown table.
func printBench(w io.Writer, wiring localnet.Wiring, consul string, runs int, restart, signer modeResult) {
	row := func(what, a, b string) { fmt.Fprintf(w, "| %s | %s | %s |\n", what, a, b) }
	fmt.Fprintf(w, "bench: %d runs of each kind, wiring %s, one localnet and one Consul (%s) for both modes\n\n", runs, wiring, consul)
	row(fmt.Sprintf("%d runs each, wiring %s", runs, wiring), "restart mode (key file linked, node restarted)", "signer mode (remote signer, every signature fenced)")
	row("---", "---", "---")
	for _, kind := range []string{kindGraceful, kindHandover, kindCrash, kindDepose} {
		rs, rm := failoverCells(restart.runs[kind])
		ss, sm := failoverCells(signer.runs[kind])
		start := "kill"
		if kind == kindHandover {
			start = "request"
		}
		row(kind+": "+start+" → first signature (s), min / median / max", rs, ss)
		row(kind+": missed heights, min / median / max", rm, sm)
	}
	row("fence (ms), p50 / p99 / max, from the leaders' sign-request logs", latencyCell(restart.fence), latencyCell(signer.fence))
	row("sign request → reply (ms), p50 / p99 / max, requests never parked", latencyCell(restart.reply), latencyCell(signer.reply))
	rate := func(r blockRate) string {
		return fmt.Sprintf("%.3f (heights %d..%d in %.1f s, %d missed)", r.perSecond(), r.from, r.to, r.span.Seconds(), r.missed)
	}
	row(fmt.Sprintf("blocks/s over %.0f s while the validator signs", rateWindow.Seconds()), rate(restart.rate), rate(signer.rate))
	ratio := noFigure
	if restart.rate.perSecond() > 0 {
		ratio = fmt.Sprintf("%.3f", signer.rate.perSecond()/restart.rate.perSecond())
	}
	row("block rate, signer mode / restart mode", noFigure, ratio)
	res := func(i idle) string {
		return fmt.Sprintf("%.1f MB RSS, %.2f %% of a core over %s", i.rssMB, i.cpuPct, i.window)
	}
	row("valguard while leading", res(restart.idle), res(signer.idle))
	row("safety at the end of the mode", restart.safety.String(), signer.safety.String())
	for _, m := range []modeResult{restart, signer} {
		if n := len(m.runs[kindDepose]); n > 0 {
			var at []float64
			for _, tl := range m.runs[kindDepose] {
				at = append(at, tl.deposedAt.Sub(tl.killAt).Seconds())
			}
			fmt.Fprintf(w, "\n%s mode, deposition runs: the standby deposed the leader at kill + %s s (min / median / max, %d of %d runs)\n",
				m.name, stats(at, "%.2f"), n, n)
		}
	}
	fmt.Fprintln(w, "\n"+strings.TrimSpace(`
kill: the signal to the leader's valguard (SIGKILL: its node dies with it); first signature: the
timestamp of the validator's first commit signature above the height at the kill; missed heights:
heights from the kill to that signature the validator did not sign. Hand-over: the same from the
start of valguard handover --to <standby> (no valguard stopped; the runs alternate direction) to
the new leader's first commit signature.`))
}
