package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/roster"
)

// Hand-over defaults.
const (
	defaultHandoverTimeout = 2 * time.Minute
	defaultHandoverWindow  = 30 * time.Second
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
)

// moveFlags are shared by handover and drain.
func moveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "max-lag", Value: defaultMaxLag, Usage: "blocks a standby may be behind the best replica and still take over"},
		&cli.DurationFlag{Name: "timeout", Value: defaultHandoverTimeout, Usage: "give up (saying where things stand) after this long"},
		// The window is checked by each replica against its own wall
		// clock: the operator's host and the replicas are assumed to
		// agree within a second (NTP). See the README, "Hand-over",
		// for what a larger skew does.
		&cli.DurationFlag{Name: "window", Value: defaultHandoverWindow, Usage: "how long only the target may take the lock and the old leader stays out (at most 10m; each replica checks it against its own wall clock, assumed within a second of this host's)"},
		&cli.StringSliceFlag{Name: "node-rpc", Usage: "CometBFT RPC (http://host:port) to watch the chain for the new leader's first signature, best a node outside the hand-over (default: the RPCs the replicas report)", EnvVars: env("node-rpc")},
	}
}

func handoverCommand() *cli.Command {
	flags := slices.Concat(fleetFlags(), []cli.Flag{
		&cli.StringFlag{Name: "to", Usage: "the replica to hand over to (default: any synced standby)"},
	}, moveFlags(), blackoutFlags(), consulFlags())
	return &cli.Command{
		Name:   "handover",
		Usage:  "move leadership to a synced standby without stopping any valguard; returns when the new leader's first signature is on chain",
		Flags:  flags,
		Action: handover,
	}
}

