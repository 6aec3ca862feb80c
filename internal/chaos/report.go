package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Stats are min, median, 95th percentile and max of a sample.
type Stats struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
}

func stats(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	q := func(p float64) float64 {
		// nearest rank
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Stats{Min: s[0], Median: q(0.5), P95: q(0.95), Max: s[len(s)-1]}
}

// KindRow is the report's line for one fault kind.
type KindRow struct {
	Kind        string  `json:"kind"`
	What        string  `json:"what"`
	Count       int     `json:"count"`
	DoubleSigns int     `json:"double_signs"`
	Missed      Stats   `json:"missed_heights"`
	ToSign      Stats   `json:"to_first_signature_s"`
	Back        Stats   `json:"replicas_back_s"`
	Bound       float64 `json:"bound_s"`
	OverBound   int     `json:"over_bound"`
	NoFailover  int     `json:"failovers_missing"`
	// Errors counts faults whose action failed or was refused (a
	// hand-over refused, say); the drill goes on.
	Errors int `json:"errors"`
}

// Report is what a drill writes as JSON.
type Report struct {
	Mode      string    `json:"mode"`
	Seed      uint64    `json:"seed"`
	Replicas  int       `json:"replicas"`
	Faults    int       `json:"faults_asked"`
	Injected  int       `json:"faults_injected"`
	Started   time.Time `json:"started"`
	Duration  float64   `json:"duration_s"`
	Heights   [2]int64  `json:"heights"`
	Result    string    `json:"result"` // "pass" or the error
	Findings  []string  `json:"findings,omitempty"`
	Kinds     []KindRow `json:"kinds"`
	FaultList []*Fault  `json:"faults"`
	Replay    string    `json:"replay"`
	// Runs are the replay lines and results of the runs a merged report
	// (MergeReports) was made of.
	Runs []string `json:"runs,omitempty"`
}

// NewReport builds the per-kind table from the faults.
func NewReport(mode string, seed uint64, asked, replicas int, faults []*Fault) *Report {
	r := &Report{Mode: mode, Seed: seed, Replicas: replicas, Faults: asked, Injected: len(faults), FaultList: faults,
		Replay: fmt.Sprintf("make chaos MODE=%s FAULTS=%d SEED=%d", mode, asked, seed)}
	if replicas != 0 && replicas != 2 {
		r.Replay += fmt.Sprintf(" CHAOS_ARGS='--replicas %d'", replicas)
	}
	by := map[string][]*Fault{}
	for _, f := range faults {
		by[f.Kind] = append(by[f.Kind], f)
	}
	for _, k := range Kinds {
		fs := by[k.Name]
		if len(fs) == 0 {
			continue
		}
		row := KindRow{Kind: k.Name, What: k.What, Count: len(fs), Bound: k.Bound(mode).Seconds()}
		var missed, toSign, back []float64
		for _, f := range fs {
			if len(f.Findings) > 0 {
				row.DoubleSigns++
			}
			if f.OverBound {
				row.OverBound++
			}
			if f.NoFailover {
				row.NoFailover++
			}
			if f.Err != "" {
				row.Errors++
			}
			if f.FirstSigned > 0 {
				missed = append(missed, float64(f.Missed))
				toSign = append(toSign, f.ToSign)
			}
			if f.Recovered > 0 {
				back = append(back, f.Recovered)
			}
		}
		row.Missed, row.ToSign, row.Back = stats(missed), stats(toSign), stats(back)
		r.Kinds = append(r.Kinds, row)
	}
	return r
}

// WriteTable prints the table an operator reads.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "mode %s, seed %d, %d of %d faults, %.0f s, heights %d..%d: %s\n", r.Mode, r.Seed, r.Injected, r.Faults, r.Duration, r.Heights[0], r.Heights[1], r.Result)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault kind\tcount\tdouble-signs\tmissed heights min/med/p95/max\tto first signature (s) min/med/p95/max\tbound (s)\tover bound\tfailovers missing\treplicas back (s) med/max\terrors\t")
	for _, k := range r.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.0f\t%d\t%d\t%.0f/%.0f\t%d\t\n", k.Kind, k.Count, k.DoubleSigns,
			fmtStats(k.Missed, "%.0f"), fmtStats(k.ToSign, "%.1f"), k.Bound, k.OverBound, k.NoFailover, k.Back.Median, k.Back.Max, k.Errors)
	}
	tw.Flush()
	fmt.Fprintf(w, "replay: %s\n", r.Replay)
	for _, run := range r.Runs {
		fmt.Fprintf(w, "  %s\n", run)
	}
}

