package operator

import (
	"fmt"
	"strings"

	"github.com/valguard/valguard/roster"
)

// signersAny is the roster's name of the leaderless signer policy
// (valguard run --sign-mode signer --signers any).
const signersAny = "any"

// errNothingToHandOver is Handover's answer under the leaderless policy.
const nothingToHandOver = "the validator's replicas run --signers any: every replica signs and no lock moves, so there is nothing to hand over; " +
	"to take a replica out of signing, drain it (valguard drain REPLICA)"

// Leaderless reports whether the validator's live replicas run the
// leaderless signer policy (every replica signs; the sign record decides).
func (w *View) Leaderless() bool {
	for _, e := range w.Entries {
		if e.Alive && e.Unreadable == "" && e.Signers == signersAny {
			return true
		}
	}
	return false
}

// Signing are, under the leaderless policy, the replicas that sign now:
// reporting, Validating, not drained.
func (w *View) Signing() []string {
	var out []string
	for _, e := range w.Entries {
		if w.Reporting(e) && e.Signers == signersAny && StateOf(e) == Validating && !w.Drained(e.Replica) {
			out = append(out, e.Replica)
		}
	}
	return out
}

// leaderlessHealth is Health under the leaderless policy: OK with two
// replicas signing or more, degraded with one, no signer with none.
func (w *View) leaderlessHealth() (int, string) {
	s := w.Signing()
	switch len(s) {
	case 0:
		return StatusNoLeader, "CRITICAL: no replica signs (--signers any): the validator is not signing"
	case 1:
		return StatusDegraded, "WARNING: only " + s[0] + " signs (--signers any): its failure would stop the validator"
	}
	return StatusOK, fmt.Sprintf("OK: %d replicas sign (--signers any): %s", len(s), strings.Join(s, ", "))
}

// lastSigner says why draining replica would leave no replica signing
// under the leaderless policy; "" when another one signs.
func (w *View) lastSigner(replica string) string {
	for _, s := range w.Signing() {
		if s != replica {
			return ""
		}
	}
	return fmt.Sprintf("no other replica signs (--signers any; signing: %s), so draining %s would stop the validator", orNone(w.Signing()), replica)
}

// races is a replica's share of the leaderless policy's races, for the
// status table: "won/lost (share of all wins)".
func (w *View) races(e roster.Entry) string {
	if e.Signers != signersAny {
		return "-"
	}
	var all uint64
	for _, o := range w.Entries {
		if o.Signers == signersAny {
			all += o.RacesWon
		}
	}
	share := 0.0
	if all > 0 {
		share = 100 * float64(e.RacesWon) / float64(all)
	}
	return fmt.Sprintf("%d/%d (%.0f%%)", e.RacesWon, e.RacesLost, share)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
