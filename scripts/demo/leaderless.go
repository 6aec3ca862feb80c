package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// anyMode are the replicas' flags under the leaderless signer policy:
// every replica signs for its own node, a check-and-set of the sign record
// in Consul decides each signature.
var anyMode = []string{"--sign-mode", "signer", "--signers", "any"}

// anyWindow is how many heights after a kill the leaderless runs count
// missed heights over (more if the first signature comes later).
const anyWindow = 10

// Failover kinds that only the leaderless policy runs.
const (
	kindAnyCrash  = "crash (SIGKILL of a replica's valguard, its node with it), no takeover"
	kindNodeCrash = "node crash (SIGKILL of a replica's node alone, its valguard restarts it)"
)

// bothValidating waits until every replica is Validating (the leaderless
// policy: each one signs).
func (e *demoEnv) bothValidating(ctx context.Context, d time.Duration) error {
	for _, r := range e.replicas {
		if err := r.waitState(ctx, "Validating", d); err != nil {
			return err
		}
	}
	return nil
}

// anyKill sends sig to the victim's valguard (node false) or SIGKILL to
// its node alone (node true) while both replicas sign, and measures the
// validator's first signature after it and the heights it missed in the
// anyWindow heights after the kill (or up to the first signature, if
// later). The victim is not restarted here.
func (e *demoEnv) anyKill(ctx context.Context, victim *replica, sig syscall.Signal, node bool) (timeline, error) {
	tl := timeline{sig: sig, from: victim.id}
	for _, r := range e.replicas {
		if r != victim {
			tl.to = r.id
		}
	}
	nodePID := localnet.LastNodePID(victim.logPath)
	if node && nodePID == 0 {
		return tl, fmt.Errorf("no node pid in %s", victim.logPath)
	}
	h, err := localnet.Height(ctx, e.rpc)
	if err != nil {
		return tl, err
	}
	tl.killHeight, tl.killAt = h, time.Now()
	if node {
		err = syscall.Kill(nodePID, syscall.SIGKILL)
	} else {
		err = victim.p.Cmd.Process.Signal(sig) // valguard only, not its group
	}
	if err != nil {
		return tl, err
	}
	if tl.first, err = e.firstSigned(ctx, tl.killHeight, 2*time.Minute); err != nil {
		return tl, err
	}
	tl.by = e.signedBy(tl.first.height, tl.killAt)
	to := max(tl.first.height, tl.killHeight+anyWindow)
	if err := localnet.WaitHeight(ctx, e.rpc, to+1); err != nil { // the commit of to is final
		return tl, err
	}
	_, missed, err := localnet.Signers(ctx, e.rpc, tl.killHeight+1, to, e.net.HAAddress)
	if err != nil {
		return tl, err
	}
	tl.missed, tl.windowTo = len(missed), to
	if !node {
		select {
		case <-victim.p.Done():
		case <-time.After(30 * time.Second):
			return tl, fmt.Errorf("valguard %s did not exit after %s", victim.id, signalName(sig))
		}
		tl.nodeGone = nodePID > 0 && !localnet.Alive(nodePID)
	}
	return tl, nil
}

// signedBy is the replica whose log has the "signed" precommit (or, if
// none, any "signed" request) at height h after t: the one whose node's
// vote made the commit signature, as far as the logs tell.
func (e *demoEnv) signedBy(h int64, after time.Time) string {
	by := ""
	for _, r := range e.replicas {
		for _, ev := range localnet.ValguardEvents(r.logPath) {
			if ev["message"] != "sign request" || ev["result"] != "signed" {
				continue
			}
			if hh, _ := ev["height"].(float64); int64(hh) != h {
				continue
			}
			s, _ := ev["time"].(string)
			if t, err := time.Parse(time.RFC3339Nano, s); err != nil || !t.After(after) {
				continue
			}
			if ev["type"] == "precommit" {
				return r.id
			}
			if by == "" {
				by = r.id
			}
		}
	}
	return by
}