// Markdown is the table as a Markdown table (docs/results.md).
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("| fault kind | count | double-signs | missed heights min / med / p95 / max | to first signature (s) min / med / p95 / max | bound (s) | over bound | failovers missing | replicas back (s) med / max | refused |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %.0f | %d | %d | %.0f / %.0f | %d |\n", k.Kind, k.Count, k.DoubleSigns,
			strings.ReplaceAll(fmtStats(k.Missed, "%.0f"), "/", " / "), strings.ReplaceAll(fmtStats(k.ToSign, "%.1f"), "/", " / "), k.Bound, k.OverBound, k.NoFailover, k.Back.Median, k.Back.Max, k.Errors)
	}
	return b.String()
}

func fmtStats(s Stats, f string) string {
	return fmt.Sprintf(f+"/"+f+"/"+f+"/"+f, s.Min, s.Median, s.P95, s.Max)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// cutByStop is the error of a fault that the signal stopping a run cut
// short.
const cutByStop = "context canceled"

// Complete is the report without the fault, if any, that the signal
// stopping its run cut short (its last, if not measured): a run
// stopped on purpose counts the faults it injected and checked. Its Result
// says so.
func (r *Report) Complete() *Report {
	fs := r.FaultList
	n := len(fs)
	if !strings.Contains(r.Result, cutByStop) {
		return r
	}
	// The fault in progress at the stop was never measured (a finished
	// one always has its first signature).
	cut := n > 0 && fs[n-1].FirstSigned == 0
	if cut {
		fs = fs[:n-1]
	}
	c := NewReport(r.Mode, r.Seed, r.Faults, r.Replicas, fs)
	c.Started, c.Duration, c.Heights, c.Findings, c.Runs = r.Started, r.Duration, r.Heights, r.Findings, r.Runs
	c.Result = fmt.Sprintf("stopped on purpose after %d checked faults of %d", len(fs), r.Faults)
	return c
}

// MergeReports makes one table of several runs of one mode (a long
// schedule run in parts): the faults of all, the sums of their sizes and
// durations, each run's replay line and result in Runs. Its Result is
// "pass" only when every run passed.
func MergeReports(reps ...*Report) (*Report, error) {
	if len(reps) == 0 {
		return nil, fmt.Errorf("no report to merge")
	}
	var faults []*Fault
	var runs, failed, findings []string
	asked, replicas := 0, 0
	var dur float64
	heights := 0
	for _, r := range reps {
		r = r.Complete()
		if r.Mode != reps[0].Mode {
			return nil, fmt.Errorf("reports of the %s and the %s mode cannot be merged", reps[0].Mode, r.Mode)
		}
		faults = append(faults, r.FaultList...)
		asked += r.Faults
		dur += r.Duration
		heights += int(r.Heights[1] - r.Heights[0])
		replicas = max(replicas, r.Replicas)
		runs = append(runs, fmt.Sprintf("%s (%d replicas, %d of %d faults, %.0f s): %s", r.Replay, r.Replicas, r.Injected, r.Faults, r.Duration, r.Result))
		if r.Result != "pass" && !strings.HasPrefix(r.Result, "stopped on purpose") {
			failed = append(failed, r.Replay)
		}
		findings = append(findings, r.Findings...)
	}
	m := NewReport(reps[0].Mode, 0, asked, replicas, faults)
	m.Duration, m.Runs, m.Heights = dur, runs, [2]int64{0, int64(heights)}
	m.Replay = fmt.Sprintf("%d runs, see runs", len(reps))
	m.Result = "pass"
	if len(failed) > 0 {
		m.Result = "failed: " + strings.Join(failed, "; ")
	}
	m.Findings = findings
	return m, nil
}

// WriteJSON writes the report to path (whole or not at all: a reader
// during a run sees the last complete one).
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLinesN(string(data), n)
}

func lastLinesN(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// KindsMarkdown lists the fault kinds: what each does and its bound per
// mode ("—" where it does not apply).
func KindsMarkdown() string {
	var b strings.Builder
	b.WriteString("| fault kind | what | bound (s), restart / signer / near / any |\n|---|---|---|\n")
	for _, k := range Kinds {
		var bs []string
		for _, m := range all {
			if contains(k.Modes, m) {
				bs = append(bs, fmt.Sprintf("%.0f", k.Bound(m).Seconds()))
			} else {
				bs = append(bs, "—")
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", k.Name, k.What, strings.Join(bs, " / "))
	}
	return b.String()
}
