package roster

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consultest"
)

func TestHoldFor(t *testing.T) {
	now := time.Now()
	req := func(to string, goAhead bool) *Handover {
		return &Handover{ID: "r1", From: "a", To: to, Go: goAhead, Until: now.Add(time.Minute)}
	}
	over := &Handover{ID: "r0", From: "a", To: "b", Go: true, Until: now.Add(-time.Second)}
	cases := []struct {
		name, replica string
		d             *Drain
		h             *Handover
		out           bool
	}{
		{"nothing", "a", nil, nil, false},
		{"drained", "b", &Drain{}, nil, true},
		{"leader before go", "a", nil, req("b", false), false},
		{"leader after go", "a", nil, req("b", true), true},
		{"leader after go, to any", "a", nil, req("", true), true},
		{"target", "b", nil, req("b", false), false},
		{"other replica, named target", "c", nil, req("b", false), true},
		{"other replica, to any", "c", nil, req("", true), false},
		{"window over", "a", nil, over, false},
		{"drained target", "b", &Drain{}, req("b", true), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := HoldFor(tc.replica, tc.d, tc.h, now); (got != "") != tc.out {
				t.Fatalf("HoldFor = %q, want out=%v", got, tc.out)
			}
		})
	}
}

func newRoster(t *testing.T, agent *consultest.Agent, replica string) *Roster {
	t.Helper()
	r, err := New(Config{Client: agent.Client(t), ValidatorID: "V1", ReplicaID: replica})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReportsAndControl: a published report is alive while its publisher
// runs and left, not alive, after; a drain mark and a hand-over request
// reach a watcher through its blocking query within a second.
func TestReportsAndControl(t *testing.T) {
	agent := consultest.Start(t)
	ctx := t.Context()
	a, cli := newRoster(t, agent, "a"), newRoster(t, agent, "")
	w := a.NewWatcher(func(err error) { t.Log(err) })
	if h := w.Hold(); h == "" {
		t.Fatal("a watcher that has read nothing lets the replica in")
	}
	wctx, stopW := context.WithCancel(ctx)
	defer stopW()
	go w.Run(wctx)
	waitFor(t, 5*time.Second, "first read", func() bool { return w.Hold() == "" })

	state := "Voting"
	pub := a.NewPublisher(func() Report { return Report{Replica: "a", State: state, Height: 7} }, func(err error) { t.Log(err) })
	pctx, stopP := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pub.Run(pctx); close(done) }()
	waitFor(t, 5*time.Second, "report alive", func() bool {
		es, err := cli.Reports(ctx)
		return err == nil && len(es) == 1 && es[0].Alive && es[0].State == "Voting" && es[0].Height == 7
	})

	if err := cli.SetDrain(ctx, "a", Drain{At: time.Now(), By: "test"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-w.Changed():
	case <-time.After(2 * time.Second):
	}
	waitFor(t, time.Second, "drained", func() bool { return w.Hold() == "drained" && w.Drained() })
	t.Logf("drain seen after %s", time.Since(start).Round(time.Millisecond))
	if err := cli.Undrain(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := cli.Undrain(ctx, "a"); !errors.Is(err, ErrNotDrained) {
		t.Fatalf("second undrain: %v, want ErrNotDrained", err)
	}
	waitFor(t, 2*time.Second, "undrained", func() bool { return w.Hold() == "" })

	h := Handover{ID: "x", From: "a", To: "b", RequestedAt: time.Now(), Until: time.Now().Add(700 * time.Millisecond)}
	idx, err := cli.PutHandover(ctx, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.PutHandover(ctx, h, 0); !errors.Is(err, ErrRequestChanged) {
		t.Fatalf("second request: %v", err)
	}
	h.Go = true
	if _, err := cli.PutHandover(ctx, h, idx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "leader held", func() bool { return w.Hold() != "" })
	waitFor(t, 2*time.Second, "window over", func() bool { return w.Hold() == "" })
	if err := cli.EndHandover(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := cli.Handover(ctx); got != nil {
		t.Fatalf("request left: %+v", got)
	}

	state = "Shutdown"
	stopP()
	<-done
	es, err := cli.Reports(ctx)
	if err != nil || len(es) != 1 || es[0].Alive || es[0].State != "Shutdown" {
		t.Fatalf("after stop: %+v, %v; want one report, not alive, Shutdown", es, err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClockWarning(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name  string
		until time.Duration
		warn  string
	}{
		{"window ahead", 30 * time.Second, ""},
		{"ten minutes ahead", MaxWindowAhead, ""},
		{"past", -5 * time.Second, "ago on this replica's clock"},
		{"far ahead", MaxWindowAhead + time.Minute, "ahead on this replica's clock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClockWarning(Handover{ID: "r", From: "a", Until: now.Add(tc.until)}, now)
			if (got == "") != (tc.warn == "") || !strings.Contains(got, tc.warn) {
				t.Fatalf("ClockWarning = %q, want %q", got, tc.warn)
			}
		})
	}
}

// TestExplainRefusedRead: a read of control/ that Consul refused names the
// key prefix and the policy to grant, and the watcher's Hold says so.
func TestExplainRefusedRead(t *testing.T) {
	client, err := api.NewClient(api.DefaultConfig()) // never called
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Client: client, ValidatorID: "V1", ReplicaID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	err = r.explain(errors.New("Unexpected response code: 403 (Permission denied: token with AccessorID 'x' lacks permission 'key:read' on \"valguard/V1/control/\")"))
	if !errors.Is(err, ErrNoReadAccess) || !strings.Contains(err.Error(), `key_prefix "valguard/V1/"`) || !strings.Contains(err.Error(), "valguard/V1/control/") {
		t.Fatalf("explained: %v", err)
	}
	if other := errors.New("connection refused"); r.explain(other) != other {
		t.Fatal("an unrelated error was rewritten")
	}
	w := r.NewWatcher(nil)
	w.denied = true
	if h := w.Hold(); !strings.Contains(h, "valguard/V1/control/") {
		t.Fatalf("Hold while refused: %q", h)
	}
}

// TestBestHeightFollowsAMovingChain: the best height is read again every
// Heartbeat (3 s, above the one-second step) although this replica's own
// report changes at every step (its node's height moves), so a height
// another replica reports after this one's first read is seen within a
// few heartbeats.
func TestBestHeightFollowsAMovingChain(t *testing.T) {
	agent := consultest.Start(t)
	var own, other atomic.Int64
	own.Store(10)
	other.Store(1000)
	pubFor := func(id string, h *atomic.Int64) *Publisher {
		r, err := New(Config{Client: agent.Client(t), ValidatorID: "V1", ReplicaID: id, Heartbeat: 3 * time.Second, TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		p := r.NewPublisher(func() Report { return Report{Replica: id, State: "Syncing", Height: h.Add(1)} }, func(err error) { t.Log(err) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return p
	}
	// a reads the best height once (its own: b is not there yet), then b,
	// whose node runs 1,000 blocks ahead, reports while a's height moves
	// at every step.
	a := pubFor("a", &own)
	waitFor(t, 5*time.Second, "a's first read", func() bool { return a.BestHeight() > 0 })
	pubFor("b", &other)
	waitFor(t, 10*time.Second, "a sees b's height as the best", func() bool { return a.BestHeight() > 900 })
}
