package roster

import (
	"context"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/faultproxy"
)

// TestFirstReadOverADeadPath: a replica whose Consul path drops packets
// when it starts reads control/ within a few call timeouts of the path
// coming back — its first read does not wait a blocking query's wait.
func TestFirstReadOverADeadPath(t *testing.T) {
	agent := consultest.Start(t)
	path := faultproxy.New(t, agent.Addr)
	path.Blackhole() // what the replica sends while cut is lost for good
	r, err := New(Config{Client: consultest.NewClient(t, path.Addr()), ValidatorID: "V1", ReplicaID: "a", CallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewWatcher(func(err error) { t.Log(err) })
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go w.Run(ctx)
	time.Sleep(2 * time.Second)
	if w.Hold() != notRead {
		t.Fatalf("Hold over a dead path: %q", w.Hold())
	}
	path.Pass()
	start := time.Now()
	waitFor(t, 10*time.Second, "first read after the path came back", func() bool { return w.Hold() == "" })
	t.Logf("read %s after the path came back", time.Since(start).Round(time.Millisecond))
}

// TestRestartedReplicaTakesOverItsReport: the report key still held by
// the session of a crashed run of the same replica in the same place is
// taken over at the next run's first write; a run of the same replica id
// elsewhere leaves it alone.
func TestRestartedReplicaTakesOverItsReport(t *testing.T) {
	agent := consultest.Start(t)
	ctx := t.Context()
	run := func(instance, state string) *Publisher {
		r, err := New(Config{Client: agent.Client(t), ValidatorID: "V1", ReplicaID: "a", Instance: instance})
		if err != nil {
			t.Fatal(err)
		}
		return r.NewPublisher(func() Report { return Report{Replica: "a", State: state} }, func(err error) { t.Log(err) })
	}
	cli := newRoster(t, agent, "")
	state := func() string {
		es, err := cli.Reports(ctx)
		if err != nil || len(es) != 1 || !es[0].Alive {
			t.Fatalf("reports: %+v, %v; want one, alive", es, err)
		}
		return es[0].State
	}
	crashed := run("host1:/var/lib/node", "Validating")
	crashed.step(ctx) // then never again: no final write, no destroy
	if s := state(); s != "Validating" {
		t.Fatalf("first run's report: %q", s)
	}
	elsewhere := run("host2:/var/lib/node", "Voting")
	elsewhere.step(ctx)
	if s := state(); s != "Validating" {
		t.Fatalf("a run elsewhere with the same replica id took the report over: %q", s)
	}
	restarted := run("host1:/var/lib/node", "Syncing")
	restarted.step(ctx)
	if s := state(); s != "Syncing" {
		t.Fatalf("the restarted run's report: %q, want Syncing at its first write", s)
	}
}
