package operator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/valguard/valguard/roster"
)

// Hand-over defaults and bounds.
const (
	DefaultHandoverTimeout = 2 * time.Minute
	DefaultHandoverWindow  = 30 * time.Second
	// holdOutWait bounds the wait for the replicas other than a named
	// target to leave the election before the leader steps down.
	holdOutWait = 5 * time.Second
	// freeNoTaker is how long the lock may stay free after the leader
	// released it, with nobody taking it, before the request is ended
	// early so that any synced standby (or the old leader) may lead.
	freeNoTaker = time.Second
	// targetLook is how often follow reads the reports while nobody
	// has taken the lock (is the target still running?).
	targetLook = time.Second
	// poll is how often the hand-over reads the lock and the reports.
	poll = 100 * time.Millisecond
	// rejoinWait bounds the wait for the old leader to rejoin.
	rejoinWait = time.Minute
	// rejoinPoll is how often that wait reads the reports.
	rejoinPoll = 200 * time.Millisecond
)

// MoveOptions are a hand-over's (and a drain's) settings.
type MoveOptions struct {
	// To is the replica to hand over to; "" any synced standby.
	To string
	// MaxLag is how many blocks a standby may be behind the best
	// replica and still take over.
	MaxLag int64
	// Timeout bounds the whole command (it must be positive); Window is
	// how long only the target may take the lock and the old leader
	// stays out (CheckWindow).
	Timeout, Window time.Duration
	// NodeRPCs are where the chain is watched; none: the RPCs the
	// replicas report, the target's first.
	NodeRPCs []string
	// Blackout is the blackout check; nil: none.
	Blackout Blackout
	// Force goes ahead during a blackout window, over another request
	// and without the other replicas' confirmation (loudly); NoWait
	// refuses rather than waits while a blackout window is open.
	Force, NoWait bool
}

// Handover moves leadership to o.To (any synced standby when "") and
// returns once the new leader's first signature is on chain (nil), or
// why not. It changes nothing when it refuses before writing the
// request, and removes the request on the way out.
func (v *Validator) Handover(ctx context.Context, o MoveOptions) error {
	ctx, cancel := withTimeout(ctx, v.clock(), o.Timeout)
	defer cancel()
	w, err := v.prepareMove(ctx, o)
	if err != nil {
		return err
	}
	return v.move(ctx, o, w, nil)
}

// ended says why ctx ended, for a message.
func ended(ctx context.Context, o MoveOptions) string {
	if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return fmt.Sprintf("not confirmed within --timeout %s", o.Timeout)
	}
	return "interrupted"
}

// prepareMove checks that leadership can move to o.To, waits for any
// blackout window, and checks again; the view it returns is the one
// after the wait.
func (v *Validator) prepareMove(ctx context.Context, o MoveOptions) (*View, error) {
	w, err := v.Look(ctx)
	if err != nil {
		return nil, err
	}
	if err := w.CanMove(o.To, o.MaxLag, o.Force); err != nil {
		return nil, err
	}
	if err := v.awaitBlackout(ctx, o.Blackout, o.Force, o.NoWait); err != nil {
		return nil, err
	}
	if w, err = v.Look(ctx); err != nil {
		return nil, err
	}
	return w, w.CanMove(o.To, o.MaxLag, o.Force)
}

// CanMove says why leadership cannot move to to ("" any synced
// standby); nil when it can.
func (w *View) CanMove(to string, maxLag int64, force bool) error {
	if w.Leader == nil && w.Leaderless() {
		return errors.New(nothingToHandOver)
	}
	if w.Leader == nil {
		return errors.New("no replica holds the lock, so there is nothing to hand over (valguard status); a synced replica takes the lock by itself")
	}
	if h := w.Handover; h != nil && w.At.Before(h.Until) && !force {
		return fmt.Errorf("hand-over %s from %s to %s is under way for %s more: wait for it, or --force; nothing changed",
			h.ID, h.From, orAny(h.To), h.Until.Sub(w.At).Round(time.Second))
	}
	if to == "" {
		if len(w.Standbys(maxLag)) == 0 {
			return fmt.Errorf("no synced standby within %d blocks can take over from %s; nothing changed:\n%s", maxLag, w.LeaderID(), w.whyNone(maxLag))
		}
		return nil
	}
	e, ok := w.Entry(to)
	if !ok {
		return fmt.Errorf("replica %q is unknown (known: %s): check the name (valguard status); nothing changed", to, w.knownReplicas())
	}
	if why := w.NotStandby(e, maxLag); why != "" {
		return fmt.Errorf("cannot hand over to %s: %s; nothing changed", to, why)
	}
	return nil
}

// timeline prints events relative to its start.
type timeline struct {
	w     io.Writer
	clk   clockwork.Clock
	start time.Time
}

