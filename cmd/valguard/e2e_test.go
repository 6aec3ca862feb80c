package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/scripts/localnet"
)

// chain is a running localnet with Consul, for end-to-end tests.
type chain struct {
	t      *testing.T
	net    *localnet.Net
	consul *consultest.Agent
	rpc    string // a validator's RPC, for chain checks
	logs   []string
	dir    string
}

func cometbftOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := localnet.CometBFTBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (make test installs it)", err)
		}
		t.Skip(err)
	}
	return bin
}

func startChain(t *testing.T, powers []int64) *chain {
	t.Helper()
	bin := cometbftOrSkip(t)
	agent := consultest.Start(t)
	dir := t.TempDir()
	ctx := t.Context()
	n, err := localnet.Create(ctx, localnet.Config{Dir: dir, Binary: bin, Powers: powers})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := n.StartValidators(ctx, filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	c := &chain{t: t, net: n, consul: agent, rpc: n.RPC(n.Homes[0]), dir: dir}
	for _, p := range procs {
		c.logs = append(c.logs, p.LogPath)
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	}
	return c
}

// replica starts a valguard replica on replica home i.
func (c *chain) replica(id string, i int, extra ...string) *replica {
	args := append([]string{
		"--node-home", c.net.ReplicaHomes[i], "--node-binary", c.net.Binary,
		"--validator-key", c.net.ValidatorKey, "--consul-url", "http://" + c.consul.Addr,
		"--stop-timeout", "10s",
	}, extra...)
	r := newReplica(c.t, id, c.dir, args...)
	c.logs = append(c.logs, r.logPath)
	return r
}

func (c *chain) height() int64 {
	h, err := localnet.Height(c.t.Context(), c.rpc)
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

// firstSignedAfter waits for the HA validator to sign a height > after and
// returns it.
func (c *chain) firstSignedAfter(after int64, d time.Duration) int64 {
	c.t.Helper()
	ctx := c.t.Context()
	var got int64
	ok := within(ctx, d, func() bool {
		h, err := localnet.Height(ctx, c.rpc)
		if err != nil {
			return false
		}
		for x := after + 1; x <= h; x++ {
			if s, err := localnet.SignedAt(ctx, c.rpc, c.net.HAAddress, x); err == nil && s {
				got = x
				return true
			}
		}
		return false
	})
	if !ok {
		c.t.Fatalf("validator %s signed nothing after height %d within %s", c.net.HAAddress, after, d)
	}
	return got
}

// noDoubleSign checks the three signs of a double-sign (FACTS.md): no
// DuplicateVoteEvidence in any block, no conflicting vote in any node log,
// the validator's power unchanged.
func (c *chain) noDoubleSign(power int64) {
	c.t.Helper()
	ctx := c.t.Context()
	h := c.height()
	ev, err := localnet.DuplicateVoteEvidence(ctx, c.rpc, 1, h)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(ev) > 0 {
		c.t.Fatalf("double-sign evidence on chain: %v", ev)
	}
	var logs []string
	for _, l := range c.logs {
		if _, err := os.Stat(l); err == nil {
			logs = append(logs, l)
		}
	}
	lines, err := localnet.ConflictingVoteLines(logs...)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(lines) > 0 {
		c.t.Fatalf("conflicting votes in node logs:\n%s", strings.Join(lines, "\n"))
	}
	p, err := localnet.Power(ctx, c.rpc, c.net.HAAddress)
	if err != nil {
		c.t.Fatal(err)
	}
	if p != power {
		c.t.Fatalf("validator power %d, want %d", p, power)
	}
	c.t.Logf("checked heights 1..%d: no evidence, no conflicting votes, power %d", h, p)
}

// keyLinked reports whether the validator key is linked in a replica home.
func (c *chain) keyLinked(i int) bool {
	target, err := os.Readlink(filepath.Join(c.net.ReplicaHomes[i], "config", "priv_validator_key.json"))
	return err == nil && target == c.net.ValidatorKey
}

func TestFailoverEndToEnd(t *testing.T) {
	c := startChain(t, nil)
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	a, b := c.replica("a", 0), c.replica("b", 1)
	a.start()
	a.waitState("Validating", 90*time.Second)
	b.start()
	b.waitState("Voting", 90*time.Second)
	if !c.keyLinked(0) || c.keyLinked(1) {
		t.Fatalf("key links: a %v, b %v; want only a", c.keyLinked(0), c.keyLinked(1))
	}
	c.firstSignedAfter(c.height(), 60*time.Second)
	c.noDoubleSign(10)

	// SIGKILL the leader's valguard: its node dies with it (S9) and the
	// standby takes over once Consul expires the session.
	nodeA := a.nodePID()
	killedAt, hKill := time.Now(), c.height()
	a.signal(syscall.SIGKILL)
	a.waitExit(5 * time.Second)
	if !within(ctx, 5*time.Second, func() bool { return !alive(nodeA) }) {
		t.Fatalf("node %d of the killed valguard still runs", nodeA)
	}
	took := b.waitState("Validating", 60*time.Second)
	signed := c.firstSignedAfter(hKill, 60*time.Second)
	t.Logf("crash failover: kill→Validating %s, kill→first signature %s (height %d, killed at %d)",
		took.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond), signed, hKill)
	c.noDoubleSign(10)

	// The first replica comes back as a voter, with no key link.
	a.start()
	a.waitState("Voting", 90*time.Second)
	if c.keyLinked(0) {
		t.Fatal("restarted replica a has the validator key linked while voting")
	}

	// SIGTERM the new leader: a fast hand-over to a.
	hTerm, termAt := c.height(), time.Now()
	b.signal(syscall.SIGTERM)
	a.waitState("Validating", 30*time.Second)
	handover := time.Since(termAt)
	b.waitExit(30 * time.Second)
	if c.keyLinked(1) {
		t.Fatal("replica b left the validator key linked after shutdown")
	}
	signed = c.firstSignedAfter(hTerm, 60*time.Second)
	t.Logf("graceful hand-over: SIGTERM→Validating %s, →first signature %s (height %d, SIGTERM at %d)",
		handover.Round(time.Millisecond), time.Since(termAt).Round(time.Millisecond), signed, hTerm)
	c.noDoubleSign(10)

	b.start()
	b.waitState("Voting", 90*time.Second)
	if c.keyLinked(1) {
		t.Fatal("restarted replica b has the validator key linked while voting")
	}
	c.firstSignedAfter(c.height(), 60*time.Second)
	c.noDoubleSign(10)
}
