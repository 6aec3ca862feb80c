package roster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// tick is how often the Publisher looks at the report for a change.
const tick = time.Second

// Publisher writes this replica's report under replicas/<id> with a
// session of its own: on every change (looked at every second) and at
// least every Heartbeat. It runs in a goroutine of its own, apart from the
// supervisor's loop and the signing path.
type Publisher struct {
	r       *Roster
	report  func() Report
	onError func(error)

	best atomic.Int64

	session   string
	renewedAt time.Time
	last      Report
	written   time.Time
	bestRead  time.Time // when the best height was last read
	warned    bool
}

// NewPublisher returns a publisher of the reports report builds (Updated
// and Lag are filled in here); onError (optional) gets every failed
// Consul call, which is retried.
func (r *Roster) NewPublisher(report func() Report, onError func(error)) *Publisher {
	return &Publisher{r: r, report: report, onError: onError}
}

// BestHeight is the highest height a live replica reported, this one
// included, read at most a Heartbeat ago (whether or not this replica's
// report changed meanwhile); 0 before the first read.
func (p *Publisher) BestHeight() int64 { return p.best.Load() }

// Run publishes until ctx ends, then writes a last report, releases the
// key (left holding that report) and destroys the session.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(tick)
	defer t.Stop()
	p.step(ctx)
	for {
		select {
		case <-ctx.Done():
			p.finish()
			return
		case <-t.C:
			p.step(ctx)
		}
	}
}

// step keeps the session alive and writes the report when due.
func (p *Publisher) step(ctx context.Context) {
	cfg := p.r.cfg
	if err := p.keepSession(ctx); err != nil {
		p.fail(err)
		return
	}
	now := p.r.now()
	heartbeat := now.Sub(p.written) >= cfg.Heartbeat
	// The best height is read every Heartbeat on its own clock: a report
	// that changes every second (a node's height on a fast chain) is
	// written every second, and the best height would otherwise never be
	// read again (the lag rule, the chain-stall rule and the stuck-node
	// rule decide by it).
	if now.Sub(p.bestRead) >= cfg.Heartbeat {
		p.readBest(ctx)
		p.bestRead = now
	}
	rep := p.report()
	if !heartbeat && sameContent(rep, p.last) {
		return
	}
	if best := p.best.Load(); best > rep.Height {
		rep.Lag = best - rep.Height
	}
	rep.Updated = now
	if err := p.write(ctx, rep, false); err != nil {
		p.fail(err)
		return
	}
	p.last, p.written = rep, now
}

// keepSession creates the session when there is none and renews it every
// TTL/3; a session Consul no longer knows is replaced.
func (p *Publisher) keepSession(ctx context.Context) error {
	cfg := p.r.cfg
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	if p.session != "" && p.r.now().Sub(p.renewedAt) < cfg.TTL/3 {
		return nil
	}
	if p.session != "" {
		entry, _, err := cfg.Client.Session().Renew(p.session, (&api.WriteOptions{}).WithContext(cctx))
		if err != nil {
			return fmt.Errorf("renew the report session: %w", err)
		}
		if entry != nil {
			p.renewedAt = p.r.now()
			return nil
		}
		p.session = "" // expired: a new one
	}
	entry := &api.SessionEntry{
		Name: p.sessionName(), TTL: cfg.TTL.String(),
		Behavior: api.SessionBehaviorRelease, LockDelay: reportLockDelay,
	}
	id, _, err := cfg.Client.Session().CreateNoChecks(entry, (&api.WriteOptions{}).WithContext(cctx))
	if err != nil {
		return fmt.Errorf("create the report session: %w", err)
	}
	p.session, p.renewedAt = id, p.r.now()
	p.written = time.Time{} // write at once under the new session
	return nil
}

