package replica

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/valguard/valguard/roster"
)

// TestGrantBackoff: failed leaderless grants are spaced (500 ms doubled,
// at most 30 s), a success ends the wait, and the session's Acquire waits
// it out unless its context ends.
func TestGrantBackoff(t *testing.T) {
	b := &grantBackoff{}
	want := []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := b.wait(); got != w {
			t.Fatalf("after %d failures: wait %s, want %s", i, got, w)
		}
		b.done(errors.New("lock held"))
	}
	for range 10 {
		b.done(errors.New("lock held"))
	}
	if got := b.wait(); got != maxGrantBackoff {
		t.Fatalf("after many failures: %s, want %s", got, maxGrantBackoff)
	}
	s := &leaderlessSession{done: make(chan struct{}), b: b}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Acquire(ctx); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Acquire during the back-off: %v after %s, want the context's end", err, time.Since(start))
	}
	b.done(nil)
	if err := s.Acquire(context.Background()); err != nil || b.wait() != 0 {
		t.Fatalf("after a success: %v, wait %s", err, b.wait())
	}
	if d, ok := (&leaderlessSession{}).Deadline(), false; !d.IsZero() || ok {
		t.Fatal("a leaderless session has a deadline")
	}
}

// TestPolicyOf: a signer-mode report without a policy is of the leader
// policy; a key-file one has none.
func TestPolicyOf(t *testing.T) {
	for _, tc := range []struct {
		r    roster.Report
		want string
	}{
		{roster.Report{SignMode: "signer"}, "leader"},
		{roster.Report{SignMode: "signer", Signers: "any"}, "any"},
		{roster.Report{SignMode: "restart"}, ""},
	} {
		if got := policyOf(tc.r); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}
