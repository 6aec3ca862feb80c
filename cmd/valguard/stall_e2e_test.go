//go:build e2e

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// TestChainWideStallKeepsTheLeader: two of the three other validators
// stop, so the chain stops (half the power gone) and the leader's node
// votes at the next height and waits. With --max-stall 10s the leader used
// to lose the lock every few seconds (its recovery restart started a node
// that could not listen on the signer socket the stopped one left, and
// the stall rule stepped down), handing the stall to the standby and back;
// now it restarts its node once, keeps the lock, says why it stays, and
// signs again as soon as the chain moves.
func TestChainWideStallKeepsTheLeader(t *testing.T) {
	c := startChain(t, nil)
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	a, b := c.signerReplica("a", 0, "--max-stall", "10s"), c.signerReplica("b", 1, "--max-stall", "10s")
	c.leaderAndStandby(a, b)
	if len(c.validators) < 3 {
		t.Fatalf("%d other validators", len(c.validators))
	}
	// Stop two validators other than the one the test reads the chain from.
	var stopped []string
	for i, home := range c.net.Homes {
		if i == c.net.HA || i == 0 || len(stopped) == 2 {
			continue
		}
		stopped = append(stopped, home)
	}
	for _, p := range c.validators[len(c.validators)-2:] {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	stalledAt := c.height()
	time.Sleep(35 * time.Second) // three --max-stall periods
	for _, r := range []*replica{a, b} {
		for _, ev := range r.events() {
			if m, _ := ev["message"].(string); m == "state change" || strings.Contains(m, "stall") || strings.Contains(m, "chain") || strings.Contains(m, "recovery") {
				t.Logf("%s %v %s state=%v reason=%v", r.id, ev["time"], m, ev["state"], ev["reason"])
			}
		}
	}
	if h := c.height(); h > stalledAt+1 {
		t.Fatalf("the chain moved from %d to %d with half its power stopped", stalledAt, h)
	}
	if a.state() != "Validating" || b.state() != "Voting" {
		t.Fatalf("a stall of the whole chain moved the lock: a %s, b %s", a.state(), b.state())
	}
	said := false
	for _, ev := range a.events() {
		if m, _ := ev["message"].(string); strings.Contains(m, "the chain waits for other validators; not stepping down") {
			said = true
		}
		if m, _ := ev["message"].(string); m == "stepping down" {
			t.Fatalf("the leader stepped down: %v", ev)
		}
	}
	if !said {
		t.Fatal("the leader did not say why it stays")
	}
	// The validators come back: the chain moves and the leader signs.
	for i, home := range stopped {
		p, err := c.net.StartNode(ctx, home, filepath.Join(c.dir, "restarted-"+string(rune('0'+i))+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	}
	signed := c.firstSignedAfter(stalledAt+1, 90*time.Second)
	t.Logf("chain stopped at %d for 35 s with no step-down; first signature at height %d after the validators came back", stalledAt, signed)
	c.noDoubleSign(10)
	oneSignaturePerHRS(t, a, b)
}
