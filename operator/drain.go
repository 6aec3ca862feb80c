package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/valguard/valguard/roster"
)

const (
	// DrainSettle bounds the wait for a drained or undrained replica to
	// show it in its report.
	DrainSettle = 15 * time.Second
	// drainAttempts bounds drainNow's looks at a replica that keeps
	// moving between leader and standby.
	drainAttempts = 3
	// settlePoll is how often that wait reads the reports.
	settlePoll = 100 * time.Millisecond
)

// DrainOptions are a drain's settings: those of the hand-over it makes
// when the replica leads (To is ignored), and the reason shown by
// valguard status.
type DrainOptions struct {
	MoveOptions
	Reason string
}

// Drain keeps replica out of the election until Undrain: the leader
// hands over first (refused when nobody can take over), any other
// replica gets its drain mark at once. It waits for any blackout window
// first and decides on what it sees after the wait. nil when replica is
// drained (or already was).
func (v *Validator) Drain(ctx context.Context, replica string, o DrainOptions) error {
	o.To = ""
	ctx, cancel := withTimeout(ctx, v.clock(), o.Timeout)
	defer cancel()
	w, err := v.Look(ctx)
	if err != nil {
		return err
	}
	if w.Drained(replica) {
		fmt.Fprintf(v.out(), "%s is already drained; nothing changed\n", replica)
		return nil
	}
	if _, ok := w.Entry(replica); !ok && !o.Force {
		return fmt.Errorf("replica %q is unknown (known: %s): check the name, or --force to drain a replica that has never reported; nothing changed",
			replica, w.knownReplicas())
	}
	led := replica == w.LeaderID()
	if led {
		// Nobody to take over: refuse before any wait.
		if err := w.CanMove("", o.MaxLag, o.Force); err != nil {
			return fmt.Errorf("%s not drained: %v", replica, err)
		}
	}
	if err := v.awaitBlackout(ctx, o.Blackout, o.Force, o.NoWait); err != nil {
		return err
	}
	mark := roster.Drain{At: v.clock().Now(), By: v.Host, Reason: o.Reason}
	return v.drainNow(ctx, o, replica, mark, led)
}

// drainNow drains replica as things stand now, after any blackout wait,
// since the leader may have changed during it: a leader hands over first
// (or the drain is refused when nobody can take over), any other replica
// gets its drain mark in one transaction with a check that it does not
// hold the lock (Store.SetDrainUnlessLeading). Draining the leader
// without a hand-over would leave the validator with no leader. led says
// whether replica led before the wait, for the messages.
func (v *Validator) drainNow(ctx context.Context, o DrainOptions, replica string, mark roster.Drain, led bool) error {
	for range drainAttempts {
		w, err := v.Look(ctx)
		if err != nil {
			return err
		}
		if w.Drained(replica) {
			fmt.Fprintf(v.out(), "%s was drained meanwhile; nothing changed\n", replica)
			return nil
		}
		if replica == w.LeaderID() {
			return v.drainLeader(ctx, o, w, replica, mark, led)
		}
		if w.Leaderless() && w.Leader == nil {
			if why := w.lastSigner(replica); why != "" && !o.Force {
				return fmt.Errorf("%s not drained: %s\nnothing changed: check valguard status, or --force to drain it anyway", replica, why)
			}
		} else if why := w.noLeaderDrain(replica, o.MaxLag); why != "" && !o.Force {
			return fmt.Errorf("%s not drained: %s\nnothing changed: check valguard status, or --force to drain it anyway", replica, why)
		}
		if led {
			now := "nobody holds the lock"
			if l := w.LeaderID(); l != "" {
				now = l + " does"
			}
			fmt.Fprintf(v.out(), "%s no longer leads (%s): draining it without a hand-over\n", replica, now)
		}
		err = v.Store.SetDrainUnlessLeading(ctx, replica, mark)
		if errors.Is(err, roster.ErrLeading) {
			fmt.Fprintf(v.out(), "%s took the lock meanwhile: looking again\n", replica)
			led = false
			continue
		}
		if err != nil {
			return v.hint(err)
		}
		fmt.Fprintf(v.out(), "%s drained\n", replica)
		v.awaitReport(ctx, replica, func(e roster.Entry) bool { return e.Drained && !StateOf(e).inElection() },
			"out of the election")
		return nil
	}
	return fmt.Errorf("%s not drained: it kept moving between leader and standby while the command looked (valguard status); nothing changed, run again", replica)
}