// write puts rep into the report key, held by the session (release: the
// key is left free with rep in it).
func (p *Publisher) write(ctx context.Context, rep Report, release bool) error {
	cfg := p.r.cfg
	value, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	pair := &api.KVPair{Key: p.r.ReportKey(cfg.ReplicaID), Value: value, Session: p.session}
	kv, wo := cfg.Client.KV(), (&api.WriteOptions{}).WithContext(cctx)
	var ok bool
	if release {
		ok, _, err = kv.Release(pair, wo)
	} else {
		ok, _, err = kv.Acquire(pair, wo)
	}
	switch {
	case err != nil:
		return fmt.Errorf("write %s: %w", pair.Key, err)
	case !ok && !release && p.takeOver(ctx, pair.Key):
		time.Sleep(10 * reportLockDelay) // the destroyed session's lock-delay
		if ok, _, err = kv.Acquire(pair, wo); err != nil {
			return fmt.Errorf("write %s: %w", pair.Key, err)
		}
	}
	if !ok && !release {
		if !p.warned {
			p.warned = true
			return fmt.Errorf("write %s: the key is held by another session (an earlier run of this replica that has not expired yet, or another replica with the same --replica-id)", pair.Key)
		}
		return nil
	}
	p.warned = false
	return nil
}

// sessionName is the report session's name; with an Instance, it tells
// an earlier run in the same place (takeOver).
func (p *Publisher) sessionName() string {
	name := p.r.keys.ReportSession(p.r.cfg.ReplicaID)
	if p.r.cfg.Instance != "" {
		name += "@" + p.r.cfg.Instance
	}
	return name
}

// takeOver destroys the session that holds key when it is an earlier run
// of this replica in the same place (Config.Instance) and reports whether
// it did. Any other holder is left alone.
func (p *Publisher) takeOver(ctx context.Context, key string) bool {
	cfg := p.r.cfg
	if cfg.Instance == "" {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	pair, _, err := cfg.Client.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
	if err != nil || pair == nil || pair.Session == "" || pair.Session == p.session {
		return false
	}
	old, _, err := cfg.Client.Session().Info(pair.Session, (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
	if err != nil || old == nil || old.Name != p.sessionName() {
		return false
	}
	if _, err := cfg.Client.Session().Destroy(old.ID, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
		p.fail(fmt.Errorf("destroy the report session %s of an earlier run of this replica: %w", old.ID, err))
		return false
	}
	return true
}

// readBest reads every live report for the best height.
func (p *Publisher) readBest(ctx context.Context) {
	es, err := p.r.Reports(ctx)
	if err != nil {
		p.fail(err)
		return
	}
	var best int64
	for _, e := range es {
		if e.Alive && e.Height > best {
			best = e.Height
		}
	}
	p.best.Store(best)
}

// finish writes the last report, releases the key and destroys the
// session, each bounded by CallTimeout.
func (p *Publisher) finish() {
	if p.session == "" {
		return
	}
	ctx := context.Background()
	rep := p.report()
	rep.Updated = p.r.now()
	if err := p.write(ctx, rep, true); err != nil {
		p.fail(err)
	}
	cctx, cancel := context.WithTimeout(ctx, p.r.cfg.CallTimeout)
	defer cancel()
	if _, err := p.r.cfg.Client.Session().Destroy(p.session, (&api.WriteOptions{}).WithContext(cctx)); err != nil {
		p.fail(fmt.Errorf("destroy the report session: %w", err))
	}
	p.session = ""
}

func (p *Publisher) fail(err error) {
	if p.onError != nil && err != nil {
		p.onError(err)
	}
}

// Entry is one replica's last report as read by anyone.
type Entry struct {
	Report
	// Alive: the replica's report session holds the key, so the replica
	// runs (or died less than its session's expiry ago).
	Alive bool
	// Unreadable is set when the value is not a Report.
	Unreadable string
}

// Reports reads every replica's last report (consistent read), sorted by
// replica id.
func (r *Roster) Reports(ctx context.Context) ([]Entry, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	q := &api.QueryOptions{RequireConsistent: true}
	pairs, _, err := r.list(r.reportPrefix(), q.WithContext(cctx))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r.reportPrefix(), err)
	}
	out := make([]Entry, 0, len(pairs))
	for _, pair := range pairs {
		e := Entry{Alive: pair.Session != ""}
		if err := json.Unmarshal(pair.Value, &e.Report); err != nil {
			e.Unreadable = err.Error()
		}
		e.Replica = strings.TrimPrefix(pair.Key, r.reportPrefix())
		out = append(out, e)
	}
	return out, nil
}