func (t *timeline) log(format string, args ...any) {
	fmt.Fprintf(t.w, "  %+8.3fs  %s\n", t.clk.Now().Sub(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// move hands over from the current leader to o.To: it writes the
// request, keeps the other replicas out, lets the leader step down
// (after beforeGo, if set), and follows the lock, the new leader's state
// and the chain until the new leader's first signature is on chain or
// ctx ends. The request is removed on return, so that the old leader
// rejoins as a standby.
func (v *Validator) move(ctx context.Context, o MoveOptions, w *View, beforeGo func(context.Context) error) error {
	from, to := w.LeaderID(), o.To
	var others []string
	if to != "" {
		for _, e := range w.Entries {
			if e.Replica != from && e.Replica != to && w.Reporting(e) {
				others = append(others, e.Replica)
			}
		}
	}
	tl := &timeline{w: v.out(), clk: v.clock(), start: v.clock().Now()}
	req := roster.Handover{ID: newRequestID(), From: from, To: to, Go: len(others) == 0 && beforeGo == nil,
		RequestedAt: tl.start, Until: tl.start.Add(o.Window), By: v.Host, Force: o.Force}
	cw := v.chain(w.chainRPCs(o.NodeRPCs, to))
	h0, herr := cw.Height(ctx)
	index, err := v.Store.PutHandover(ctx, req, w.hoIndex)
	if errors.Is(err, roster.ErrRequestChanged) {
		return errors.New("another hand-over request was written meanwhile; nothing changed: look again (valguard status)")
	}
	if err != nil {
		return v.hint(err)
	}
	defer func() {
		ectx, cancel := context.WithTimeout(context.Background(), 2*v.CallTimeout)
		defer cancel()
		if err := v.Store.EndHandover(ectx, req.ID); err != nil {
			fmt.Fprintf(v.errOut(), "valguard: could not remove the hand-over request (it ends by itself at %s): %v\n", req.Until.Format(time.RFC3339), err)
		} else if ctx.Err() != nil {
			fmt.Fprintf(v.out(), "hand-over %s %s: request removed\n", req.ID, ended(ctx, o))
		}
	}()
	fmt.Fprintf(v.out(), "hand-over %s: %s → %s (window %s)\n", req.ID, from, orAny(to), o.Window)
	if herr == nil {
		tl.log("request written at chain height %d", h0)
	} else {
		tl.log("request written (chain height unknown: %v)", herr)
	}
	if !req.Go {
		if len(others) > 0 {
			if err := v.awaitHeldOut(ctx, o, tl, req.ID, others); err != nil {
				return err
			}
		}
		if beforeGo != nil {
			if err := beforeGo(ctx); err != nil {
				return v.hint(err)
			}
		}
		req.Go = true
		if _, err := v.Store.PutHandover(ctx, req, index); err != nil {
			return fmt.Errorf("could not let %s step down: %w; the request ends by itself at %s", from, v.hint(err), req.Until.Format(time.RFC3339))
		}
	}
	tl.log("%s asked to step down", from)
	return v.follow(ctx, o, tl, cw, req, h0, herr == nil)
}

// awaitHeldOut waits (at most holdOutWait) until the replicas in others
// report that the request holds them out, or are not in the election.
// If some did not confirm, one of them might take the lock instead of
// the target: it refuses, naming them, unless o.Force, which goes ahead
// with a warning.
func (v *Validator) awaitHeldOut(ctx context.Context, o MoveOptions, tl *timeline, id string, others []string) error {
	wctx, cancel := withTimeout(ctx, v.clock(), holdOutWait)
	defer cancel()
	var left []string
	why := map[string]string{}
	for {
		w, err := v.Look(wctx)
		if err == nil {
			left = slices.DeleteFunc(slices.Clone(others), func(r string) bool {
				e, ok := w.Entry(r)
				out := !ok || !w.Reporting(e) || strings.Contains(e.Hold, id) || !StateOf(e).inElection()
				if !out {
					why[r] = fmt.Sprintf("%s (state %s, hold %q, report %s old)", r, e.State, e.Hold, ago(w.At, e.Updated))
				}
				return out
			})
			if len(left) == 0 {
				tl.log("other replicas out of the election: %s", strings.Join(others, ", "))
				return nil
			}
		}
		if sleep(wctx, v.clock(), poll) == nil {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("hand-over %s while waiting for the other replicas to leave the election", ended(ctx, o))
		}
		if len(left) == 0 {
			left = others // never read
		}
		var named []string
		for _, r := range left {
			if why[r] == "" {
				why[r] = r + " (Consul not read)"
			}
			named = append(named, why[r])
		}
		if !o.Force {
			return fmt.Errorf("not handed over: within %s these replicas did not confirm they left the election, so one of them could take the lock instead of %s: %s; "+
				"the request is removed and the leader keeps leading; check their valguard (valguard status), or --force to go ahead anyway",
				holdOutWait, o.To, strings.Join(named, "; "))
		}
		tl.log("WARNING: --force: going ahead although these replicas did not confirm they left the election (one of them may take the lock instead of %s): %s",
			o.To, strings.Join(named, "; "))
		return nil
	}
}

// chainRPCs are rpcs when given, else the RPCs the reporting replicas
// report: the target's first, then the other standbys', the leader's
// last.
func (w *View) chainRPCs(rpcs []string, to string) []string {
	if len(rpcs) > 0 {
		return rpcs
	}
	var out []string
	add := func(e roster.Entry) {
		if e.NodeRPC != "" && !slices.Contains(out, e.NodeRPC) && w.Reporting(e) {
			out = append(out, e.NodeRPC)
		}
	}
	if e, ok := w.Entry(to); ok {
		add(e)
	}
	for _, e := range w.Entries {
		if e.Replica != w.LeaderID() {
			add(e)
		}
	}
	if e, ok := w.Entry(w.LeaderID()); ok {
		add(e)
	}
	return out
}

// newRequestID is a random hand-over request id.
func newRequestID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
