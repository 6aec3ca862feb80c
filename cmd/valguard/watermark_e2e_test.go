//go:build e2e

package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/localnet"
)

// storedHeight is the height of the signer-mode watermark under key; 0
// when the key is absent.
func storedHeight(t *testing.T, kv *api.KV, key string) (int64, bool) {
	t.Helper()
	p, _, err := kv.Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(t.Context()))
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if p == nil {
		return 0, false
	}
	var wm struct {
		Height string `json:"height"`
	}
	if err := json.Unmarshal(p.Value, &wm); err != nil {
		t.Fatalf("watermark %s: %v (%s)", key, err, p.Value)
	}
	h, err := strconv.ParseInt(wm.Height, 10, 64)
	if err != nil {
		t.Fatalf("watermark height %q: %v", wm.Height, err)
	}
	return h, true
}

// logged reports whether replica r logged an event whose message starts
// with prefix.
func logged(r *replica, prefix string) bool {
	for _, ev := range r.events() {
		if m, _ := ev["message"].(string); strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// TestWatermarkDeletedEndToEnd: the signer-mode watermark key deleted in
// Consul (an operator, a restore) is never taken as "no history". Deleted
// under a signing leader: the leader writes back what it holds and signs
// on, no failover. Deleted while the leader is dead: the standby that
// takes over raises it above the chain's latest height and its own floor
// before it signs. No double sign, one signature per height/round/step.
func TestWatermarkDeletedEndToEnd(t *testing.T) {
	c := startChain(t, nil)
	if err := localnet.WaitHeight(t.Context(), c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	a, b := c.signerReplica("a", 0), c.signerReplica("b", 1)
	c.leaderAndStandby(a, b)
	kv := c.consul.Client(t).KV()
	key := strings.TrimSuffix(lockKey(t, a), "leader") + "watermark"
	before, ok := storedHeight(t, kv, key)
	if !ok || before == 0 {
		t.Fatalf("no watermark under %s while the leader signs", key)
	}

	// Deleted under the leader.
	if _, err := kv.Delete(key, nil); err != nil {
		t.Fatal(err)
	}
	h := c.height()
	c.firstSignedAfter(h+1, 60*time.Second)
	after, ok := storedHeight(t, kv, key)
	if !ok || after < before {
		t.Fatalf("watermark after the deletion: %d (present %v), was %d", after, ok, before)
	}
	if !logged(a, "watermark key absent in consul while leading: wrote back") {
		t.Fatal("the leader did not say it wrote the watermark back")
	}
	if a.state() != "Validating" || b.state() != "Voting" {
		t.Fatalf("a failover for a deleted watermark: a %s, b %s", a.state(), b.state())
	}
	t.Logf("deleted under the leader: written back at height %d (was %d), leader signing on", after, before)

	// Deleted while the leader is dead: the standby raises it.
	a.signal(syscall.SIGKILL)
	a.waitExit(5 * time.Second)
	if _, err := kv.Delete(key, nil); err != nil {
		t.Fatal(err)
	}
	hKill := c.height()
	took := b.waitState("Validating", 60*time.Second)
	hTake := c.height()
	signed := c.firstSignedAfter(hKill, 60*time.Second)
	if _, ok := storedHeight(t, kv, key); !ok {
		t.Fatal("no watermark after the new leader's take")
	}
	var raised, chainAtTake int64 = -1, -1
	for _, ev := range b.events() {
		if ev["message"] == "watermark in consul raised above everything that may have been signed, and written back" && ev["reason"] == "missing" {
			w, _ := ev["watermark"].(string)
			raised, _ = strconv.ParseInt(strings.Split(w, "/")[0], 10, 64)
			ch, _ := ev["chain_height"].(float64)
			chainAtTake = int64(ch)
		}
	}
	if raised < 0 {
		t.Fatal("the new leader did not say it raised the missing watermark")
	}
	// Above the chain's latest committed height when it led (that whole
	// height blocked), and so above everything the dead leader signed.
	if raised <= chainAtTake || raised <= after {
		t.Fatalf("the missing watermark was raised to height %d, the chain being at %d and the old leader's watermark at %d", raised, chainAtTake, after)
	}
	if signed <= raised {
		t.Fatalf("the new leader's first signature at height %d, not above the height %d it blocked", signed, raised)
	}
	t.Logf("deleted with the leader dead: Validating %s after the kill, the chain at %d (its node at %d) when it led, %d at the kill; raised to height %d; first signature at height %d",
		took.Round(time.Millisecond), hTake, chainAtTake, hKill, raised, signed)
	c.noDoubleSign(10)
	oneSignaturePerHRS(t, a, b)
}
