package operator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/roster"
)

// fakeReplica is one replica as the fake store models it.
type fakeReplica struct {
	state  string
	height int64
	synced bool
	// stopped: its session is gone (not Alive); hung: its report is
	// old; stuck: it reports but does not act on requests.
	stopped, hung, stuck bool
	// noTake: it acts on requests but never takes the lock.
	noTake bool
	rpc    string
}

// fakeStore is a Store that, when sim is set, also plays the replicas:
// at each read of the lock they act on the drain marks and the request
// as valguard run does (a held leader steps down, a held standby leaves
// the election, a free lock goes to a Voting replica, the named target
// first).
type fakeStore struct {
	mu       sync.Mutex
	clk      *stepClock
	replicas map[string]*fakeReplica
	leader   string
	drains   map[string]roster.Drain
	ho       *roster.Handover
	hoIndex  uint64
	index    uint64
	sim      bool
	// readErr fails every read; putErr the first write of a request;
	// leading makes SetDrainUnlessLeading answer ErrLeading.
	readErr, putErr error
	leading         bool
	// writes logs every write, in order.
	writes []string
}

func newFakeStore(clk *stepClock, leader string, replicas map[string]*fakeReplica) *fakeStore {
	for _, r := range replicas {
		if r.height == 0 {
			r.height = 100
		}
	}
	return &fakeStore{clk: clk, replicas: replicas, leader: leader, drains: map[string]roster.Drain{}, sim: true}
}

// standbyPair is a leading a and a synced standby b.
func standbyPair() map[string]*fakeReplica {
	return map[string]*fakeReplica{
		"a": {state: "Validating", synced: true, rpc: "rpc-a"},
		"b": {state: "Voting", synced: true, rpc: "rpc-b"},
	}
}

func (s *fakeStore) ids() []string {
	var ids []string
	for id := range s.replicas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *fakeStore) LockKey() string { return "valguard/v/leader" }

func (s *fakeStore) Leader(ctx context.Context) (*election.LeaderInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readErr != nil {
		return nil, s.readErr
	}
	if s.sim {
		s.step()
	}
	if s.leader == "" {
		return nil, nil
	}
	return &election.LeaderInfo{ReplicaID: s.leader, Hostname: "host-" + s.leader, Since: epoch.Add(-time.Hour)}, nil
}

// hold is why replica stays out now, as its valguard sees it.
func (s *fakeStore) hold(id string) string {
	var d *roster.Drain
	if m, ok := s.drains[id]; ok {
		d = &m
	}
	return roster.HoldFor(id, d, s.ho, s.clk.Now())
}

// step plays one round of the replicas.
func (s *fakeStore) step() {
	for _, id := range s.ids() {
		r := s.replicas[id]
		if r.stopped || r.hung || r.stuck {
			continue
		}
		held := s.hold(id) != ""
		switch {
		case id == s.leader && held:
			s.leader, r.state = "", "Syncing"
		case id != s.leader && held && ParseState(r.state).inElection():
			r.state = "Syncing"
		case id != s.leader && !held && r.synced && ParseState(r.state) != Voting:
			r.state = "Voting"
		}
	}
	if s.leader != "" {
		return
	}
	order := s.ids()
	if s.ho != nil && s.ho.To != "" {
		order = append([]string{s.ho.To}, order...)
	}
	for _, id := range order {
		r := s.replicas[id]
		if r.stopped || r.hung || r.noTake || ParseState(r.state) != Voting || (s.hold(id) != "" && !r.stuck) {
			continue
		}
		s.leader, r.state = id, "Validating"
		return
	}
}

