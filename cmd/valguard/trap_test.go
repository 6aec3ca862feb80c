//go:build e2e

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// signWithoutValguard makes the HA validator sign from replica home 0 with
// its key file linked in and no valguard, up to height h, then stops that
// node (with a third of the power or more the chain halts). The key link
// is left in the home; it returns the home.
func (c *localChain) signWithoutValguard(h int64) string {
	t := c.t
	ctx := t.Context()
	home := c.net.ReplicaHomes[0]
	link := filepath.Join(home, "config", "priv_validator_key.json")
	if err := os.Rename(link, link+".init"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(c.net.ValidatorKey, link); err != nil {
		t.Fatal(err)
	}
	direct := filepath.Join(c.dir, "direct-node.log")
	c.logs = append(c.logs, direct)
	p, err := c.net.StartNode(ctx, home, direct)
	if err != nil {
		t.Fatal(err)
	}
	if err := localnet.WaitHeight(ctx, c.rpc, h); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return home
}

// TestStaleSignStateTrap sets the trap of docs/testing.md (localnet facts) on purpose: validator 3
// holds 20 of 50 (≥ 1/3) of the power, so a restarted node of it skips
// block sync and, with a stale priv_validator_state.json, re-signs the
// heights it already signed. The validator first signs from replica home 0
// without valguard; that node is stopped (the chain halts without it), the
// home is left with the key still linked and a fresh state file, and valguard
// is started on it. valguard must unlink the key, sync as a voter, raise the
// state before signing (S8), and bring the chain back with no conflicting
// vote.
func TestStaleSignStateTrap(t *testing.T) {
	c := startChain(t, []int64{10, 10, 10, 20})
	ctx := t.Context()
	home := c.signWithoutValguard(12)
	halted := c.height()
	// The trap: a fresh sign state where the validator signed up to halted+1.
	state := filepath.Join(home, "data", "priv_validator_state.json")
	if err := os.WriteFile(state, []byte(`{"height":"0","round":0,"step":0}`), 0o600); err != nil {
		t.Fatal(err)
	}

	r := c.replica("a", 0, "--max-block-age", "0")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			_ = os.WriteFile("/tmp/trap-replica.log", b, 0o644)
		}
	})
	r.start()
	r.waitState("Validating", 2*time.Minute)
	// The validator node replays its own earlier vote from the WAL and tries
	// to sign again at the halt height: the raised state must refuse it.
	// The refusal must be the sign state's (a regression), not any other
	// failure to sign.
	refused := func() bool {
		for _, l := range strings.Split(tailFile(r.logPath, 5000), "\n") {
			if strings.Contains(l, "failed signing vote") && strings.Contains(l, "regression") {
				return true
			}
		}
		return false
	}
	if !within(ctx, 60*time.Second, refused) {
		t.Fatalf("the validator node never tried to re-sign; the trap was not armed:\n%s", tailFile(r.logPath, 40))
	}
	var raised float64
	for _, ev := range r.events() {
		if ev["message"] == "sign state raised" {
			raised, _ = ev["height"].(float64)
			t.Logf("sign state raised to height %v round %v (observed %v)", ev["height"], ev["round"], ev["observed"])
			break
		}
	}
	if int64(raised) <= halted {
		t.Fatalf("sign state raised to %v, not above the halt height %d", raised, halted)
	}
	// The chain stays halted (below), so no block can carry evidence: the
	// scan checks that the node has signed nothing since the raise.
	c.noDoubleSignHalted(20, home)
	// Not asserted: that the chain moves on. The old signer died in the
	// middle of height halted+1 holding ≥ 1/3 of the power, so the others wait
	// for its vote in that round; a new signer cannot know whether that vote
	// was cast, and signing it blindly could double-sign. See docs/operations.md, CometBFT specifics.
	t.Logf("chain halted at %d; valguard's validator refused to re-sign (height now %d)", halted, c.height())
}

// TestDoubleSignScanCatchesTwins points the double-sign scan at a chain
// where the validator double-signs on purpose: replica homes 0 and 1 both
// run its key, each with a fresh sign state, and no valguard. Their logs
// are not registered with the chain: the scan must find them itself. Once
// the first conflicting vote shows in a log, the scan must report all
// three signs: evidence in a block, the log lines, the lowered power.
func TestDoubleSignScanCatchesTwins(t *testing.T) {
	c := startChain(t, nil)
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	var twins []string
	for i := range 2 {
		home := c.net.ReplicaHomes[i]
		link := filepath.Join(home, "config", "priv_validator_key.json")
		if err := os.Rename(link, link+".own"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(c.net.ValidatorKey, link); err != nil {
			t.Fatal(err)
		}
		log := filepath.Join(c.dir, "twins", fmt.Sprintf("twin%d.log", i))
		p, err := c.net.StartNode(ctx, home, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
		twins = append(twins, log)
	}
	began := time.Now()
	var first []string
	if !within(ctx, 3*time.Minute, func() bool {
		first, _ = localnet.ConflictingVoteLines(twins...)
		return len(first) > 0
	}) {
		t.Fatal("the twins signed no conflicting vote within 3m: the trap was not armed")
	}
	hOffence := c.height()
	ev, err := localnet.DuplicateVoteEvidence(ctx, c.rpc, 1, hOffence)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first conflicting vote after %s, chain at %d: %s", time.Since(began).Round(time.Millisecond), hOffence, first[0])
	t.Logf("evidence in blocks 1..%d right then (no wait): %d", hOffence, len(ev))

	c.waitEvidenceBlocks()
	var kinds map[string]bool
	var findings []string
	var h int64
	ok := within(ctx, evidenceWait, func() bool {
		h, findings, err = c.doubleSignFindings(10)
		if err != nil {
			t.Fatal(err)
		}
		kinds = map[string]bool{}
		for _, f := range findings {
			switch {
			case strings.HasPrefix(f, "evidence on chain: "):
				kinds["evidence"] = true
			case strings.HasPrefix(f, "node log: "+filepath.Join(c.dir, "twins")):
				kinds["log"] = true
			case strings.HasPrefix(f, "validator power "):
				kinds["power"] = true
			}
		}
		return len(kinds) == 3
	})
	for _, f := range findings {
		if !strings.HasPrefix(f, "node log: ") {
			t.Logf("found at height %d: %s", h, f)
		}
	}
	if !ok {
		t.Fatalf("the scan at height %d saw %v of evidence, log, power; findings:\n%s", h, kinds, strings.Join(findings, "\n"))
	}
}
