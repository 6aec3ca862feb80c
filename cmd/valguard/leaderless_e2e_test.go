//go:build e2e

package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/localnet"
)

// anyReplica starts a replica of the leaderless signer policy.
func (c *localChain) anyReplica(id string, i int, extra ...string) *replica {
	return c.signerReplica(id, i, append([]string{"--signers", "any"}, extra...)...)
}

// TestLeaderlessEndToEnd runs two replicas of --signers any for a
// validator holding 2/5 of the power (the chain halts on any height it
// does not sign), and kills one of them (valguard with its node), then the
// other's node alone: the validator goes on signing from the survivor with
// no failover to wait for. It prints the missed heights around each kill,
// checks the usual three signs of a double sign, the replicas' signing
// logs (one sign-bytes value per height/round/step, the record only
// rising), and that a replica of the leader policy is refused while they
// run, naming both policies.
func TestLeaderlessEndToEnd(t *testing.T) {
	c := startChainHomes(t, signerPowers, consultest.Start(t), 3)
	ctx := t.Context()
	c.migrateFromFileKey(5)
	a, b := c.anyReplica("a", 0), c.anyReplica("b", 1)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a:\n%s\nb:\n%s", tailFile(a.logPath, 40), tailFile(b.logPath, 40))
		}
	})
	a.start()
	b.start()
	a.waitState("Validating", 90*time.Second)
	b.waitState("Validating", 90*time.Second)
	h0 := c.firstSignedAfter(c.height(), 60*time.Second)
	if err := localnet.WaitHeight(ctx, c.rpc, h0+8); err != nil {
		t.Fatal(err)
	}
	t.Logf("both signing: missed heights %d of (%d, %d]", c.missedSince(h0, h0+8), h0, h0+8)

	// A replica of the other policy is refused at start, naming both.
	l := c.signerReplica("l", 2)
	out, err := exec.Command(valguardBin, l.args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--signers any") || !strings.Contains(string(out), "--signers leader") {
		t.Fatalf("a leader-policy replica beside leaderless ones: err %v, output:\n%s", err, tailString(string(out), 15))
	}

	// SIGKILL of b's valguard (its node dies with it): a signs on.
	const window = 10
	hKill := c.height()
	b.signal(syscall.SIGKILL)
	b.waitExit(5 * time.Second)
	if err := localnet.WaitHeight(ctx, c.rpc, hKill+window); err != nil {
		t.Fatal(err)
	}
	missedKill := c.missedSince(hKill, hKill+window)
	t.Logf("replica b (valguard and node) SIGKILLed at height %d: missed heights %d of (%d, %d]", hKill, missedKill, hKill, hKill+window)

	// b back; then a's node alone is SIGKILLed: b signs on while a's
	// valguard restarts its node.
	b.start()
	b.waitState("Validating", 90*time.Second)
	hNode := c.height()
	if pid := a.nodePID(); pid <= 0 {
		t.Fatal("no node pid for a")
	} else if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := localnet.WaitHeight(ctx, c.rpc, hNode+window); err != nil {
		t.Fatal(err)
	}
	missedNode := c.missedSince(hNode, hNode+window)
	t.Logf("replica a's node SIGKILLed at height %d: missed heights %d of (%d, %d]", hNode, missedNode, hNode, hNode+window)
	a.waitState("Validating", 90*time.Second)
	c.noDoubleSign(20)
	oneSignaturePerHRS(t, a, b)

	// Both replicas signed, and each won races.
	for _, r := range []*replica{a, b} {
		won := 0
		for _, ev := range r.events() {
			if ev["message"] == "sign request" && ev["result"] == "signed" {
				won++
			}
		}
		if won == 0 {
			t.Errorf("replica %s never signed first: the policy did not let it sign", r.id)
		}
	}
	// A kill costs no failover: at most the height in progress.
	if missedKill > 1 || missedNode > 1 {
		t.Errorf("missed heights after a kill: %d (valguard and node), %d (node alone); want none but the height in progress", missedKill, missedNode)
	}
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