func handover(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("unexpected arguments %q: name the target with --to", c.Args().Slice()), 1)
	}
	if err := checkWindow(c); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	f, err := openFleet(c)
	if err == nil {
		err = checkConsulAccess(c, f.el.Config().Client, f.id, accessControl)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	ctx, stop := interruptible(c.Context)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
	defer cancel()
	v, err := f.preparedMove(ctx, c, c.String("to"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if err := f.move(ctx, c, v, c.String("to"), nil); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}

// interruptible is ctx ended by SIGINT or SIGTERM, so that handover and
// drain remove their request on the way out instead of leaving it in
// Consul until its window ends (with a named target that died, nobody
// could lead meanwhile). A second signal after stop kills as usual.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// checkWindow refuses a --window that is not positive or is longer than
// the replicas accept without warning of clock skew.
func checkWindow(c *cli.Context) error {
	if w := c.Duration("window"); w <= 0 || w > roster.MaxWindowAhead {
		return fmt.Errorf("--window %s: must be above 0 and at most %s", w, roster.MaxWindowAhead)
	}
	return nil
}

// ended says why ctx ended, for a message.
func ended(ctx context.Context, c *cli.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("not confirmed within --timeout %s", c.Duration("timeout"))
	}
	return "interrupted"
}

// preparedMove checks that leadership can move to to ("" any synced
// standby), waits for any blackout window, and checks again; the view
// it returns is the one after the wait.
func (f *fleetCtx) preparedMove(ctx context.Context, c *cli.Context, to string) (*view, error) {
	b, err := newBlackoutCheck(c)
	if err != nil {
		return nil, err
	}
	v, err := f.look(ctx)
	if err != nil {
		return nil, err
	}
	if err := v.canMove(to, c.Int64("max-lag"), c.Bool("force")); err != nil {
		return nil, err
	}
	if err := awaitBlackout(ctx, c, b); err != nil {
		return nil, err
	}
	if v, err = f.look(ctx); err != nil {
		return nil, err
	}
	return v, v.canMove(to, c.Int64("max-lag"), c.Bool("force"))
}

// canMove says why leadership cannot move to to ("" any synced standby);
// nil when it can.
func (v *view) canMove(to string, maxLag int64, force bool) error {
	if v.leader == nil {
		return errors.New("no replica holds the lock, so there is nothing to hand over (valguard status); a synced replica takes the lock by itself")
	}
	if h := v.handover; h != nil && v.at.Before(h.Until) && !force {
		return fmt.Errorf("hand-over %s from %s to %s is under way for %s more: wait for it, or --force; nothing changed",
			h.ID, h.From, orAny(h.To), h.Until.Sub(v.at).Round(time.Second))
	}
	if to == "" {
		if len(v.standbys(maxLag)) == 0 {
			return fmt.Errorf("no synced standby within %d blocks can take over from %s; nothing changed:\n%s", maxLag, v.leaderID(), v.whyNone(maxLag))
		}
		return nil
	}
	e, ok := v.entry(to)
	if !ok {
		return fmt.Errorf("replica %q is unknown (known: %s): check the name (valguard status); nothing changed", to, v.knownReplicas())
	}
	if why := v.notStandby(e, maxLag); why != "" {
		return fmt.Errorf("cannot hand over to %s: %s; nothing changed", to, why)
	}
	return nil
}

// timeline prints events relative to its start.
type timeline struct {
	w     io.Writer
	start time.Time
}

func (t *timeline) log(format string, args ...any) {
	fmt.Fprintf(t.w, "  %+8.3fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// move hands over from the current leader to to ("" any synced
// standby): it writes the request, keeps the other replicas out, lets
// the leader step down (after beforeGo, if set), and follows the lock,
// the new leader's state and the chain until the new leader's first
// signature is on chain or ctx ends. The request is removed on return,
// so that the old leader rejoins as a standby.
func (f *fleetCtx) move(ctx context.Context, c *cli.Context, v *view, to string, beforeGo func(context.Context) error) error {
	from := v.leaderID()
	var others []string
	if to != "" {
		for _, e := range v.entries {
			if e.Replica != from && e.Replica != to && v.reporting(e) {
				others = append(others, e.Replica)
			}
		}
	}
	tl := &timeline{w: c.App.Writer, start: time.Now()}
	req := roster.Handover{ID: newRequestID(), From: from, To: to, Go: len(others) == 0 && beforeGo == nil,
		RequestedAt: tl.start, Until: tl.start.Add(c.Duration("window")), By: hostname(), Force: c.Bool("force")}
	cw := f.chainWatch(c, v, to)
	h0, herr := cw.height(ctx)
	index, err := f.ro.PutHandover(ctx, req, v.hoIndex)
	if errors.Is(err, roster.ErrRequestChanged) {
		return errors.New("another hand-over request was written meanwhile; nothing changed: look again (valguard status)")
	}
	if err != nil {
		return f.hint(err)
	}
	defer func() {
		ectx, cancel := context.WithTimeout(context.Background(), 2*c.Duration("consul-timeout"))
		defer cancel()
		if err := f.ro.EndHandover(ectx, req.ID); err != nil {
			fmt.Fprintf(c.App.ErrWriter, "valguard: could not remove the hand-over request (it ends by itself at %s): %v\n", req.Until.Format(time.RFC3339), err)
		} else if ctx.Err() != nil {
			fmt.Fprintf(c.App.Writer, "hand-over %s %s: request removed\n", req.ID, ended(ctx, c))
		}
	}()
	fmt.Fprintf(c.App.Writer, "hand-over %s: %s → %s (window %s)\n", req.ID, from, orAny(to), c.Duration("window"))
	if herr == nil {
		tl.log("request written at chain height %d", h0)
	} else {
		tl.log("request written (chain height unknown: %v)", herr)
	}
	if !req.Go {
		if len(others) > 0 {
			if err := f.awaitHeldOut(ctx, c, tl, req.ID, to, others); err != nil {
				return err
			}
		}
		if beforeGo != nil {
			if err := beforeGo(ctx); err != nil {
				return f.hint(err)
			}
		}
		req.Go = true
		if _, err := f.ro.PutHandover(ctx, req, index); err != nil {
			return fmt.Errorf("could not let %s step down: %w; the request ends by itself at %s", from, f.hint(err), req.Until.Format(time.RFC3339))
		}
	}
	tl.log("%s asked to step down", from)
	return f.follow(ctx, c, tl, cw, req, h0, herr == nil)
}

// awaitHeldOut waits (at most holdOutWait) until the replicas in others
// report that the request holds them out, or are not in the election.
// If some did not confirm, one of them might take the lock instead of
// the target: it refuses, naming them, unless force, which goes ahead
// with a warning.
func (f *fleetCtx) awaitHeldOut(ctx context.Context, c *cli.Context, tl *timeline, id, to string, others []string) error {
	wctx, cancel := context.WithTimeout(ctx, holdOutWait)
	defer cancel()
	var left []string
	why := map[string]string{}
	for {
		v, err := f.look(wctx)
		if err == nil {
			left = slices.DeleteFunc(slices.Clone(others), func(r string) bool {
				e, ok := v.entry(r)
				out := !ok || !v.reporting(e) || strings.Contains(e.Hold, id) || (e.State != "Voting" && e.State != "Registering")
				if !out {
					why[r] = fmt.Sprintf("%s (state %s, hold %q, report %s old)", r, e.State, e.Hold, ago(v.at, e.Updated))
				}
				return out
			})
			if len(left) == 0 {
				tl.log("other replicas out of the election: %s", strings.Join(others, ", "))
				return nil
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("hand-over %s while waiting for the other replicas to leave the election", ended(ctx, c))
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
			if !c.Bool("force") {
				return fmt.Errorf("not handed over: within %s these replicas did not confirm they left the election, so one of them could take the lock instead of %s: %s; "+
					"the request is removed and the leader keeps leading; check their valguard (valguard status), or --force to go ahead anyway",
					holdOutWait, to, strings.Join(named, "; "))
			}
			tl.log("WARNING: --force: going ahead although these replicas did not confirm they left the election (one of them may take the lock instead of %s): %s",
				to, strings.Join(named, "; "))
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// chainWatch watches the chain through --node-rpc, else the RPCs the
// replicas report, the target's first.
func (f *fleetCtx) chainWatch(c *cli.Context, v *view, to string) *chainWatch {
	cw := &chainWatch{address: f.id, rpcs: c.StringSlice("node-rpc")}
	if len(cw.rpcs) > 0 {
		return cw
	}
	add := func(e roster.Entry) {
		if e.NodeRPC != "" && !slices.Contains(cw.rpcs, e.NodeRPC) && v.reporting(e) {
			cw.rpcs = append(cw.rpcs, e.NodeRPC)
		}
	}
	if e, ok := v.entry(to); ok {
		add(e)
	}
	for _, e := range v.entries {
		if e.Replica != v.leaderID() {
			add(e)
		}
	}
	if e, ok := v.entry(v.leaderID()); ok {
		add(e)
	}
	return cw
}

// follow waits for the lock to move, the new leader to validate and its
// first signature on chain, then for the old leader to rejoin. When
// nobody takes the lock within freeNoTaker of its release, or the named
// target stops reporting before it took the lock, it ends the request
// early (so that any synced standby, or the old leader, may lead) and
// says so.
func (f *fleetCtx) follow(ctx context.Context, c *cli.Context, tl *timeline, cw *chainWatch, req roster.Handover, h0 int64, chain bool) error {
	from, to := req.From, req.To
	var released, taken, validating, endedEarly bool
	var freeSince, lastLook time.Time
	var newLeader string
	var hValidating, first int64
	var missed []int64
	next := h0 + 1
	lastKnown := h0 // the last chain height read, for when a read fails
	for {
		if !validating && chain {
			if h, err := cw.height(ctx); err == nil {
				lastKnown = h
			}
		}
		if l, err := f.el.Leader(ctx); err == nil {
			if !released && (l == nil || l.ReplicaID != from) {
				released = true
				tl.log("lock released by %s", from)
			}
			if endedEarly && !taken && l != nil && l.ReplicaID == from {
				tl.log("%s holds the lock (again)", from)
				return fmt.Errorf("nothing moved: the request was ended early and %s leads; see valguard status", from)
			}
			if !taken && l != nil && l.ReplicaID != from {
				taken, newLeader = true, l.ReplicaID
				tl.log("lock taken by %s", newLeader)
				if to != "" && newLeader != to {
					tl.log("WARNING: %s took the lock, not %s", newLeader, to)
				}
			}
			switch {
			case l != nil:
				freeSince = time.Time{}
			case released && freeSince.IsZero():
				freeSince = time.Now()
			}
		}
		if !taken && !endedEarly {
			why := ""
			if !freeSince.IsZero() && time.Since(freeSince) >= freeNoTaker {
				why = fmt.Sprintf("the lock has been free for %s and nobody took it", time.Since(freeSince).Round(100*time.Millisecond))
			}
			if why == "" && to != "" && time.Since(lastLook) >= targetLook {
				lastLook = time.Now()
				if v, err := f.look(ctx); err == nil {
					if e, ok := v.entry(to); !ok || !v.reporting(e) {
						why = fmt.Sprintf("the target %s stopped reporting (its valguard is not running, hung or cut off from Consul)", to)
					}
				}
			}
			if why != "" {
				endedEarly = true
				if err := f.ro.EndHandover(ctx, req.ID); err != nil {
					tl.log("%s; could not end the request early (it ends by itself at %s): %v", why, req.Until.Format(time.RFC3339), f.hint(err))
				} else {
					tl.log("%s: request ended early, so that any synced standby (or %s again) may take the lock", why, from)
				}
			}
		}
		if taken && !validating {
			if v, err := f.look(ctx); err == nil {
				if e, ok := v.entry(newLeader); ok && e.State == "Validating" {
					validating = true
					if h, err := cw.height(ctx); err == nil {
						lastKnown = h
					}
					hValidating = lastKnown
					tl.log("%s Validating (chain height %d)", newLeader, hValidating)
				}
			}
		}
		if validating && chain {
			if h, err := cw.height(ctx); err == nil {
				for ; next <= h && first == 0; next++ {
					signed, err := cw.signedAt(ctx, next)
					if err != nil {
						break
					}
					switch {
					case signed && next > hValidating:
						first = next
					case !signed:
						missed = append(missed, next)
					}
				}
			}
			if first > 0 {
				tl.log("first signature of the new leader on chain at height %d", first)
				fmt.Fprintf(c.App.Writer, "hand-over %s → %s done: first signature %.3fs after the request, at height %d; missed heights since the request (height %d): %d %v\n",
					from, newLeader, time.Since(tl.start).Seconds(), first, h0, len(missed), missed)
				f.awaitRejoin(ctx, tl, from)
				return nil
			}
		}
		if validating && !chain {
			fmt.Fprintf(c.App.Writer, "hand-over %s → %s done (%.3fs); the chain was not watched (no node RPC answered)\n", from, newLeader, time.Since(tl.start).Seconds())
			f.awaitRejoin(ctx, tl, from)
			return nil
		}
		select {
		case <-ctx.Done():
			where := fmt.Sprintf("lock released: %v, taken by: %q, new leader Validating: %v", released, newLeader, validating)
			if validating && chain {
				where += fmt.Sprintf(", no signature of it on chain yet (checked up to height %d)", next-1)
			}
			return fmt.Errorf("hand-over %s: %s; the request is removed; see valguard status", ended(ctx, c), where)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awaitRejoin removes the request and waits (within ctx, at most a
// minute) for the old leader to be back in the election or held by a
// drain mark.
func (f *fleetCtx) awaitRejoin(ctx context.Context, tl *timeline, from string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if h, _, err := f.ro.Handover(ctx); err == nil && h != nil && h.From == from {
		_ = f.ro.EndHandover(ctx, h.ID)
	}
	for {
		if v, err := f.look(ctx); err == nil {
			if e, ok := v.entry(from); ok {
				switch {
				case e.State == "Voting":
					tl.log("%s back in the election as a standby (Voting)", from)
					return
				case v.drained(from) && e.Drained && e.State != "Validating" && e.State != "Shutdown":
					tl.log("%s out of the election, drained (%s)", from, e.State)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			tl.log("%s not yet back in the election (valguard status)", from)
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func newRequestID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
