package chaos

import (
	"context"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// timeline records, every 500 ms, the chain's height and each replica's
// state, and the faults where they were injected: what the SVG draws.
type timeline struct {
	rig     *Rig
	mu      sync.Mutex
	samples []sample
	faults  []*Fault
}

type sample struct {
	at     time.Time
	height int64
	states []string
}

func newTimeline(rig *Rig) *timeline { return &timeline{rig: rig} }

func (t *timeline) sample(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		h, err := t.rig.chain.height(ctx)
		if err == nil {
			s := sample{at: time.Now(), height: h}
			for _, r := range t.rig.Replicas {
				st := r.State()
				if st == "" {
					st = "down"
				}
				s.states = append(s.states, st)
			}
			t.mu.Lock()
			t.samples = append(t.samples, s)
			t.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *timeline) mark(f *Fault) {
	t.mu.Lock()
	t.faults = append(t.faults, f)
	t.mu.Unlock()
}

// HeightRange is the first and last height the timeline saw.
func (d *Drill) HeightRange() [2]int64 {
	if d.tl == nil {
		return [2]int64{}
	}
	d.tl.mu.Lock()
	defer d.tl.mu.Unlock()
	if len(d.tl.samples) == 0 {
		return [2]int64{}
	}
	return [2]int64{d.tl.samples[0].height, d.tl.samples[len(d.tl.samples)-1].height}
}

var stateColor = map[string]string{
	"Validating": "#2e9d49", "Voting": "#4a7fd4", "Registering": "#9fb8e6", "Syncing": "#f0b43c",
	"Startup": "#f5d58a", "Shutdown": "#b07acc", "down": "#d0d0d0",
}

// WriteSVG draws the timeline: heights across; one lane per replica with
// its state (colour) and the heights the validator signed while it led
// (ticks; in the signer mode from its own signing log), a lane for the
// heights the validator missed, and each fault marked at the height it was
// injected.
func (d *Drill) WriteSVG(ctx context.Context, w io.Writer) error {
	t := d.tl
	t.mu.Lock()
	samples := append([]sample(nil), t.samples...)
	faults := append([]*Fault(nil), t.faults...)
	t.mu.Unlock()
	if len(samples) == 0 {
		return fmt.Errorf("no samples")
	}
	h0, h1 := samples[0].height, samples[len(samples)-1].height
	if h1 <= h0 {
		h1 = h0 + 1
	}
	// State per replica per height: the last sample at that height.
	n := len(d.rig.Replicas)
	stateAt := make([]map[int64]string, n)
	for i := range stateAt {
		stateAt[i] = map[int64]string{}
	}
	for _, s := range samples {
		for i, st := range s.states {
			stateAt[i][s.height] = st
		}
	}
	signed, err := d.rig.chain.signed(ctx, h0, h1)
	if err != nil {
		return err
	}
	signedSet := map[int64]bool{}
	for _, h := range signed {
		signedSet[h] = true
	}
	// Who signed: the signer mode's logs say; otherwise the replica that
	// was Validating when the height was current.
	who := map[int64]int{}
	if signerMode(d.cfg.Mode) {
		logs := map[string]string{}
		idx := map[string]int{}
		for i, r := range d.rig.Replicas {
			logs[r.ID], idx[r.ID] = r.Log, i
		}
		for _, e := range localnet.SignEvents(logs) {
			if e.Result == "signed" { // a re-serve is not a new signature
				who[e.HRS[0]] = idx[e.Replica]
			}
		}
	} else {
		for h := range signedSet {
			for i := range n {
				if stateAt[i][h] == "Validating" {
					who[h] = i
				}
			}
		}
	}
	const left, laneH, gap, top = 90.0, 26.0, 14.0, 70.0
	scale := min(6.0, max(0.4, 1800.0/float64(h1-h0)))
	x := func(h int64) float64 { return left + float64(h-h0)*scale }
	width := max(x(h1)+40, 900)
	height := top + float64(n+1)*(laneH+gap) + 130
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="16" font-size="13" font-weight="bold">valguard fault drill — %s mode, seed %d, %d faults, heights %d–%d</text>`+"\n", d.cfg.Mode, d.cfg.Seed, len(faults), h0, h1)
	lx := 10.0
	for _, st := range []string{"Validating", "Voting", "Registering", "Syncing", "Startup", "Shutdown", "down"} {
		fmt.Fprintf(&b, `<rect x="%.0f" y="24" width="12" height="10" fill="%s"/><text x="%.0f" y="33">%s</text>`+"\n", lx, stateColor[st], lx+15, st)
		lx += 24 + 7.5*float64(len(st))
	}
	fmt.Fprintf(&b, `<line x1="%.0f" y1="26" x2="%.0f" y2="34" stroke="black"/><text x="%.0f" y="33">signed by this replica</text>`+"\n", lx, lx, lx+4)
	lx += 140
	fmt.Fprintf(&b, `<line x1="%.0f" y1="26" x2="%.0f" y2="34" stroke="#d33"/><text x="%.0f" y="33">missed by the validator</text>`+"\n", lx, lx, lx+4)
	for i, r := range d.rig.Replicas {
		y := top + float64(i)*(laneH+gap)
		fmt.Fprintf(&b, `<text x="10" y="%.0f">replica %s</text>`+"\n", y+laneH/2+4, r.ID)
		// State bands: runs of one state.
		start, cur := h0, stateAt[i][h0]
		flush := func(end int64) {
			c, ok := stateColor[cur]
			if !ok {
				c = "#eeeeee"
			}
			fmt.Fprintf(&b, `<rect x="%.2f" y="%.0f" width="%.2f" height="%.0f" fill="%s"><title>%s %d–%d</title></rect>`+"\n",
				x(start), y, max(x(end+1)-x(start), 0.5), laneH*0.6, c, html.EscapeString(cur), start, end)
		}
		for h := h0 + 1; h <= h1; h++ {
			st, ok := stateAt[i][h]
			if !ok {
				st = cur
			}
			stateAt[i][h] = st
			if st != cur {
				flush(h - 1)
				start, cur = h, st
			}
		}
		flush(h1)
		var ticks []int64
		for h, j := range who {
			if j == i && signedSet[h] {
				ticks = append(ticks, h)
			}
		}
		sort.Slice(ticks, func(a, c int) bool { return ticks[a] < ticks[c] })
		for _, h := range ticks {
			fmt.Fprintf(&b, `<line x1="%.2f" y1="%.0f" x2="%.2f" y2="%.0f" stroke="black" stroke-width="%.2f"/>`+"\n",
				x(h)+scale/2, y+laneH*0.65, x(h)+scale/2, y+laneH, max(scale*0.6, 0.3))
		}
	}
	y := top + float64(n)*(laneH+gap)
	fmt.Fprintf(&b, `<text x="10" y="%.0f">missed</text>`+"\n", y+laneH/2+4)
	for h := h0; h <= h1; h++ {
		if !signedSet[h] {
			fmt.Fprintf(&b, `<line x1="%.2f" y1="%.0f" x2="%.2f" y2="%.0f" stroke="#d33" stroke-width="%.2f"><title>%d</title></line>`+"\n",
				x(h)+scale/2, y, x(h)+scale/2, y+laneH*0.6, max(scale*0.6, 0.3), h)
		}
	}
	bottom := y + laneH + 4
	for _, f := range faults {
		fx := x(f.Height)
		color := "#555"
		if len(f.Findings) > 0 || f.OverBound {
			color = "#d33"
		}
		fmt.Fprintf(&b, `<line x1="%.2f" y1="%.0f" x2="%.2f" y2="%.0f" stroke="%s" stroke-dasharray="3,2"><title>fault %d: %s on %s at height %d; first signature %d after %.1f s, %d missed</title></line>`+"\n",
			fx, top-8, fx, bottom, color, f.N, html.EscapeString(f.Kind), f.TargetID, f.Height, f.FirstSigned, f.ToSign, f.Missed)
		fmt.Fprintf(&b, `<text x="%.2f" y="%.0f" fill="%s" font-size="9" transform="rotate(45 %.2f %.0f)">%d %s</text>`+"\n",
			fx, bottom+8, color, fx, bottom+8, f.N, html.EscapeString(f.Kind))
	}
	for h := h0 - h0%100 + 100; h <= h1; h += 100 {
		fmt.Fprintf(&b, `<text x="%.2f" y="%.0f" fill="#888" font-size="9">%d</text>`+"\n", x(h), top-14, h)
	}
	b.WriteString("</svg>\n")
	_, err = io.WriteString(w, b.String())
	return err
}
