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

// hxName is the Horcrux column's modeResult name.
const hxName = "horcrux"

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
	return signLatencies(paths, since, time.Time{})
}

// signLatencies is fenceLatencies over the events logged in (since,
// until]; a zero until is no bound.
func signLatencies(paths []string, since, until time.Time) (fence, reply []float64) {
	for _, path := range paths {
		for _, ev := range localnet.ValguardEvents(path) {
			if ev["message"] != "sign request" || ev["result"] != "signed" {
				continue
			}
			s, _ := ev["time"].(string)
			if at, err := time.Parse(time.RFC3339Nano, s); err != nil || !at.After(since) || (!until.IsZero() && at.After(until)) {
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

// printBench writes the columns side by side as a Markdown table: the
// restart mode, the signer mode's leader policy, its leaderless policy
// (--signers any) and, if hx is not nil, Horcrux.
func printBench(w io.Writer, wiring localnet.Wiring, consul string, runs int, restart, signer, anyRes modeResult, hx *modeResult) {
	modes := []modeResult{restart, signer, anyRes}
	if hx != nil {
		modes = append(modes, *hx)
	}
	row := func(what string, cells ...string) {
		fmt.Fprintf(w, "| %s | %s |\n", what, strings.Join(cells, " | "))
	}
	each := func(f func(modeResult) string) []string {
		var out []string
		for _, m := range modes {
			out = append(out, f(m))
		}
		return out
	}
	head := []string{"restart mode (key file linked, node restarted)", "signer mode (remote signer, every signature fenced)",
		"signer mode, --signers any (every replica signs; a check-and-set decides)"}
	if hx != nil {
		fmt.Fprintf(w, "bench: %d runs of each kind, wiring %s, one localnet and one Consul (%s) for valguard's three columns; Horcrux on a localnet of its own (the same 4 validators and powers) after them, in the same run\n\n", runs, wiring, consul)
		head = append(head, horcruxColumn)
	} else {
		fmt.Fprintf(w, "bench: %d runs of each kind, wiring %s, one localnet and one Consul (%s) for the three columns\n\n", runs, wiring, consul)
	}
	row(fmt.Sprintf("%d runs each, wiring %s", runs, wiring), head...)
	row("---", each(func(modeResult) string { return "---" })...)
	for _, kind := range []string{kindGraceful, kindHandover, kindCrash, kindDepose, kindAnyCrash, kindNodeCrash} {
		var toSign, missed []string
		for _, m := range modes {
			s, ms := failoverCells(m.runs[kind])
			toSign, missed = append(toSign, s), append(missed, ms)
		}
		start := "kill"
		if kind == kindHandover {
			start = "request"
		}
		row(kind+": "+start+" → first signature (s), min / median / max", toSign...)
		row(kind+": missed heights, min / median / max", missed...)
	}
	row("fence (ms), p50 / p99 / max, from the leaders' sign-request logs", each(func(m modeResult) string { return latencyCell(m.fence) })...)
	row("sign request → reply (ms), p50 / p99 / max, requests never parked", each(func(m modeResult) string { return latencyCell(m.reply) })...)
	row("sign requests by result over the mode", each(func(m modeResult) string { return resultsCell(m.results) })...)
	rate := func(m modeResult) string {
		r := m.rate
		if r.to == 0 {
			return noFigure
		}
		return fmt.Sprintf("%.3f (heights %d..%d in %.1f s, %d missed)", r.perSecond(), r.from, r.to, r.span.Seconds(), r.missed)
	}
	row(fmt.Sprintf("blocks/s over %.0f s while the validator signs", rateWindow.Seconds()), each(rate)...)
	ratio := func(m modeResult) string {
		if m.name == restart.name || m.name == hxName || restart.rate.perSecond() <= 0 || m.rate.to == 0 {
			return noFigure
		}
		return fmt.Sprintf("%.3f", m.rate.perSecond()/restart.rate.perSecond())
	}
	row("block rate, signer mode / restart mode", each(ratio)...)
	res := func(m modeResult) string {
		if m.idle.window == 0 {
			return noFigure
		}
		if m.name == hxName {
			return fmt.Sprintf("leading cosigner: %.1f MB RSS, %.2f %% of a core over %s", m.idle.rssMB, m.idle.cpuPct, m.idle.window)
		}
		return fmt.Sprintf("%.1f MB RSS, %.2f %% of a core over %s", m.idle.rssMB, m.idle.cpuPct, m.idle.window)
	}
	row("valguard while leading (--signers any: replica a, signing)", each(res)...)
	row("safety at the end of the mode", each(func(m modeResult) string {
		if m.safety.height == 0 {
			return noFigure
		}
		return m.safety.String()
	})...)
	for _, m := range modes {
		if n := len(m.runs[kindDepose]); n > 0 {
			var at []float64
			for _, tl := range m.runs[kindDepose] {
				at = append(at, tl.deposedAt.Sub(tl.killAt).Seconds())
			}
			fmt.Fprintf(w, "\n%s mode, deposition runs: the standby deposed the leader at kill + %s s (min / median / max, %d of %d runs)\n",
				m.name, stats(at, "%.2f"), n, n)
		}
	}
	var back []string
	for _, kind := range []string{kindGraceful, kindAnyCrash, kindNodeCrash} {
		var secs []float64
		for _, tl := range anyRes.runs[kind] {
			if !tl.backAt.IsZero() {
				secs = append(secs, tl.backAt.Sub(tl.killAt).Seconds())
			}
		}
		if len(secs) > 0 {
			back = append(back, fmt.Sprintf("%s %s s", strings.SplitN(kind, " (", 2)[0], stats(secs, "%.1f")))
		}
	}
	if len(back) > 0 {
		fmt.Fprintf(w, "\n--signers any, the killed replica Validating again (started again at once after a valguard kill), kill + min / median / max: %s\n", strings.Join(back, "; "))
	}
	fmt.Fprintln(w, "\n"+strings.TrimSpace(`
kill: the signal to the leader's valguard (SIGKILL: its node dies with it); first signature: the
timestamp of the validator's first commit signature above the height at the kill; missed heights:
heights from the kill to that signature the validator did not sign. Hand-over: the same from the
start of valguard handover --to <standby> (no valguard stopped; the runs alternate direction) to
the new leader's first commit signature. --signers any: the signal goes to one replica's valguard
(or node), alternating a and b; the other replica signs throughout, so there is no takeover;
missed heights are counted over the `+fmt.Sprint(anyWindow)+` heights after the kill (further if the first signature
comes later); fence and reply are over both replicas' logs, "signed" requests (races won) only.`))
	if hx != nil {
		fmt.Fprintln(w, "\n"+strings.TrimSpace(`
Horcrux column (the rows name valguard's events; Horcrux's counterparts): graceful is SIGTERM of
the leading cosigner (the raft leader), crash is its SIGKILL (no lease: raft elects another; the
"lease only" row), hand-over is horcrux elect <next id> (from its start), node crash is SIGKILL of
one of the two sentries (alternating; the bench starts it again). After each kill the victim is
started again and the set-up waited for until healthy. Missed heights are counted over the
`+fmt.Sprint(anyWindow)+` heights after the kill or request, as for --signers any. Sign request → reply is the
duration_ms of Horcrux's "Signed" log lines (the threshold signature, timed by the cosigner that
made it) over the RSS and block-rate windows, before the first kill; Horcrux has no fence. The
first signature is read from the commits of its own localnet.`))
	}
}
