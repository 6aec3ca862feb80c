package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Config is a drill: a topology and a schedule.
type Config struct {
	RigConfig
	// Faults is how many faults to inject.
	Faults int
	// Seed makes the schedule (kinds, targets, pauses) reproducible.
	Seed uint64
	// Kinds limits the drill to these kind names (nil: every kind that
	// applies to the mode).
	Kinds []string
	// Recovery bounds the wait for a replica set back in shape (one
	// leader, every other replica a standby) and a new signature.
	Recovery time.Duration
}

// Fault is one injected fault and what it cost.
type Fault struct {
	N        int       `json:"n"`
	Kind     string    `json:"kind"`
	Target   *Replica  `json:"-"`
	TargetID string    `json:"target"`
	Leader   string    `json:"leader_before"`
	After    string    `json:"leader_after"`
	At       time.Time `json:"at"`
	Height   int64     `json:"height"` // height at the injection
	// FirstSigned is the height that ended the outage: the first one the
	// validator signed after the last height it missed up to the
	// recovery (sigWatch.back), counted from Height+2 (Height+1 may still
	// carry a signature made before the fault); ToSign is when the drill
	// saw it, from the injection; Missed counts the heights from Height+2
	// to it that the validator did not sign.
	FirstSigned int64   `json:"first_signed"`
	ToSign      float64 `json:"to_first_signature_s"`
	Missed      int     `json:"missed_heights"`
	Bound       float64 `json:"bound_s"`
	OverBound   bool    `json:"over_bound"`
	// NoFailover: a fault that needed a new leader (or the old one back)
	// got no signature within its bound.
	NoFailover bool     `json:"no_failover"`
	Recovered  float64  `json:"recovered_s"`
	Findings   []string `json:"findings,omitempty"`
	Err        string   `json:"error,omitempty"`
	Note       string   `json:"note,omitempty"`
}

// Drill runs a schedule of faults against a Rig.
type Drill struct {
	cfg     Config
	rig     *Rig
	checker *Checker
	rnd     *rand.Rand
	kinds   []Kind
	Faults  []*Fault
	tl      *timeline
	logf    func(format string, args ...any)
}

// ErrDoubleSign is returned by Run when the checker found a double sign.
var ErrDoubleSign = errors.New("double sign")

// NewDrill builds the rig and the checker.
func NewDrill(ctx context.Context, cfg Config) (*Drill, error) {
	if cfg.Recovery == 0 {
		cfg.Recovery = 7 * time.Minute
	}
	d := &Drill{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), logf: cfg.Logf}
	if d.logf == nil {
		d.logf = func(string, ...any) {}
	}
	for _, k := range Kinds {
		if !contains(k.Modes, cfg.Mode) {
			continue
		}
		if cfg.Kinds != nil && !contains(cfg.Kinds, k.Name) {
			continue
		}
		d.kinds = append(d.kinds, k)
	}
	for _, name := range cfg.Kinds {
		if k, ok := KindByName(name); !ok {
			return nil, fmt.Errorf("unknown fault kind %q", name)
		} else if !contains(k.Modes, cfg.Mode) {
			d.logf("fault kind %s does not apply to the %s mode; left out", name, cfg.Mode)
		}
	}
	if len(d.kinds) == 0 {
		return nil, fmt.Errorf("no fault kind applies to the %s mode", cfg.Mode)
	}
	rig, err := NewRig(ctx, cfg.RigConfig)
	if err != nil {
		return nil, err
	}
	d.rig = rig
	if d.checker, err = NewChecker(ctx, rig); err != nil {
		rig.Close()
		return nil, err
	}
	return d, nil
}

// Rig is the drill's topology.
func (d *Drill) Rig() *Rig { return d.rig }

// Close tears the topology down.
func (d *Drill) Close() { d.rig.Close() }

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Run starts the replicas, waits for a leader and a standby, then injects
// cfg.Faults faults, each at a random instant, and after each waits for
// recovery and runs the checker. It returns ErrDoubleSign (wrapped, with
// the findings) as soon as the checker finds anything, and another error
// when the replicas do not recover.
func (d *Drill) Run(ctx context.Context) error {
	d.tl = newTimeline(d.rig)
	tlCtx, stopTL := context.WithCancel(ctx)
	var tlWG sync.WaitGroup
	tlWG.Add(1)
	go func() { defer tlWG.Done(); d.tl.sample(tlCtx) }()
	defer func() { stopTL(); tlWG.Wait() }()

	first := d.rig.Replicas[0]
	if err := first.Start(); err != nil {
		return err
	}
	if err := d.waitState(ctx, first, "Validating", 3*time.Minute); err != nil {
		return err
	}
	for _, r := range d.rig.Replicas[1:] {
		if err := r.Start(); err != nil {
			return err
		}
	}
	if _, err := d.recover(ctx, 3*time.Minute); err != nil {
		return fmt.Errorf("start-up: %w", err)
	}
	start := time.Now()
	// Every kind once, in a shuffled order, then kinds at random.
	order := d.rnd.Perm(len(d.kinds))
	for i := 1; i <= d.cfg.Faults; i++ {
		k := d.kinds[d.rnd.IntN(len(d.kinds))]
		if i <= len(order) {
			k = d.kinds[order[i-1]]
		}
		pause := time.Duration(2000+d.rnd.IntN(8000)) * time.Millisecond
		if err := sleep(ctx, pause); err != nil {
			return err
		}
		f, err := d.inject(ctx, i, k)
		if f != nil {
			d.Faults = append(d.Faults, f)
			d.tl.mark(f)
			d.progress(start)
		}
		if f != nil && len(f.Findings) > 0 {
			return fmt.Errorf("fault %d (%s): %w:\n%s", i, k.Name, ErrDoubleSign, strings.Join(f.Findings, "\n"))
		}
		if err != nil {
			return fmt.Errorf("fault %d (%s): %w", i, k.Name, err)
		}
	}
	return nil
}

