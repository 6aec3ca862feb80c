//go:build e2e

package main

import (
	"testing"
	"time"
)

// TestSignerModeJoinsALaunch: two signer-mode replicas started together
// with a new chain (height 0) lead and sign: one whose validator the chain
// does not need for its first blocks (a quarter of the power), and one it
// needs (20 of 50: no block without it). No double sign.
func TestSignerModeJoinsALaunch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		powers []int64
		power  int64 // the HA validator's
	}{
		{"not needed for block 1", nil, 10},
		{"needed for block 1", signerPowers, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startChain(t, tc.powers)
			start := time.Now()
			a, b := c.signerReplica("a", 0), c.signerReplica("b", 1)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("a:\n%s\nb:\n%s", tailFile(a.logPath, 30), tailFile(b.logPath, 30))
				}
			})
			a.start()
			b.start()
			signed := c.firstSignedAfter(0, 90*time.Second)
			t.Logf("first signature at height %d, %s after the launch", signed, time.Since(start).Round(time.Millisecond))
			c.noDoubleSign(tc.power)
			oneSignaturePerHRS(t, a, b)
		})
	}
}
