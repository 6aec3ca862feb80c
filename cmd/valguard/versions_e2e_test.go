//go:build e2e

package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/localnet"
)

// TestCometBFTVersions runs valguard against nodes of the CometBFT
// versions of localnet.CometBFTMatrix (v0.39.4, v0.40.0, v1.0.1; the other
// tests run v0.38): on one localnet of that version, a graceful hand-over
// in the key-file mode, then in the signer mode (--signers leader), then
// two --signers any replicas of which one is SIGKILLed while the other
// signs on. After each: no evidence, no conflicting vote, power unchanged,
// and one sign-bytes value per height/round/step across the signer logs.
func TestCometBFTVersions(t *testing.T) {
	for _, v := range localnet.CometBFTMatrix {
		t.Run(v, func(t *testing.T) {
			bin := binaryOrSkip(t, func() (string, error) { return localnet.CometBFTVersionBinary(v) })
			c := startChainWith(t, bin, nil, consultest.Start(t), 0)
			if err := localnet.WaitHeight(t.Context(), c.rpc, 3); err != nil {
				t.Fatal(err)
			}
			c.handoverPhase("restart")
			c.handoverPhase("signer", "--sign-mode", "signer")
			if c.keyLinked(0) || c.keyLinked(1) {
				t.Fatal("a key link left in a replica home after the signer mode")
			}

			// Every replica signs: b's valguard and node are SIGKILLed,
			// a signs on.
			a, b := c.anyReplica("any-a", 0), c.anyReplica("any-b", 1)
			a.start()
			b.start()
			a.waitState("Validating", 90*time.Second)
			b.waitState("Validating", 90*time.Second)
			c.firstSignedAfter(c.height(), 60*time.Second)
			hKill := c.height()
			b.signal(syscall.SIGKILL)
			b.waitExit(5 * time.Second)
			signed := c.firstSignedAfter(hKill, 60*time.Second)
			if err := localnet.WaitHeight(t.Context(), c.rpc, hKill+10); err != nil {
				t.Fatal(err)
			}
			t.Logf("--signers any: b SIGKILLed at height %d, validator signed at %d; missed heights %d of (%d, %d]",
				hKill, signed, c.missedSince(hKill, hKill+10), hKill, hKill+10)
			c.noDoubleSign(10)
			var signers []*replica
			for _, r := range c.replicas {
				if strings.HasPrefix(r.id, "signer-") || strings.HasPrefix(r.id, "any-") {
					signers = append(signers, r)
				}
			}
			oneSignaturePerHRS(t, signers...)
		})
	}
}
