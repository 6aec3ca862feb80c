//go:build e2e

package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// op runs a valguard operator command against the chain's Consul and
// returns its output and exit code.
func (c *localChain) op(args ...string) (string, int) {
	c.t.Helper()
	full := []string{args[0], "--consul-url", "http://" + c.consul.Addr, "--validator-key", c.net.ValidatorKey}
	if args[0] == "handover" || args[0] == "drain" {
		full = append(full, "--node-rpc", c.rpc) // a validator outside the hand-over
	}
	full = append(full, args[1:]...)
	out, err := valguardOut(full...)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("valguard %s → exit %d\n%s", strings.Join(args, " "), code, out)
	return out, code
}

// opOK runs op and fails the test unless it exits 0.
func (c *localChain) opOK(args ...string) string {
	c.t.Helper()
	out, code := c.op(args...)
	if code != 0 {
		c.t.Fatalf("valguard %s: exit %d", strings.Join(args, " "), code)
	}
	return out
}

// statusCode waits up to d for valguard status to exit with want.
func (c *localChain) statusCode(want int, d time.Duration) string {
	c.t.Helper()
	end := time.Now().Add(d)
	for {
		out, err := valguardOut("status", "--consul-url", "http://"+c.consul.Addr, "--validator-key", c.net.ValidatorKey)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code == want {
			c.t.Logf("valguard status → exit %d\n%s", code, out)
			return out
		}
		if time.Now().After(end) {
			c.t.Fatalf("valguard status exit %d, want %d within %s:\n%s", code, want, d, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var missedRE = regexp.MustCompile(`first signature ([0-9.]+)s after the request, at height (\d+); missed heights since the request \(height \d+\): (\d+)`)

// handedOver checks a hand-over's output and returns its figures.
func handedOver(t *testing.T, out string) (secs string, missed string) {
	t.Helper()
	m := missedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no first signature in the hand-over output:\n%s", out)
	}
	return m[1], m[3]
}

// TestOperatorJobsEndToEnd drives the operator commands against two
// key-file replicas on a real localnet: status in the three health cases,
// hand-overs to a named replica and to any, refusals (unknown, drained,
// lagging target; a blackout), drain surviving a restart, undrain, and
// draining the leader.
func TestOperatorJobsEndToEnd(t *testing.T) {
	c := startChain(t, nil)
	a, b := c.replica("a", 0), c.replica("b", 1)
	oneSigner(t, a, b)
	c.statusCode(2, 10*time.Second) // nobody runs: no leader

	c.leaderAndStandby(a, b)
	out := c.statusCode(0, 30*time.Second)
	if !strings.Contains(out, "* leader") || !strings.Contains(out, "standby") {
		t.Fatalf("status rows:\n%s", out)
	}
	if out, code := c.op("status", "--json"); code != 0 || !strings.Contains(out, `"health": 0`) {
		t.Fatalf("status --json exit %d:\n%s", code, out)
	}

	// Refusals change nothing.
	if out, code := c.op("handover", "--to", "nosuch"); code == 0 || !strings.Contains(out, "unknown") {
		t.Fatalf("handover to an unknown replica: exit %d", code)
	}
	if _, code := c.op("undrain", "b"); code == 0 {
		t.Fatal("undrain of a replica that is not drained succeeded")
	}
	var poc atomic.Bool
	poc.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"phase":"x","is_confirmation_poc_active":%v}`, poc.Load())
	}))
	defer srv.Close()
	if out, code := c.op("handover", "--to", "b", "--blackout-url", srv.URL, "--blackout-field", "is_confirmation_poc_active", "--no-wait"); code == 0 || !strings.Contains(out, "blackout") {
		t.Fatalf("handover during a blackout: exit %d", code)
	}
	if out, code := c.op("handover", "--blackout-url", srv.URL, "--blackout-field", "no_such_field", "--no-wait"); code == 0 || !strings.Contains(out, "missing") {
		t.Fatalf("handover with a missing blackout field: exit %d", code)
	}
	if a.state() != "Validating" || b.state() != "Voting" {
		t.Fatalf("a refusal changed something: a %s, b %s", a.state(), b.state())
	}

	// A hand-over to b that waits for the blackout window to close.
	go func() { time.Sleep(3 * time.Second); poc.Store(false) }()
	start := time.Now()
	out = c.opOK("handover", "--to", "b", "--blackout-url", srv.URL, "--blackout-field", "is_confirmation_poc_active")
	secs, missed := handedOver(t, out)
	t.Logf("restart mode, hand-over a → b (after a 3 s blackout): first signature %s s after the request, missed heights %s (command took %s)", secs, missed, time.Since(start).Round(time.Millisecond))
	if b.state() != "Validating" {
		t.Fatalf("b %s after the hand-over", b.state())
	}
	a.waitState("Voting", 90*time.Second)
	c.noDoubleSign(10)

	// A hand-over to any synced standby: back to a.
	out = c.opOK("handover")
	secs, missed = handedOver(t, out)
	t.Logf("restart mode, hand-over b → any (a): first signature %s s after the request, missed heights %s", secs, missed)
	a.waitState("Validating", 5*time.Second)
	b.waitState("Voting", 90*time.Second)

	// A lagging standby is refused: b's node frozen until b is behind.
	nodeB := b.nodePID()
	_ = syscall.Kill(nodeB, syscall.SIGSTOP)
	time.Sleep(8 * time.Second)
	out, code := c.op("handover", "--to", "b")
	_ = syscall.Kill(nodeB, syscall.SIGCONT)
	if code == 0 || !strings.Contains(out, "cannot hand over to b") {
		t.Fatalf("hand-over to a frozen, lagging standby: exit %d", code)
	}
	if _, code := c.op("handover"); code == 0 {
		t.Fatal("hand-over with no synced standby succeeded")
	}
	b.waitState("Voting", 90*time.Second)
	c.statusCode(0, 30*time.Second)

	// Drain b: out of the election, degraded; it stays drained across a
	// restart of its valguard; a hand-over to it is refused.
	c.opOK("drain", "--reason", "database clean-up", "b")
	b.waitState("Syncing", 10*time.Second)
	c.statusCode(1, 15*time.Second)
	b.signal(syscall.SIGTERM)
	b.waitExit(30 * time.Second)
	c.statusCode(1, 5*time.Second)
	b.start()
	b.waitState("Syncing", 90*time.Second)
	time.Sleep(5 * time.Second)
	if st := b.state(); st != "Syncing" {
		t.Fatalf("drained b is %s after a restart", st)
	}
	if out, code := c.op("handover", "--to", "b"); code == 0 || !strings.Contains(out, "drained") {
		t.Fatalf("hand-over to a drained replica: exit %d", code)
	}
	if out, code := c.op("drain", "a"); code == 0 || !strings.Contains(out, "no synced standby") {
		t.Fatalf("draining the leader with nobody to take over: exit %d", code)
	}
	c.opOK("undrain", "b")
	b.waitState("Voting", 90*time.Second)
	c.statusCode(0, 30*time.Second)

	// Drain the leader: it hands over first.
	out = c.opOK("drain", "a")
	secs, missed = handedOver(t, out)
	t.Logf("restart mode, drain of the leader a: first signature of b %s s after the request, missed heights %s", secs, missed)
	b.waitState("Validating", 5*time.Second)
	a.waitState("Syncing", 60*time.Second)
	c.statusCode(1, 15*time.Second)
	c.opOK("undrain", "a")
	a.waitState("Voting", 90*time.Second)
	c.statusCode(0, 30*time.Second)
	c.noDoubleSign(10)

	// Both stopped: no leader, and the silent replicas are shown.
	a.signal(syscall.SIGTERM)
	b.signal(syscall.SIGTERM)
	a.waitExit(30 * time.Second)
	b.waitExit(30 * time.Second)
	if out := c.statusCode(2, 10*time.Second); !strings.Contains(out, "stopped") {
		t.Fatalf("stopped replicas not shown as stopped:\n%s", out)
	}
}

// TestSignerModeHandover: in the signer mode a hand-over restarts no node
// and misses no height (the validator holds 2/5 of the power, as in
// TestSignerModeEndToEnd, so the chain halts if it does not sign).
func TestSignerModeHandover(t *testing.T) {
	c := startChain(t, signerPowers)
	c.migrateFromFileKey(5)
	a, b := c.signerReplica("a", 0), c.signerReplica("b", 1)
	c.leaderAndStandby(a, b)
	c.statusCode(0, 30*time.Second)
	pidA, pidB := a.nodePID(), b.nodePID()
	out := c.opOK("handover", "--to", "b")
	secs, missed := handedOver(t, out)
	t.Logf("signer mode, hand-over a → b: first signature %s s after the request, missed heights %s", secs, missed)
	a.waitState("Voting", 60*time.Second)
	out = c.opOK("handover")
	secs2, missed2 := handedOver(t, out)
	t.Logf("signer mode, hand-over b → any (a): first signature %s s after the request, missed heights %s", secs2, missed2)
	samePID(t, a, pidA)
	samePID(t, b, pidB)
	if missed != "0" || missed2 != "0" {
		t.Errorf("signer-mode hand-overs missed heights: %s and %s, want 0", missed, missed2)
	}
	c.noDoubleSign(20)
	oneSignaturePerHRS(t, a, b)
}