// noLeaderDrain says why draining replica, which does not hold the
// lock, could leave the validator with no leader: nobody holds the lock
// and no other replica is a synced standby that could take it. "" when
// someone leads or could.
func (w *View) noLeaderDrain(replica string, maxLag int64) string {
	if w.Leader != nil || slices.ContainsFunc(w.Standbys(maxLag), func(r string) bool { return r != replica }) {
		return ""
	}
	return fmt.Sprintf("nobody holds the lock and no other replica is a synced standby within %d blocks that could take it, so draining %s could leave the validator with no leader:\n%s",
		maxLag, replica, w.whyNone(maxLag))
}

// drainLeader hands over from replica, the leader in w, and drains it
// before it steps down; with nobody to take over it refuses.
func (v *Validator) drainLeader(ctx context.Context, o DrainOptions, w *View, replica string, mark roster.Drain, led bool) error {
	became := ""
	if !led {
		became = " (it became the leader while the command waited)"
	}
	if err := w.CanMove("", o.MaxLag, o.Force); err != nil {
		return fmt.Errorf("%s not drained: it leads%s and draining it would leave the validator with no leader: %v", replica, became, err)
	}
	fmt.Fprintf(v.out(), "%s leads%s: handing over before it is drained\n", replica, became)
	setDrain := func(ctx context.Context) error { return v.Store.SetDrain(ctx, replica, mark) }
	if err := v.move(ctx, o.MoveOptions, w, setDrain); err != nil {
		return err
	}
	fmt.Fprintf(v.out(), "%s drained\n", replica)
	return nil
}

// Undrain lets replica take part in the election again, and waits (at
// most DrainSettle) for its report to show it.
func (v *Validator) Undrain(ctx context.Context, replica string) error {
	ctx, cancel := withTimeout(ctx, v.clock(), DrainSettle+3*v.CallTimeout)
	defer cancel()
	if err := v.Store.Undrain(ctx, replica); err != nil {
		if errors.Is(err, roster.ErrNotDrained) {
			return fmt.Errorf("%s is not drained; nothing changed (valguard status lists the drained replicas)", replica)
		}
		return v.hint(err)
	}
	fmt.Fprintf(v.out(), "%s undrained: it takes part in the election again once its node is synced\n", replica)
	v.awaitReport(ctx, replica, func(e roster.Entry) bool { return !e.Drained }, "no longer drained")
	return nil
}

// awaitReport waits (at most DrainSettle) for replica's report to
// satisfy ok and says so; a replica that is not running is only named.
func (v *Validator) awaitReport(ctx context.Context, replica string, ok func(roster.Entry) bool, what string) {
	ctx, cancel := withTimeout(ctx, v.clock(), DrainSettle)
	defer cancel()
	start := v.clock().Now()
	for {
		w, err := v.Look(ctx)
		if err == nil {
			e, known := w.Entry(replica)
			switch {
			case !known || !w.Reporting(e):
				fmt.Fprintf(v.out(), "%s is not running; its valguard will see it when it starts\n", replica)
				return
			case ok(e):
				fmt.Fprintf(v.out(), "%s reports it is %s (state %s) after %s\n", replica, what, e.State, v.since(start).Round(10*time.Millisecond))
				return
			}
		}
		if sleep(ctx, v.clock(), settlePoll) != nil {
			fmt.Fprintf(v.out(), "%s has not reported it yet (valguard status)\n", replica)
			return
		}
	}
}
