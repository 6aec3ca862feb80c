//go:build e2e

package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/neard"
	"github.com/valguard/valguard/roster"
)

// op runs a valguard operator command against the cluster's Consul for
// its validator and returns its output and exit code.
func (c *nearCluster) op(args ...string) (string, int) {
	c.t.Helper()
	full := append([]string{args[0], "--consul-url", "http://" + c.consul.Addr, "--validator-key", c.key}, args[1:]...)
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

// statusLeader waits up to d for valguard status to exit 0 with leader as
// the leader, and returns its output.
func (c *nearCluster) statusLeader(leader string, d time.Duration) string {
	c.t.Helper()
	end := time.Now().Add(d)
	for {
		out, err := valguardOut("status", "--consul-url", "http://"+c.consul.Addr, "--validator-key", c.key)
		if err == nil && strings.Contains(out, "OK: leader "+leader+",") {
			c.t.Logf("valguard status → exit 0\n%s", out)
			return out
		}
		if time.Now().After(end) {
			c.t.Fatalf("valguard status: %v, want exit 0 with leader %s within %s:\n%s", err, leader, d, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// roster is a command-line reader of the cluster's roster.
func (c *nearCluster) roster() *roster.Roster {
	c.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = c.consul.Addr
	client, err := api.NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	k, err := neard.LoadKey(c.key)
	if err != nil {
		c.t.Fatal(err)
	}
	id, err := neard.LockID(k.PublicKey)
	if err != nil {
		c.t.Fatal(err)
	}
	ro, err := roster.New(roster.Config{Client: client, ValidatorID: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return ro
}

// settled waits until one replica validates and the other votes, and
// returns the leader.
func (c *nearCluster) settled(a, b *nearReplica) *nearReplica {
	c.t.Helper()
	var leader *nearReplica
	if !within(c.t.Context(), 90*time.Second, func() bool {
		sa, sb := a.state(), b.state()
		switch {
		case sa == "Validating" && sb == "Voting":
			leader = a
		case sb == "Validating" && sa == "Voting":
			leader = b
		}
		return leader != nil
	}) {
		c.t.Fatalf("no leader and standby within 90s: a %s, b %s", a.state(), b.state())
	}
	return leader
}

// TestNEARHandover: two replicas over neard stand-ins (2.1.1, --promotion
// auto, so every promotion is hot). `valguard handover --to b` moves
// leadership without restarting b's neard, status shows b leading, and
// the command says the chain was not watched (NEAR: it returns once the
// new leader is Validating); then `valguard drain b` of the leader hands
// over to a first and leaves b out of the election. The journal shows no
// height produced twice.
func TestNEARHandover(t *testing.T) {
	c := newNEARCluster(t)
	a, b := c.replica("a", "auto", nil), c.replica("b", "auto", nil)
	oneValidator(t, a, b)

	a.start()
	a.waitState("Validating", 60*time.Second)
	b.start()
	b.waitState("Voting", 60*time.Second)
	c.statusLeader("a", 30*time.Second)
	nodeA, nodeB := a.nodePID(), b.nodePID()
	c.producing(nodeA, 10*time.Second)

	start := time.Now()
	out, code := c.op("handover", "--to", "b")
	took := time.Since(start)
	if code != 0 || !strings.Contains(out, "hand-over a → b done") || !strings.Contains(out, "the chain was not watched") {
		t.Fatalf("handover --to b: exit %d, want 0 with the new leader Validating and the chain not watched", code)
	}
	if b.state() != "Validating" {
		t.Fatalf("b %s after the hand-over", b.state())
	}
	if b.nodePID() != nodeB {
		t.Fatal("the hand-over restarted b's neard: the promotion was not hot")
	}
	c.producing(nodeB, 10*time.Second)
	t.Logf("NEAR hand-over a → b (hot promotion): command %s, b producing %s after the request", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if alive(nodeA) {
		t.Fatal("a's validator neard still runs after the hand-over (demotion must stop it)")
	}
	a.waitState("Voting", 60*time.Second)
	if a.validatorLoaded() || a.link("validator_key.json") != "" {
		t.Fatal("a rejoined with the validator key")
	}
	c.statusLeader("b", 30*time.Second)
	if h, _, err := c.roster().Handover(t.Context()); err != nil || h != nil {
		t.Fatalf("hand-over request left after the command: %+v, %v", h, err)
	}
	c.noDoubleSign()

	// Drain the leader b: it hands over to a first, then stays out.
	nodeA = a.nodePID()
	out, code = c.op("drain", "--reason", "test", "b")
	if code != 0 || !strings.Contains(out, "b leads: handing over") || !strings.Contains(out, "the chain was not watched") || !strings.Contains(out, "b drained") {
		t.Fatalf("drain of the leader b: exit %d", code)
	}
	if a.state() != "Validating" {
		t.Fatalf("a %s after the drain of b", a.state())
	}
	if a.nodePID() != nodeA {
		t.Fatal("the drain's hand-over restarted a's neard")
	}
	c.producing(nodeA, 10*time.Second)
	b.waitState("Syncing", 60*time.Second) // drained: out of the election, its neard a voter
	time.Sleep(3 * time.Second)
	if st := b.state(); st == "Voting" || st == "Validating" {
		t.Fatalf("drained b is %s", st)
	}
	out, _ = c.op("status")
	if !strings.Contains(out, "leader    a ") {
		t.Fatalf("status after the drain does not show a leading:\n%s", out)
	}
	c.op("undrain", "b")
	b.waitState("Voting", 60*time.Second)
	c.statusLeader("a", 30*time.Second)
	c.noDoubleSign()
}

// TestHandoverInterrupted: SIGINT to `valguard handover` removes its
// request on the way out, so that a target that never takes the lock (its
// valguard frozen) cannot keep everybody out until the window's end; and
// without the SIGINT the command itself ends the request once the lock
// stays free with no taker. Over neard stand-ins: a's neard takes 4 s to
// stop, so a holds the lock for 4 s after it was asked to step down.
func TestHandoverInterrupted(t *testing.T) {
	c := newNEARCluster(t)
	a := c.replica("a", "auto", []string{"STANDIN_SHUTDOWN_DELAY=4s"})
	b := c.replica("b", "auto", nil)
	oneValidator(t, a, b)
	a.start()
	a.waitState("Validating", 60*time.Second)
	b.start()
	b.waitState("Voting", 60*time.Second)
	c.statusLeader("a", 30*time.Second)
	ro := c.roster()

	// b frozen: its report stays fresh for a while, so the command accepts
	// it as the target, but it never takes the lock.
	b.signal(syscall.SIGSTOP)
	cmd := exec.Command(valguardBin, "handover", "--consul-url", "http://"+c.consul.Addr, "--validator-key", c.key,
		"--to", "b", "--window", "5m")
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	stepping := make(chan struct{})
	doneReading := make(chan struct{})
	go func() {
		defer close(doneReading)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if !once && strings.Contains(sc.Text(), "asked to step down") {
				once = true
				close(stepping)
			}
		}
	}()
	select {
	case <-stepping:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the hand-over did not start within 20s")
	}
	if h, _, err := ro.Handover(t.Context()); err != nil || h == nil || !h.Go {
		t.Fatalf("request while the command runs: %+v, %v", h, err)
	}
	time.Sleep(300 * time.Millisecond)
	interrupted := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	pw.Close()
	<-doneReading
	out := strings.Join(lines, "\n")
	t.Logf("valguard handover --to b (frozen), SIGINT after it asked a to step down → %v, after %s:\n%s", err, time.Since(interrupted).Round(time.Millisecond), out)
	if err == nil || !strings.Contains(out, "interrupted: request removed") || strings.Contains(out, "ended early") {
		t.Fatal("want a non-zero exit that says the request was removed on the interrupt")
	}
	if h, _, err := ro.Handover(t.Context()); err != nil || h != nil {
		t.Fatalf("request left after SIGINT: %+v, %v", h, err)
	}
	// a finishes stepping down (its neard takes 4 s to stop); nobody is
	// held by a request any more, so once b runs again one of them leads
	// and the other is a synced standby that can lead.
	if !within(t.Context(), 10*time.Second, func() bool { return a.state() != "Validating" }) {
		t.Log("a did not step down (the request was removed before it began)")
	}
	b.signal(syscall.SIGCONT)
	leader := c.settled(a, b)
	c.statusLeader(leader.id, 30*time.Second)
	if leader != a {
		// Back to a for the second part: b steps down through SIGTERM.
		b.signal(syscall.SIGTERM)
		a.waitState("Validating", 60*time.Second)
		b.waitExit(30 * time.Second)
		b.start()
		b.waitState("Voting", 60*time.Second)
		c.statusLeader("a", 30*time.Second)
	}
	c.noDoubleSign()

	// Without the SIGINT: the lock free for a second with nobody taking
	// it ends the request early; a takes it back and nothing moved.
	b.signal(syscall.SIGSTOP)
	start := time.Now()
	out, code := c.op("handover", "--to", "b", "--window", "5m")
	t.Logf("handover --to a frozen b took %s", time.Since(start).Round(time.Millisecond))
	b.signal(syscall.SIGCONT)
	if code == 0 || !strings.Contains(out, "request ended early") || !strings.Contains(out, "nothing moved") {
		t.Fatalf("handover to a frozen target: exit %d, want non-zero with the request ended early", code)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatalf("the command took %s; the request should end about a second after the lock was freed", time.Since(start))
	}
	if h, _, err := ro.Handover(t.Context()); err != nil || h != nil {
		t.Fatalf("request left: %+v, %v", h, err)
	}
	a.waitState("Validating", 60*time.Second)
	b.waitState("Voting", 60*time.Second)
	c.statusLeader("a", 30*time.Second)
	c.noDoubleSign()
}