func (s *fakeStore) Reports(ctx context.Context) ([]roster.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readErr != nil {
		return nil, s.readErr
	}
	var out []roster.Entry
	for _, id := range s.ids() {
		r := s.replicas[id]
		_, drained := s.drains[id]
		e := roster.Entry{Alive: !r.stopped, Report: roster.Report{Replica: id, State: r.state, Height: r.height, Synced: r.synced,
			Drained: drained, Hold: s.hold(id), NodeRPC: r.rpc, Updated: s.clk.Now()}}
		if r.stuck {
			e.Hold = "" // it has not seen the requests
		}
		if r.hung || r.stopped {
			e.Updated = epoch.Add(-time.Minute)
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *fakeStore) Drains(ctx context.Context) (map[string]roster.Drain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps(s.drains), s.readErr
}

func maps(m map[string]roster.Drain) map[string]roster.Drain {
	out := map[string]roster.Drain{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *fakeStore) Handover(ctx context.Context) (*roster.Handover, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ho == nil {
		return nil, 0, s.readErr
	}
	h := *s.ho
	return &h, s.hoIndex, s.readErr
}

func (s *fakeStore) PutHandover(ctx context.Context, h roster.Handover, index uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.putErr; err != nil {
		s.putErr = nil
		return 0, err
	}
	if index != s.hoIndex {
		return 0, roster.ErrRequestChanged
	}
	s.index++
	s.ho, s.hoIndex = &h, s.index
	s.writes = append(s.writes, fmt.Sprintf("handover %s→%s go=%v", h.From, orAny(h.To), h.Go))
	return s.hoIndex, nil
}

func (s *fakeStore) EndHandover(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ho != nil && s.ho.ID == id {
		s.ho, s.hoIndex = nil, 0
		s.writes = append(s.writes, "end handover")
	}
	return nil
}

func (s *fakeStore) SetDrain(ctx context.Context, replica string, d roster.Drain) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drains[replica] = d
	s.writes = append(s.writes, "drain "+replica)
	return nil
}

func (s *fakeStore) SetDrainUnlessLeading(ctx context.Context, replica string, d roster.Drain) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leading || s.leader == replica {
		return fmt.Errorf("%w: %s holds %s", roster.ErrLeading, replica, s.LockKey())
	}
	s.drains[replica] = d
	s.writes = append(s.writes, "drain "+replica)
	return nil
}

func (s *fakeStore) Undrain(ctx context.Context, replica string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.drains[replica]; !ok {
		return fmt.Errorf("%w: %s", roster.ErrNotDrained, replica)
	}
	delete(s.drains, replica)
	s.writes = append(s.writes, "undrain "+replica)
	return nil
}

// fakeChain is a chain with a block every second of the fake clock; a
// block carries the validator's signature when, at the first read that
// sees it, a replica holds the lock and is Validating.
type fakeChain struct {
	s      *fakeStore
	h      int64
	signed map[int64]bool
	last   time.Time
	// err fails every read.
	err error
	// silent: the new leader's signatures never reach the chain.
	silent bool
}

func newFakeChain(s *fakeStore) *fakeChain {
	return &fakeChain{s: s, h: 1000, signed: map[int64]bool{}, last: s.clk.Now()}
}

func (c *fakeChain) Height(ctx context.Context) (int64, error) {
	if c.err != nil {
		return 0, c.err
	}
	now := c.s.clk.Now()
	c.s.mu.Lock()
	signing := c.s.leader != "" && c.s.replicas[c.s.leader].state == "Validating"
	c.s.mu.Unlock()
	for ; now.Sub(c.last) >= time.Second; c.last = c.last.Add(time.Second) {
		c.h++
		c.signed[c.h] = signing && !c.silent
	}
	return c.h, nil
}

func (c *fakeChain) SignedAt(ctx context.Context, h int64) (bool, error) {
	if c.err != nil {
		return false, c.err
	}
	return c.signed[h], nil
}

// fakeBlackout is open until the fake clock reaches until.
type fakeBlackout struct {
	clk   *stepClock
	until time.Time
	calls int
}

func (b *fakeBlackout) Open(ctx context.Context) (bool, string) {
	b.calls++
	if b.clk.Now().Before(b.until) {
		return true, "epoch test is true"
	}
	return false, ""
}

// rig is a Validator over a fake store, clock and chain.
type rig struct {
	t     *testing.T
	clk   *stepClock
	store *fakeStore
	chain *fakeChain
	v     *Validator
	out   *bytes.Buffer
	err   *bytes.Buffer
	rpcs  []string
}

func newRig(t *testing.T, leader string, replicas map[string]*fakeReplica) *rig {
	clk := newStepClock(t)
	s := newFakeStore(clk, leader, replicas)
	r := &rig{t: t, clk: clk, store: s, chain: newFakeChain(s), out: &bytes.Buffer{}, err: &bytes.Buffer{}}
	r.v = &Validator{ID: "v", Store: s, Clock: clk, Out: r.out, Err: r.err, Host: "ops", CallTimeout: time.Second,
		Chain: func(rpcs []string, address string) Chain { r.rpcs = rpcs; return r.chain }}
	return r
}

// opts are a hand-over's defaults.
func opts(to string) MoveOptions {
	return MoveOptions{To: to, MaxLag: DefaultMaxLag, Timeout: DefaultHandoverTimeout, Window: DefaultHandoverWindow}
}

// says fails the test unless the output holds every one of want, in
// this order.
func (r *rig) says(want ...string) {
	r.t.Helper()
	out := r.out.String()
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			r.t.Fatalf("output does not say %q (after byte %d):\n%s", w, at, out)
		}
		at += i + len(w)
	}
}

// never fails the test if the output holds s.
func (r *rig) never(s string) {
	r.t.Helper()
	if strings.Contains(r.out.String(), s) {
		r.t.Fatalf("output says %q:\n%s", s, r.out.String())
	}
}

// end checks the store at the end: no request left, leader as given,
// writes as given (nil: not checked).
func (r *rig) end(leader string, writes []string) {
	r.t.Helper()
	s := r.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ho != nil {
		r.t.Errorf("request %+v left in the store", *s.ho)
	}
	if s.leader != leader {
		r.t.Errorf("leader %q, want %q", s.leader, leader)
	}
	if writes != nil && !slices.Equal(s.writes, writes) {
		r.t.Errorf("writes %q, want %q", s.writes, writes)
	}
}

// errIs fails unless err's text holds every one of want.
func errHas(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not say %q", err, w)
		}
	}
}

var errConsul = errors.New("dial tcp 127.0.0.1:8500: connect: connection refused")
