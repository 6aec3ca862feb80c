//go:build e2e

package main

import (
	"sync"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/localnet"
)

// lockKey is the lock key a replica logged at start.
func lockKey(t *testing.T, r *replica) string {
	t.Helper()
	for _, ev := range r.events() {
		if k, ok := ev["lock_key"].(string); ok && ev["message"] == "valguard starting" {
			return k
		}
	}
	t.Fatalf("replica %s logged no lock key", r.id)
	return ""
}

// overlapSampler samples both replicas' states every 100 ms and the old
// leader's validator node, on the test's clock.
type overlapSampler struct {
	mu        sync.Mutex
	overlaps  []time.Time // both Validating
	oldLeft   time.Time   // first sample with the old leader not Validating
	nodeDead  time.Time   // first sample with the old leader's validator node gone
	newLeader time.Time   // first sample with the standby Validating
	stop      chan struct{}
	stopped   chan struct{}
}

func sampleOverlap(old, standby *replica, oldNode int) *overlapSampler {
	s := &overlapSampler{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(s.stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			a, b := old.state(), standby.state()
			s.mu.Lock()
			if a == "Validating" && b == "Validating" {
				s.overlaps = append(s.overlaps, now)
			}
			if a != "Validating" && s.oldLeft.IsZero() {
				s.oldLeft = now
			}
			if !alive(oldNode) && s.nodeDead.IsZero() {
				s.nodeDead = now
			}
			if b == "Validating" && s.newLeader.IsZero() {
				s.newLeader = now
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *overlapSampler) end() {
	close(s.stop)
	<-s.stopped
}

// Issue item 3: the lock key deleted under a validating leader. The
// standby takes the free key at once but becomes leader only after the
// unclean-takeover wait; by then the old leader has seen the key gone,
// stopped its validator node and left Validating. Never two replicas
// Validating, no double sign.
func TestLockKeyDeletedEndToEnd(t *testing.T) {
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
	oneSigner(t, a, b)
	c.firstSignedAfter(c.height(), 60*time.Second)
	c.noDoubleSign(10)

	key := lockKey(t, a)
	if kb := lockKey(t, b); kb != key {
		t.Fatalf("replicas use different lock keys %q and %q", key, kb)
	}
	nodeA := a.nodePID()
	sampler := sampleOverlap(a, b, nodeA)
	hDel, deleted := c.height(), time.Now()
	if _, err := consultest.NewClient(t, c.consul.Addr).KV().Delete(key, nil); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	b.waitState("Validating", 60*time.Second)
	// Only a signature above the height in progress when the standby took
	// over is its own: the old leader may have signed hDel+1 before it saw
	// the key gone.
	signed := c.firstSignedAfter(c.height()+1, 60*time.Second)
	signedAt := time.Now()
	// More samples after the hand-over, while the chain moves on.
	if err := localnet.WaitHeight(ctx, c.rpc, signed+1); err != nil {
		t.Fatal(err)
	}
	sampler.end()

	sampler.mu.Lock()
	overlaps, oldLeft, nodeDead, newLeader := sampler.overlaps, sampler.oldLeft, sampler.nodeDead, sampler.newLeader
	sampler.mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("both replicas Validating in %d samples, first %s after the delete", len(overlaps), overlaps[0].Sub(deleted))
	}
	if oldLeft.IsZero() || nodeDead.IsZero() || newLeader.IsZero() {
		t.Fatalf("sampler saw old leader leave %v, its node die %v, new leader %v", !oldLeft.IsZero(), !nodeDead.IsZero(), !newLeader.IsZero())
	}
	if !nodeDead.Before(newLeader) {
		t.Errorf("old leader's validator node %d seen gone %s after the delete, not before the standby Validating (%s)",
			nodeA, nodeDead.Sub(deleted), newLeader.Sub(deleted))
	}
	// The standby's Acquire waits max(lock-delay, TTL) = 10s by default.
	if took := newLeader.Sub(deleted); took < 10*time.Second {
		t.Errorf("standby Validating %s after the delete, want after the unclean-takeover wait (10s)", took)
	}
	t.Logf("lock key deleted at height %d: old leader out of Validating after %s, its node gone after %s; "+
		"standby Validating after %s, first signature at height %d after %s",
		hDel, oldLeft.Sub(deleted).Round(time.Millisecond), nodeDead.Sub(deleted).Round(time.Millisecond),
		newLeader.Sub(deleted).Round(time.Millisecond), signed, signedAt.Sub(deleted).Round(time.Millisecond))

	c.noDoubleSign(10) // waits a few blocks: evidence lands after the offence
	a.waitState("Voting", 90*time.Second)
	if c.keyLinked(0) {
		t.Error("old leader has the validator key linked after stepping down")
	}
}
