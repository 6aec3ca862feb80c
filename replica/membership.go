package replica

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/roster"
	"github.com/valguard/valguard/supervisor"
)

// membership is this replica's part of the roster: the watcher of the
// operator's requests (the supervisor's Operator) and the publisher of
// its report.
type membership struct {
	watcher *roster.Watcher
	pub     *roster.Publisher
	base    roster.Report
	sup     func() *supervisor.Supervisor
	// races, if set, are the signer's races won and lost (--signers any).
	races func() (won, lost uint64)
}

func newMembership(ro *roster.Roster, base roster.Report, sup func() *supervisor.Supervisor, races func() (uint64, uint64), onError func(error), log zerolog.Logger) *membership {
	r := &membership{base: base, sup: sup, races: races}
	lim := &errorLimiter{log: log, every: time.Minute}
	r.watcher = ro.NewWatcher(func(err error) {
		onError(err)
		lim.warn(err, "could not read the operator's requests ("+ro.ControlPrefix()+") from consul: this replica stays out of the election until it has read them once; retrying")
	})
	r.watcher.OnClockWarning(func(h roster.Handover, warning string) {
		log.Warn().Str("request", h.ID).Str("from", h.From).Str("to", h.To).
			Time("requested_at", h.RequestedAt).Time("until", h.Until).Msg(warning)
	})
	r.pub = ro.NewPublisher(r.report, func(err error) {
		onError(err)
		lim.warn(err, "could not publish this replica's report to consul; retrying")
	})
	return r
}

// start runs the watcher until ctx ends and the publisher until the
// returned stop is called (after the supervisor returned, so that the last
// report says Shutdown); stop waits for the last report.
func (r *membership) start(ctx context.Context) (stop func()) {
	go r.watcher.Run(ctx)
	pctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.pub.Run(pctx); close(done) }()
	return func() { cancel(); <-done }
}

// report is this replica's report now.
func (r *membership) report() roster.Report {
	rep := r.base
	rep.Drained = r.watcher.Drained()
	rep.Hold = r.watcher.Hold()
	if r.races != nil && rep.Signers == "any" {
		rep.RacesWon, rep.RacesLost = r.races()
	}
	s := r.sup()
	if s == nil {
		rep.State = supervisor.Startup.String()
		return rep
	}
	sn := s.Snapshot()
	rep.State, rep.Since, rep.Reason = sn.State.String(), sn.Since, sn.Reason
	rep.Height, rep.BlockTime, rep.CatchingUp, rep.Synced = sn.Node.Height, sn.Node.BlockTime, sn.Node.CatchingUp, sn.Node.Synced
	if !sn.LeaseDeadline.IsZero() {
		rep.LeaseDeadline = time.Now().Add(time.Until(sn.LeaseDeadline)).Round(time.Millisecond)
	}
	if p := sn.Progress; p != nil {
		rep.Progress = &roster.Progress{Height: p.Height, Best: p.Best, Rate: p.Rate, ETASeconds: p.ETA.Seconds()}
	}
	return rep
}

// errorLimiter logs a repeated failure once, then at most once per every.
type errorLimiter struct {
	log   zerolog.Logger
	every time.Duration
	mu    sync.Mutex
	last  time.Time
}

func (l *errorLimiter) warn(err error, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.last) < l.every {
		return
	}
	l.last = time.Now()
	l.log.Warn().Err(err).Msg(msg)
}
