package roster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consultest"
)

// TestUnreadableDrainMarkHolds: against a real Consul with ACLs on
// (default deny), a replica whose token may read its validator's keys but
// not control/ gets, from Consul, a list of control/ with the drain mark
// left out (Consul filters lists rather than refusing them). It must stay
// held, never take that for "not drained"; Drains says the same.
func TestUnreadableDrainMarkHolds(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{ACL: true})
	admin, err := New(Config{Client: agent.Client(t), ValidatorID: "V1", ReplicaID: "op"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := admin.SetDrain(ctx, "a", Drain{At: time.Now(), Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	acl := agent.Client(t).ACL()
	p, _, err := acl.PolicyCreate(&api.ACLPolicy{Name: "no-control", Rules: `key_prefix "valguard/V1/" { policy = "write" }
key_prefix "valguard/V1/control/" { policy = "deny" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(&api.Config{Address: agent.Addr, Scheme: "http", Token: tok.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Client: client, ValidatorID: "V1", ReplicaID: "a", CallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var last error
	errs := make(chan error, 16)
	w := r.NewWatcher(func(err error) {
		select {
		case errs <- err:
		default:
		}
	})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx)
	select {
	case last = <-errs:
	case <-time.After(10 * time.Second):
		t.Fatalf("no error reported; hold %q", w.Hold())
	}
	if !errors.Is(last, ErrNoReadAccess) {
		t.Fatalf("reported %v, want ErrNoReadAccess", last)
	}
	time.Sleep(500 * time.Millisecond)
	if w.Hold() == "" || w.Drained() {
		t.Fatalf("a replica that cannot read its drain mark is in the election (hold %q, drained %v)", w.Hold(), w.Drained())
	}
	if _, err := r.Drains(ctx); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("Drains with keys left out by the token: %v", err)
	}
}

// TestReportsFilteredByACLsIsAnError: a token that may read only some
// replicas' reports gets an error from Reports, not a shorter list (the
// best height, the lag and the stall rule read it).
func TestReportsFilteredByACLsIsAnError(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{ACL: true})
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		r, err := New(Config{Client: agent.Client(t), ValidatorID: "V1", ReplicaID: id})
		if err != nil {
			t.Fatal(err)
		}
		p := r.NewPublisher(func() Report { return Report{Replica: id, State: "Voting", Height: 7} }, func(err error) { t.Log(err) })
		pctx, stop := context.WithCancel(ctx)
		t.Cleanup(stop)
		go p.Run(pctx)
	}
	admin, err := New(Config{Client: agent.Client(t), ValidatorID: "V1", ReplicaID: "op"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		es, err := admin.Reports(ctx)
		if err == nil && len(es) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reports: %v, %v", es, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	acl := agent.Client(t).ACL()
	p, _, err := acl.PolicyCreate(&api.ACLPolicy{Name: "own-report", Rules: `key "valguard/V1/replicas/a" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(&api.Config{Address: agent.Addr, Scheme: "http", Token: tok.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Client: client, ValidatorID: "V1", ReplicaID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if es, err := r.Reports(ctx); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("Reports with a report left out by the token: %+v, %v", es, err)
	}
}
