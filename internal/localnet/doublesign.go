package localnet

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// DoubleSignFindings scans, with no wait, the blocks from..to for
// DuplicateVoteEvidence, the node logs for a conflicting vote, and the
// validator addrHex's power at the node's latest height, and describes each
// sign of a double sign it finds (docs/testing.md, localnet facts: a test of "no double sign"
// checks all three). Evidence lands a block or two after the offence, so
// scan past it. An error means the scan could not be completed; the
// findings so far are returned with it.
func DoubleSignFindings(ctx context.Context, rpc, addrHex string, power, from, to int64, logs []string) ([]string, error) {
	var out []string
	if from < 1 {
		from = 1
	}
	if from <= to {
		ev, err := DuplicateVoteEvidence(ctx, rpc, from, to)
		for _, e := range ev {
			out = append(out, "evidence on chain: "+e)
		}
		if err != nil {
			return out, err
		}
	}
	lines, err := ConflictingVoteLines(logs...)
	for _, l := range lines {
		out = append(out, "node log: "+l)
	}
	if err != nil {
		return out, err
	}
	p, err := Power(ctx, rpc, addrHex)
	if err != nil {
		return out, err
	}
	if p != power {
		out = append(out, fmt.Sprintf("validator power %d, want %d", p, power))
	}
	return out, nil
}

// SignEvent is one decision of a signer-mode valguard, from its log: the
// events with a "result" and a height (signed, reserved, refused, parked,
// ...).
type SignEvent struct {
	Replica string
	At      time.Time // when the event was logged, after the reply
	// Fenced is when the fence of a new signature started: At less the
	// fence's and the floor file's durations. A valguard frozen between
	// its fence and its log line logs the event late; the fence itself
	// happened before.
	Fenced time.Time
	Result string
	HRS    [3]int64 // height, round, step
	Bytes  string   // sign_bytes_sha256, timestamp zeroed
	Sig    string   // signature_sha256: the signature given out, exactly
}

// SignEvents reads the signing decisions from valguard logs (replica name
// → log path) and returns them in time order.
func SignEvents(logs map[string]string) []SignEvent {
	var out []SignEvent
	for replica, path := range logs {
		for _, ev := range ValguardEvents(path) {
			res, _ := ev["result"].(string)
			if res == "" || ev["height"] == nil {
				continue
			}
			at, _ := time.Parse("2006-01-02T15:04:05.000Z07:00", fmt.Sprint(ev["time"]))
			h, _ := ev["height"].(float64)
			rd, _ := ev["round"].(float64)
			st, _ := ev["step"].(float64)
			b, _ := ev["sign_bytes_sha256"].(string)
			sig, _ := ev["signature_sha256"].(string)
			fence, _ := ev["fence_took"].(float64)
			floor, _ := ev["floor_took"].(float64)
			fenced := at.Add(-time.Duration((fence + floor) * float64(time.Millisecond)))
			out = append(out, SignEvent{Replica: replica, At: at, Fenced: fenced, Result: res, HRS: [3]int64{int64(h), int64(rd), int64(st)}, Bytes: b, Sig: sig})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// HRSLess orders two height/round/step triples.
func HRSLess(a, b [3]int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// OneSignaturePerHRS checks signing events (SignEvents, across every
// replica of one validator): every height/round/step signed or re-served
// carries one sign-bytes value (timestamps aside, S1″), and the fenced
// watermark — the HRS of each new signature, in the order their fences
// started (Fenced) — only goes up (the same signature fenced twice in a
// row at one HRS counts once). It returns the number of new
// signatures, of distinct height/round/steps, and one line per violation.
func OneSignaturePerHRS(evs []SignEvent) (signed, hrs int, findings []string) {
	by := map[[3]int64]string{}
	var last [3]int64
	var lastSig string
	evs = append([]SignEvent(nil), evs...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Fenced.Before(evs[j].Fenced) })
	for _, e := range evs {
		if e.Result != "signed" && e.Result != "reserved" {
			continue
		}
		if e.Bytes == "" {
			findings = append(findings, fmt.Sprintf("%s: %s event at %v without sign_bytes_sha256", e.Replica, e.Result, e.HRS))
			continue
		}
		if prev, ok := by[e.HRS]; ok && prev != e.Bytes {
			findings = append(findings, fmt.Sprintf("two sign-bytes values at height/round/step %v: %s and %s (%s)", e.HRS, prev, e.Bytes, e.Replica))
		}
		by[e.HRS] = e.Bytes
		if e.Result == "signed" {
			// The same signature (exactly: not only the same sign
			// bytes but for the timestamp) fenced again at the same HRS
			// is one signature, not two: under --signers any, a replica
			// whose check-and-set had an unknown outcome and that reads
			// back its very value cannot tell its own write from another
			// replica's of the same vote, and counts it as signed.
			if e.HRS == last && e.Sig != "" && e.Sig == lastSig {
				continue
			}
			signed++
			if !HRSLess(last, e.HRS) {
				findings = append(findings, fmt.Sprintf("%s fenced %v after %v: the watermark went back", e.Replica, e.HRS, last))
			}
			last, lastSig = e.HRS, e.Sig
		}
	}
	return signed, len(by), findings
}
