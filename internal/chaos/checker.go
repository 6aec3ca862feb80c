package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cometbft/cometbft/libs/protoio"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/valguard/valguard/internal/localnet"
)

// evidenceBlocks is how far past the height at a check the chain must get
// before the scan: evidence lands a block or two after the offence.
const evidenceBlocks = 3

// Checker looks for any sign of a double sign of the HA validator:
// DuplicateVoteEvidence in a block, a conflicting vote in a node log, a
// change of its power (localnet.DoubleSignFindings), and more than one
// sign-bytes value (timestamps aside) per height/round/step — from
// valguard's signing logs in the signer mode
// (localnet.OneSignaturePerHRS), from the replica nodes'
// priv_validator_state.json, sampled every 20 ms, in the key-file mode.
type Checker struct {
	rig     *Rig
	scanned int64 // blocks 1..scanned were scanned for evidence

	mu     sync.Mutex
	states map[[3]int64]stateSeen // key-file mode: what each HRS was signed with
	found  []string
}

type stateSeen struct {
	replica string
	digest  string
}

// NewChecker starts the key-file mode's sampler of the replicas' sign
// state (until the rig closes).
func NewChecker(ctx context.Context, rig *Rig) (*Checker, error) {
	c := &Checker{rig: rig, states: map[[3]int64]stateSeen{}}
	if rig.cfg.Mode == ModeRestart {
		go c.sampleStates(rig.ctx)
	}
	return c, nil
}

// Check waits until the chain is evidenceBlocks past its height now (at
// most wait), then scans the blocks not scanned yet, every node log, the
// power and the per-HRS record. It returns every finding (an empty list
// is a pass) and an error when the scan could not be made.
func (c *Checker) Check(ctx context.Context, wait time.Duration) ([]string, error) {
	h0, err := c.rig.chain.height(ctx)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	err = c.rig.chain.waitHeight(wctx, h0+evidenceBlocks)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("the chain did not get %d blocks past %d: %w", evidenceBlocks, h0, err)
	}
	h, err := c.rig.chain.height(ctx)
	if err != nil {
		return nil, err
	}
	out, err := c.rig.chain.findings(ctx, c.scanned+1, h)
	if err != nil {
		return out, err
	}
	c.scanned = h
	if signerMode(c.rig.cfg.Mode) {
		logs := map[string]string{}
		for _, r := range c.rig.Replicas {
			logs[r.ID] = r.Log
		}
		_, _, f := localnet.OneSignaturePerHRS(localnet.SignEvents(logs))
		out = append(out, f...)
	}
	c.mu.Lock()
	out = append(out, c.found...)
	c.mu.Unlock()
	return out, nil
}

// Sampled is how many distinct signed height/round/steps the key-file
// sampler recorded.
func (c *Checker) Sampled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states)
}

// sampleStates reads every replica home's priv_validator_state.json every
// 20 ms and records the sign bytes (timestamp zeroed) per
// height/round/step: two values for one is a double sign, even if it never
// reached the chain. A sample can miss a state the node held shorter than
// that; the chain and log checks are the other half.
func (c *Checker) sampleStates(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	last := map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range c.rig.Replicas {
			data, err := os.ReadFile(filepath.Join(r.Home, "data", "priv_validator_state.json"))
			if err != nil || string(data) == last[r.ID] {
				continue
			}
			last[r.ID] = string(data)
			hrs, digest, ok := stateDigest(data)
			if !ok {
				continue
			}
			c.mu.Lock()
			if prev, seen := c.states[hrs]; seen && prev.digest != digest {
				c.found = append(c.found, fmt.Sprintf("priv_validator_state: two sign-bytes values at height/round/step %v: %s (%s) and %s (%s)",
					hrs, prev.digest, prev.replica, digest, r.ID))
			} else if !seen {
				c.states[hrs] = stateSeen{replica: r.ID, digest: digest}
			}
			c.mu.Unlock()
		}
	}
}

// stateDigest reads a FilePV state file: its height/round/step and a
// digest of its sign bytes with the timestamp zeroed; ok is false for a
// state that records no signature (a fresh or raised one).
func stateDigest(data []byte) (hrs [3]int64, digest string, ok bool) {
	var st struct {
		Height    string `json:"height"`
		Round     int64  `json:"round"`
		Step      int64  `json:"step"`
		SignBytes string `json:"signbytes"`
	}
	if json.Unmarshal(data, &st) != nil || st.SignBytes == "" {
		return hrs, "", false
	}
	h, err := strconv.ParseInt(st.Height, 10, 64)
	if err != nil {
		return hrs, "", false
	}
	raw, err := hex.DecodeString(st.SignBytes)
	if err != nil {
		return hrs, "", false
	}
	var norm []byte
	if st.Step == 1 {
		var p cmtproto.CanonicalProposal
		if protoio.UnmarshalDelimited(raw, &p) != nil {
			return hrs, "", false
		}
		p.Timestamp = time.Time{}
		norm, err = p.Marshal()
	} else {
		var v cmtproto.CanonicalVote
		if protoio.UnmarshalDelimited(raw, &v) != nil {
			return hrs, "", false
		}
		v.Timestamp = time.Time{}
		norm, err = v.Marshal()
	}
	if err != nil {
		return hrs, "", false
	}
	sum := sha256.Sum256(norm)
	return [3]int64{h, st.Round, st.Step}, hex.EncodeToString(sum[:8]), true
}
