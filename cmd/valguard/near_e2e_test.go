//go:build e2e

package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNEARFailoverHot: two replicas with stand-ins of neard 2.1.1 and
// --promotion auto, so every takeover is a hot promotion (SIGHUP). The
// scenarios of kuutamod's test_multiple_nodes, and more; after each the
// journal shows no height produced twice.
func TestNEARFailoverHot(t *testing.T) {
	c := newNEARCluster(t)
	a, b := c.replica("a", "auto", nil), c.replica("b", "auto", nil)
	oneValidator(t, a, b)
	ctx := t.Context()

	a.start()
	a.waitState("Validating", 60*time.Second)
	b.start()
	b.waitState("Voting", 60*time.Second)
	if out, code := c.activeValidator(); code != 0 || !strings.Contains(out, "replica a ") {
		t.Fatalf("active-validator (exit %d): %s", code, out)
	}
	if !a.validatorLoaded() || b.validatorLoaded() {
		t.Fatalf("validator key loaded: a %v, b %v; want only a", a.validatorLoaded(), b.validatorLoaded())
	}
	// Hot promotion kept a's voter node key and port; b is a voter.
	for _, r := range []*nearReplica{a, b} {
		if !listening(r.voterAddr) || listening(r.validAddr) {
			t.Fatalf("replica %s: voter port listening %v, validator port %v", r.id, listening(r.voterAddr), listening(r.validAddr))
		}
	}
	if b.link("validator_key.json") != "" || a.link("validator_key.json") != c.key {
		t.Fatalf("validator key links: a %q, b %q", a.link("validator_key.json"), b.link("validator_key.json"))
	}
	nodeA := a.nodePID()
	c.producing(nodeA, 10*time.Second)
	c.noDoubleSign()

	// SIGKILL the leader's neard: its valguard releases at once, b takes
	// over without restarting its neard, a comes back as a voter.
	nodeB := b.nodePID()
	killed := time.Now()
	if err := syscall.Kill(nodeA, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := b.waitState("Validating", 30*time.Second)
	c.producing(nodeB, 10*time.Second)
	t.Logf("neard SIGKILL → b Validating %s, → b producing %s", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if b.nodePID() != nodeB {
		t.Fatal("hot promotion restarted b's neard")
	}
	a.waitState("Voting", 60*time.Second)
	if a.link("validator_key.json") != "" || a.validatorLoaded() {
		t.Fatal("a returned with the validator key")
	}
	c.noDoubleSign()

	// SIGTERM the leader's valguard: neard stopped (1 s shutdown), lock
	// released, a takes over hot.
	nodeA = a.nodePID()
	term := time.Now()
	b.signal(syscall.SIGTERM)
	a.waitState("Validating", 30*time.Second)
	c.producing(nodeA, 10*time.Second)
	t.Logf("valguard SIGTERM → a producing %s", time.Since(term).Round(time.Millisecond))
	b.waitExit(30 * time.Second)
	if alive(nodeB) {
		t.Fatal("b's neard outlived its valguard's shutdown")
	}
	if b.link("validator_key.json") != "" {
		t.Fatal("b left the validator key linked")
	}
	c.noDoubleSign()

	// SIGKILL the leader's valguard: its neard dies with it (S9); b takes
	// over once Consul expires the session.
	b.start()
	b.waitState("Voting", 60*time.Second)
	nodeB = b.nodePID()
	killed = time.Now()
	a.signal(syscall.SIGKILL)
	a.waitExit(5 * time.Second)
	if !within(ctx, 5*time.Second, func() bool { return !alive(nodeA) }) {
		t.Fatalf("neard %d outlived its killed valguard", nodeA)
	}
	took = b.waitState("Validating", 60*time.Second)
	c.producing(nodeB, 10*time.Second)
	t.Logf("valguard SIGKILL → b Validating %s, → b producing %s", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if out, code := c.activeValidator(); code != 0 || !strings.Contains(out, "replica b ") {
		t.Fatalf("active-validator (exit %d): %s", code, out)
	}
	c.noDoubleSign()
}

// TestNEARRestartPromotion: a is forced to --promotion restart; b runs a
// neard 2.0 under --promotion auto, so it must restart too. Validator and
// voter ports, node keys and public_addrs are as configured.
func TestNEARRestartPromotion(t *testing.T) {
	c := newNEARCluster(t)
	// a's neard takes 4 s to shut down and produces meanwhile, b's restarts
	// in under 1 s: were the lock released before a's neard is reaped, b
	// would produce heights a also produces, and the journal would show it.
	a := c.replica("a", "restart", []string{"STANDIN_SHUTDOWN_DELAY=4s"})
	b := c.replica("b", "auto", []string{"STANDIN_VERSION=2.0.0", "STANDIN_SHUTDOWN_DELAY=100ms"})
	oneValidator(t, a, b)

	a.start()
	a.waitState("Validating", 60*time.Second)
	b.start()
	b.waitState("Voting", 60*time.Second)
	if !listening(a.validAddr) || listening(a.voterAddr) {
		t.Fatalf("validator a: validator port listening %v, voter port %v", listening(a.validAddr), listening(a.voterAddr))
	}
	if !listening(b.voterAddr) || listening(b.validAddr) {
		t.Fatalf("voter b: voter port listening %v, validator port %v", listening(b.voterAddr), listening(b.validAddr))
	}
	if got := a.configGet("network.addr").String(); got != a.validAddr {
		t.Fatalf("a network.addr %s, want %s", got, a.validAddr)
	}
	if got := a.configGet("network.public_addrs.0").String(); got != c.vnodePK+"@127.0.0.1:"+strings.Split(a.validAddr, ":")[1] {
		t.Fatalf("a public_addrs[0] = %q", got)
	}
	if got := a.link("node_key.json"); got != c.vnode {
		t.Fatalf("a node_key.json -> %q, want the validator node key", got)
	}
	if got := gjsonString(a.status(), "node_public_key"); got != c.vnodePK {
		t.Fatalf("a's neard runs with node key %s, want the validator's %s", got, c.vnodePK)
	}
	if got := b.configGet("network.public_addrs").Raw; got != "[]" {
		t.Fatalf("b public_addrs = %s", got)
	}
	nodeA, nodeB := a.nodePID(), b.nodePID()
	c.producing(nodeA, 10*time.Second)

	// SIGTERM a: b (neard 2.0) is promoted by restarting its neard.
	term := time.Now()
	a.signal(syscall.SIGTERM)
	b.waitState("Validating", 30*time.Second)
	if b.nodePID() == nodeB {
		t.Fatal("b was promoted without a restart although its neard is 2.0")
	}
	c.producing(b.nodePID(), 10*time.Second)
	t.Logf("restart promotion: valguard SIGTERM → b producing %s (stand-ins: a 4s shutdown; b 0.1s shutdown, 0.3s start, 0.5s sync)", time.Since(term).Round(time.Millisecond))
	if !listening(b.validAddr) {
		t.Fatal("b's validator port is not listening")
	}
	a.waitExit(30 * time.Second)
	if evs := events(b.replica, "promotion mode chosen from neard's version"); len(evs) == 0 || evs[0]["hot"] != false {
		t.Fatalf("b's promotion choice: %v", evs)
	}
	c.noDoubleSign()

	// SIGKILL b's neard: b releases, restarts as a voter; a comes back and
	// takes over by restart.
	a.start()
	a.waitState("Voting", 60*time.Second)
	killed := time.Now()
	if err := syscall.Kill(b.nodePID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.waitState("Validating", 30*time.Second)
	c.producing(a.nodePID(), 10*time.Second)
	t.Logf("restart promotion: neard SIGKILL → a producing %s", time.Since(killed).Round(time.Millisecond))
	b.waitState("Voting", 60*time.Second)
	c.noDoubleSign()
}

// TestNEARHotPromotionNotConfirmed: b's neard accepts SIGHUP but never
// loads the key. When a leaves, b's promotion fails: its neard is killed,
// the lock released, the key unlinked; b never counts as Validating and
// its neard never produces.
func TestNEARHotPromotionNotConfirmed(t *testing.T) {
	c := newNEARCluster(t)
	a := c.replica("a", "auto", nil)
	b := c.replica("b", "hot", []string{"STANDIN_SIGHUP=ignore"}, "--max-start-failures", "2")
	oneValidator(t, a, b)
	a.start()
	a.waitState("Validating", 60*time.Second)
	b.start()
	b.waitState("Voting", 60*time.Second)
	nodeB := b.nodePID()

	a.signal(syscall.SIGTERM)
	a.waitExit(30 * time.Second)
	ok := within(t.Context(), 20*time.Second, func() bool { return len(events(b.replica, "hot promotion failed: killing the node")) > 0 })
	if !ok {
		t.Fatalf("no failed hot promotion logged; b log:\n%s", tailFile(b.logPath, 30))
	}
	if !within(t.Context(), 5*time.Second, func() bool { return !alive(nodeB) }) {
		t.Fatal("b's neard still runs after a failed promotion")
	}
	// b keeps trying and failing until its crash-loop limit, then exits.
	b.waitExit(90 * time.Second)
	for _, ev := range events(b.replica, "state change") {
		if ev["state"] == "Validating" {
			t.Fatalf("b entered Validating: %v", ev)
		}
	}
	started := events(b.replica, "node started")
	if len(started) < 2 {
		t.Fatalf("b started %d neards, want one per attempt (at least 2)", len(started))
	}
	for _, ev := range started {
		pid, _ := ev["pid"].(float64)
		if n := c.producedBy(int(pid)); n > 0 {
			t.Fatalf("b's neard %d produced %d heights", int(pid), n)
		}
	}
	if b.link("validator_key.json") != "" {
		t.Fatal("b left the validator key linked after a failed promotion")
	}
	if out, code := c.activeValidator(); code != 1 {
		t.Fatalf("lock still held after the failed promotion (exit %d): %s", code, out)
	}
	c.noDoubleSign()

	// A healthy replica takes over afterwards.
	a.start()
	a.waitState("Validating", 60*time.Second)
	c.producing(a.nodePID(), 10*time.Second)
	c.noDoubleSign()
}

// events returns r's valguard events with message msg.
func events(r *replica, msg string) []map[string]any {
	var out []map[string]any
	for _, ev := range r.events() {
		if ev["message"] == msg {
			out = append(out, ev)
		}
	}
	return out
}