// waitBack waits until the victim of anyKill is Validating again: after a
// valguard kill, it is started again first; after a node kill, its
// valguard must have started a new node. It sets tl.backAt.
func (e *demoEnv) waitBack(ctx context.Context, victim *replica, tl *timeline, node bool, oldNode int) error {
	if !node {
		if err := victim.start(ctx); err != nil {
			return err
		}
	} else {
		deadline := time.Now().Add(2 * time.Minute)
		for localnet.LastNodePID(victim.logPath) == oldNode {
			if time.Now().After(deadline) {
				return fmt.Errorf("valguard %s started no new node within 2m of its node's kill (log: %s)", victim.id, victim.logPath)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if err := victim.waitState(ctx, "Validating", 2*time.Minute); err != nil {
		return err
	}
	tl.backAt = time.Now()
	return nil
}

// anyKills runs kills of one kind under the leaderless policy, the victim
// alternating between the replicas across all the mode's runs (e.turn);
// after each, the victim is back Validating before the next.
func (e *demoEnv) anyKills(ctx context.Context, kind string, sig syscall.Signal, node bool, runs int) ([]timeline, error) {
	var out []timeline
	for i := 0; i < runs; i++ {
		if err := e.bothValidating(ctx, 2*time.Minute); err != nil {
			return out, err
		}
		h0, _ := localnet.Height(ctx, e.rpc)
		if _, err := e.firstSigned(ctx, h0, time.Minute); err != nil {
			return out, err
		}
		victim := e.replicas[e.turn%len(e.replicas)]
		e.turn++
		oldNode := localnet.LastNodePID(victim.logPath)
		tl, err := e.anyKill(ctx, victim, sig, node)
		if err != nil {
			return out, err
		}
		if err := e.waitBack(ctx, victim, &tl, node, oldNode); err != nil {
			return out, err
		}
		e.say("%s run %d/%d (replica %s): kill→first signature %.2fs (height %d, through %s), missed heights %d of %d..%d, %s back Validating at +%.1fs",
			kind, i+1, runs, victim.id, tl.toSign().Seconds(), tl.first.height, orUnknown(tl.by), tl.missed, tl.killHeight+1, tl.windowTo,
			victim.id, tl.backAt.Sub(tl.killAt).Seconds())
		out = append(out, tl)
	}
	return out, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return "replica " + s
}

// benchAny measures the leaderless policy the replicas run in now: RSS
// of one replica's valguard and the block rate while both sign, graceful
// stops, crashes of a valguard and of a node alone, the sign latencies,
// then the safety check.
func (e *demoEnv) benchAny(ctx context.Context, runs int) (modeResult, error) {
	res := modeResult{name: "any", runs: map[string][]timeline{}}
	began := time.Now()
	if err := e.bothValidating(ctx, 2*time.Minute); err != nil {
		return res, err
	}
	h0, _ := localnet.Height(ctx, e.rpc)
	if _, err := e.firstSigned(ctx, h0, time.Minute); err != nil {
		return res, err
	}
	e.say("signers any: replicas a and b both Validating and the validator signs")
	if err := e.measureIdle(e.replicas[0]); err != nil {
		return res, err
	}
	res.idle = e.idle
	var err error
	if res.rate, err = e.blockRate(ctx, rateWindow); err != nil {
		return res, err
	}
	e.say("signers any: %s", res.rate)
	if res.runs[kindGraceful], err = e.anyKills(ctx, kindGraceful, syscall.SIGTERM, false, runs); err != nil {
		return res, err
	}
	if res.runs[kindAnyCrash], err = e.anyKills(ctx, kindAnyCrash, syscall.SIGKILL, false, runs); err != nil {
		return res, err
	}
	if res.runs[kindNodeCrash], err = e.anyKills(ctx, kindNodeCrash, syscall.SIGKILL, true, runs); err != nil {
		return res, err
	}
	res.fence, res.reply = fenceLatencies(e.logPaths(), began)
	res.results = signResults(e.logPaths(), began, time.Now())
	if res.safety, err = e.checkSafety(ctx); err != nil {
		return res, err
	}
	res.took = time.Since(began)
	return res, nil
}

// signResults counts the "sign request" events logged in (from, to] by
// result (signed, reserved, refused, parked).
func signResults(paths []string, from, to time.Time) map[string]int {
	out := map[string]int{}
	for _, path := range paths {
		for _, ev := range localnet.ValguardEvents(path) {
			if ev["message"] != "sign request" {
				continue
			}
			s, _ := ev["time"].(string)
			at, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || !at.After(from) || at.After(to) {
				continue
			}
			r, _ := ev["result"].(string)
			out[r]++
			if r == "refused" {
				reason, _ := ev["reason"].(string)
				out[refusedPrefix+refusalClass(reason)]++
			}
		}
	}
	return out
}

// refusedPrefix keys signResults' counts of refusals by class.
const refusedPrefix = "refused: "

// refusalClasses are refusalClass's answers, in the order printed.
var refusalClasses = []string{"below the record", "conflicting data", "not signing", "other"}

// refusalClass sorts a refusal's reason, as valguard logs it, into one of
// refusalClasses.
func refusalClass(reason string) string {
	switch {
	case strings.HasPrefix(reason, "height/round/step regression"):
		return "below the record"
	case strings.HasPrefix(reason, "conflicting data"):
		return "conflicting data"
	case strings.HasPrefix(reason, "this replica does not sign now"):
		return "not signing"
	}
	return "other"
}

// resultsCell is "signed s, reserved r, refused f (by class), parked p".
func resultsCell(m map[string]int) string {
	if m == nil {
		return noFigure
	}
	var why []string
	for _, c := range refusalClasses {
		if n := m[refusedPrefix+c]; n > 0 {
			why = append(why, fmt.Sprintf("%s %d", c, n))
		}
	}
	refused := fmt.Sprint(m["refused"])
	if len(why) > 0 {
		refused += " (" + strings.Join(why, ", ") + ")"
	}
	return fmt.Sprintf("signed %d, reserved %d, refused %s, parked %d", m["signed"], m["reserved"], refused, m["parked"])
}

// demoAny is the demo's second part: both replicas switched to the
// leaderless policy, then one replica's valguard SIGKILLed, its timeline
// printed and compared with the key-file crash before it.
func (e *demoEnv) demoAny(ctx context.Context, keyFile timeline) (timeline, error) {
	var running []*replica
	for _, r := range e.replicas {
		if r.p != nil && !r.p.Exited() {
			running = append(running, r)
		}
	}
	for _, r := range running {
		if err := r.stop(); err != nil {
			return timeline{}, err
		}
	}
	for _, r := range e.replicas {
		r.mode = anyMode
		if err := r.start(ctx); err != nil {
			return timeline{}, err
		}
	}
	e.say("both replicas (re)started with %v: every replica signs for its own node, a check-and-set of one Consul record decides each signature", anyMode)
	if err := e.bothValidating(ctx, 2*time.Minute); err != nil {
		return timeline{}, err
	}
	h0, _ := localnet.Height(ctx, e.rpc)
	first, err := e.firstSigned(ctx, h0, time.Minute)
	if err != nil {
		return timeline{}, err
	}
	e.say("replicas a and b both Validating; the validator signed height %d", first.height)
	victim := e.replicas[0]
	e.say("SIGKILL valguard of replica %s (its node must die with it); replica %s goes on signing", victim.id, e.replicas[1].id)
	tl, err := e.anyKill(ctx, victim, syscall.SIGKILL, false)
	if err != nil {
		return tl, err
	}
	tl.printAny()
	fmt.Printf("  key-file mode, leader killed: first signature after %.1f s, %d missed heights; --signers any, a replica killed: first signature after %.1f s, %d missed heights in the %d heights after the kill\n\n",
		keyFile.toSign().Seconds(), keyFile.missed, tl.toSign().Seconds(), tl.missed, tl.windowTo-tl.killHeight)
	return tl, nil
}

// printAny prints a leaderless kill's timeline.
func (t timeline) printAny() {
	fmt.Println()
	fmt.Printf("  leaderless crash timeline (%s to valguard %s at height %d, --signers any)\n", signalName(t.sig), t.from, t.killHeight)
	at := func(d time.Duration) string {
		if d < 0 {
			return fmt.Sprintf("-%6.2fs", -d.Seconds())
		}
		return fmt.Sprintf("+%6.2fs", d.Seconds())
	}
	fmt.Printf("  %s  %s sent; its node killed with it: %v\n", at(0), signalName(t.sig), t.nodeGone)
	fmt.Printf("  %s  first height signed: %d (through %s, which never stopped signing: no lock, nothing to take over)\n",
		at(t.first.at.Sub(t.killAt)), t.first.height, orUnknown(t.by))
	fmt.Printf("  missed heights: %d (heights %d..%d)\n\n", t.missed, t.killHeight+1, t.windowTo)
}