// progress writes report.json as it stands after each fault, so that a
// run cut short (a host that goes away) leaves the faults it checked;
// Execute overwrites it at the end.
func (d *Drill) progress(start time.Time) {
	if d.cfg.Dir == "" {
		return
	}
	rep := d.report(start)
	rep.Result = fmt.Sprintf("running: %d of %d faults injected and checked", len(d.Faults), d.cfg.Faults)
	if err := rep.WriteJSON(filepath.Join(d.cfg.Dir, "report.json")); err != nil {
		d.logf("progress report: %v", err)
	}
}

// report is the table of the faults so far, of a run started at start.
func (d *Drill) report(start time.Time) *Report {
	rep := NewReport(d.cfg.Mode, d.cfg.Seed, d.cfg.Faults, d.rig.cfg.Replicas, d.Faults)
	rep.Started, rep.Duration = start, time.Since(start).Seconds()
	rep.Heights = d.HeightRange()
	return rep
}

// inject runs one fault, its recovery, the measurements and the checks.
func (d *Drill) inject(ctx context.Context, n int, k Kind) (*Fault, error) {
	leader := d.leader(ctx)
	if leader == nil {
		return nil, errors.New("no leader before the fault")
	}
	target := leader
	if k.Standby {
		target = d.standby(leader)
		if target == nil {
			return nil, errors.New("no standby before the fault")
		}
	}
	h, err := d.rig.chain.height(ctx)
	if err != nil {
		return nil, err
	}
	bound := k.Bound(d.cfg.Mode)
	f := &Fault{N: n, Kind: k.Name, Target: target, TargetID: target.ID, Leader: leader.ID, At: time.Now(), Height: h, Bound: bound.Seconds()}
	d.logf("fault %d/%d %s: target %s (leader %s) at height %d", n, d.cfg.Faults, k.Name, target.ID, leader.ID, h)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	sw := &sigWatch{}
	go sw.run(wctx, d, h+2)
	if err := k.Run(ctx, d, f); err != nil {
		f.Err = err.Error()
		d.logf("fault %d %s: %v", n, k.Name, err)
	}
	rec, err := d.recover(ctx, d.cfg.Recovery)
	if err != nil {
		// A double sign matters more than a replica set that did not
		// recover: look for one before giving up.
		if findings, cerr := d.checker.Check(ctx, time.Minute); cerr == nil {
			f.Findings = findings
		}
		return f, err
	}
	f.Recovered = rec.Sub(f.At).Seconds()
	if l := d.leader(ctx); l != nil {
		f.After = l.ID
	}
	hRec, err := d.rig.chain.height(ctx)
	if err != nil {
		return f, err
	}
	first, at, missed, ok := sw.back(ctx, hRec, 5*time.Minute)
	if !ok {
		return f, fmt.Errorf("the validator did not sign again within 5m of the recovery at height %d", hRec)
	}
	f.FirstSigned, f.ToSign, f.Missed = first, at.Sub(f.At).Seconds(), missed
	f.OverBound = f.ToSign > bound.Seconds()
	f.NoFailover = k.Failover && f.OverBound
	findings, err := d.checker.Check(ctx, 2*time.Minute)
	f.Findings = findings
	if err != nil {
		return f, fmt.Errorf("checker: %w", err)
	}
	d.logf("fault %d %s: first signature at %d after %.1fs (bound %.0fs), %d missed, recovered after %.1fs, leader %s→%s %s",
		n, k.Name, f.FirstSigned, f.ToSign, bound.Seconds(), f.Missed, f.Recovered, f.Leader, f.After, f.Note)
	return f, nil
}

// FinalCheck runs the checker once more at the end of a drill.
func (d *Drill) FinalCheck(ctx context.Context) ([]string, error) {
	return d.checker.Check(ctx, 2*time.Minute)
}
