package election_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

// Watermarks as the two modes publish them: the signer's names its chain,
// the restart mode's (priv_validator_state.json) does not.
const (
	signerWatermark  = `{"chain_id":"c","height":"3","round":0,"step":2}`
	restartWatermark = `{"height":"3","round":0,"step":2}`
)

// namesChain is Config.WrittenFenced as the signer gives it: a watermark
// that names its chain was written by a signer-mode (Fenced) replica.
func namesChain(watermark []byte) bool {
	var probe struct {
		ChainID string `json:"chain_id"`
	}
	return json.Unmarshal(watermark, &probe) == nil && probe.ChainID != ""
}

// releasedLockKey writes a free lock key with a fresh clean-release
// marker, so that the first take of it does not wait.
func releasedLockKey(t *testing.T, admin *api.Client, e *election.Election) {
	t.Helper()
	value, _ := json.Marshal(election.LeaderInfo{ReplicaID: "x", Hostname: "host-x", Since: time.Now().Add(-time.Minute), Released: true, ReleasedAt: time.Now()})
	if _, err := admin.KV().Put(&api.KVPair{Key: e.LockKey(), Value: value}, nil); err != nil {
		t.Fatalf("write a released lock key: %v", err)
	}
}

// A lock key deleted (an operator, a snapshot restore) under a leader of a
// mixed fleet: the Fenced standby takes the absent key at once, and skips
// the unclean-takeover wait only when the watermark key shows no key-file
// (restart mode) replica signed last. A key-file leader keeps signing
// until its next lock check plus StopMargin, which no fence stops: on the
// code before the fix the Fenced standby led at once after such a leader,
// two signers.
func TestFencedTakeOfDeletedLockKeyInMixedFleet(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	cases := []struct {
		name string
		// leaderFenced: the leader is a Fenced (signer mode) replica, else
		// a key-file one; watermark: what it published ("": nothing).
		leaderFenced bool
		watermark    string
		// writtenFenced: the standby has Config.WrittenFenced = namesChain;
		// failRead: the standby's reads of the watermark key fail.
		writtenFenced bool
		failRead      bool
		// wantWhy: the unclean-takeover reason names this ("": no wait).
		wantWhy string
	}{
		{"key-file leader, restart-mode watermark", false, restartWatermark, true, false, "key-file"},
		{"key-file leader, restart-mode watermark, WrittenFenced nil", false, restartWatermark, false, false, "WrittenFenced is not set"},
		{"signer leader, signer watermark, WrittenFenced nil", true, signerWatermark, false, false, "WrittenFenced is not set"},
		{"signer leader, signer watermark, watermark unreadable", true, signerWatermark, true, true, "could not be read"},
		{"signer leader, signer watermark", true, signerWatermark, true, false, ""},
		{"signer leader, no watermark (a new validator)", true, "", true, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			admin := agent.Client(t)
			v := validatorID(t)
			leaderEdit := func(c *election.Config) {}
			if tc.leaderFenced {
				leaderEdit = fenced
			}
			ra := newReplica(t, agent.Client(t), v, "a", leaderEdit)
			client, rec := recordingClient(t, agent.Addr)
			rb := newReplica(t, client, v, "b", fenced, func(c *election.Config) {
				c.WrittenFenced = nil
				if tc.writtenFenced {
					c.WrittenFenced = namesChain
				}
			})
			releasedLockKey(t, admin, ra.e)
			sa, sb := ra.session(t), rb.session(t)
			mustAcquire(t, sa, fencedAcquire)
			switch {
			case tc.watermark == "":
			case tc.leaderFenced:
				mustFence(t, admin, ra, sa, tc.watermark, 0)
			default:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := sa.Publish(ctx, []byte(tc.watermark))
				cancel()
				if err != nil {
					t.Fatalf("key-file leader's Publish: %v", err)
				}
			}
			if tc.failRead {
				k := rb.e.WatermarkKey()
				rec.failGet.Store(&k)
			}
			chb := acquireAsync(context.Background(), sb)
			time.Sleep(200 * time.Millisecond)

			start := time.Now()
			if _, err := admin.KV().Delete(ra.e.LockKey(), nil); err != nil {
				t.Fatal(err)
			}
			if tc.wantWhy == "" {
				res := waitResult(t, chb, fencedAcquire, "Fenced standby after the delete")
				if res.err != nil {
					t.Fatalf("standby Acquire: %v", res.err)
				}
				t.Logf("lock key deleted → Fenced standby leads in %s", res.at.Sub(start).Round(time.Millisecond))
				if n := rb.unclean.Load(); n != 0 {
					_, why := rb.lastUnclean()
					t.Errorf("OnUncleanTakeover called %d times (%q), want none", n, why)
				}
				return
			}
			// The standby takes the key at once and holds it while it waits.
			time.Sleep(time.Second)
			if l := leader(t, rb.e); l == nil || l.ReplicaID != "b" {
				t.Errorf("a second after the delete the lock is held by %+v, want the standby b", l)
			}
			res := waitResult(t, chb, uncleanWait+5*time.Second, "Fenced standby after the delete")
			if res.err != nil {
				t.Fatalf("standby Acquire: %v", res.err)
			}
			took := res.at.Sub(start)
			_, why := rb.lastUnclean()
			t.Logf("lock key deleted → Fenced standby leads after %s; reason: %s", took.Round(time.Millisecond), why)
			if n := rb.unclean.Load(); n != 1 {
				t.Fatalf("OnUncleanTakeover called %d times, want 1: the previous leader may still sign", n)
			}
			if !strings.Contains(why, tc.wantWhy) {
				t.Errorf("unclean-takeover reason %q does not name %q", why, tc.wantWhy)
			}
			if took < uncleanWait {
				t.Errorf("Fenced standby led %s after the delete, want at least the unclean-takeover wait %s from its take", took, uncleanWait)
			}
		})
	}
}
