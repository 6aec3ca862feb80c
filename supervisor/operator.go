package supervisor

import (
	"math"
	"sync"
	"time"
)

// Operator is what the operator asks of this replica (drain, hand-over),
// as the supervisor sees it: whether it must stay out of the election.
// The supervisor never reads it on the signing path; it acts on it only
// between its own steps.
type Operator interface {
	// Hold is why this replica must stay out of the election now (it is
	// drained, a hand-over to another replica is under way, or it is the
	// leader asked to hand over); "" when it may take part. A leader told
	// to hold steps down through the clean release path.
	Hold() string
	// Changed receives a value whenever Hold may have changed.
	Changed() <-chan struct{}
}

// Snapshot is what a replica reports about itself: its state, its node's
// last status and, while it syncs, its progress. Safe to take from any
// goroutine (Supervisor.Snapshot).
type Snapshot struct {
	State State
	// Since is when State was entered, and Reason why.
	Since  time.Time
	Reason string
	// Node is the last status the node answered with (zero before the
	// first answer); NodeAt is when.
	Node   Status
	NodeAt time.Time
	// Hold is the Operator's last answer ("" without an Operator).
	Hold string
	// LeaseDeadline is the local lease deadline while leading; zero
	// otherwise.
	LeaseDeadline time.Time
	// Progress is set while Syncing, once a rate can be measured.
	Progress *Progress
}

// Progress is a syncing node's progress.
type Progress struct {
	Height int64
	// Best is the best height known: the highest any replica reports
	// (Config.BestHeight), else 0 (unknown).
	Best int64
	// Rate is in blocks per second over the last interval.
	Rate float64
	// ETA is the time left at Rate to reach Best; zero when unknown.
	ETA time.Duration
}

// snapshot keeps the Snapshot under its own mutex.
type snapshot struct {
	mu sync.Mutex
	s  Snapshot
}

func (p *snapshot) update(f func(*Snapshot)) {
	p.mu.Lock()
	f(&p.s)
	p.mu.Unlock()
}

// Snapshot is the replica's current report; safe from any goroutine.
func (s *Supervisor) Snapshot() Snapshot {
	s.snap.mu.Lock()
	out := s.snap.s
	s.snap.mu.Unlock()
	if d, ok := s.LeaseDeadline(); ok {
		out.LeaseDeadline = d
	}
	if out.Progress != nil {
		p := *out.Progress
		out.Progress = &p
	}
	return out
}

// hold asks the Operator whether to stay out of the election, and
// records the answer for the snapshot.
func (s *Supervisor) hold() string {
	if s.cfg.Operator == nil {
		return ""
	}
	h := s.cfg.Operator.Hold()
	s.snap.update(func(sn *Snapshot) { sn.Hold = h })
	return h
}

// operatorChanged is the Operator's Changed channel; nil (never fires)
// without one.
func (s *Supervisor) operatorChanged() <-chan struct{} {
	if s.cfg.Operator == nil {
		return nil
	}
	return s.cfg.Operator.Changed()
}

// progressMeter measures a syncing node's progress between two samples at
// least ProgressInterval apart and logs it.
type progressMeter struct {
	height int64
	at     time.Time
}

// sample takes the node's height h at now; when ProgressInterval has
// passed since the previous sample it logs and records the progress.
func (s *Supervisor) sampleProgress(m *progressMeter, h int64, now time.Time) {
	if m.at.IsZero() {
		m.height, m.at = h, now
		return
	}
	dt := now.Sub(m.at)
	if dt < s.cfg.ProgressInterval {
		return
	}
	p := Progress{Height: h, Rate: float64(h-m.height) / dt.Seconds()}
	if s.cfg.BestHeight != nil {
		p.Best = max(s.cfg.BestHeight(), h)
	}
	if p.Best > h && p.Rate > 0 {
		p.ETA = time.Duration(float64(p.Best-h) / p.Rate * float64(time.Second))
	}
	m.height, m.at = h, now
	s.snap.update(func(sn *Snapshot) { sn.Progress = &p })
	eta := "unknown"
	if p.ETA > 0 {
		eta = p.ETA.Round(time.Second).String()
	}
	s.log.Info().Int64("height", h).Int64("best_height", p.Best).Float64("blocks_per_second", math.Round(p.Rate*100)/100).
		Str("eta", eta).Msg("syncing")
}
