package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/valguard/valguard/internal/localnet"
)

// Failover kinds of the benchmark, in table order.
const (
	kindGraceful = "graceful (SIGTERM)"
	kindHandover = "voluntary hand-over (valguard handover --to)"
	kindCrash    = "crash (SIGKILL), lease only"
	kindDepose   = "crash (SIGKILL), deposition after 2 s"
)

// Bench settings.
const (
	// deposeAfter is --signer-depose-after in the deposition runs.
	deposeAfter = 2 * time.Second
	// rateWindow is how long blocks are counted in each mode.
	rateWindow = 60 * time.Second
	// stopTimeout bounds a graceful stop of a replica's valguard.
	stopTimeout = 30 * time.Second
)

// signerMode are the replicas' flags in the signer mode. The restart mode
// is valguard's default and needs none.
var signerMode = []string{"--sign-mode", "signer"}

// errNotDeposed is returned when a deposition run was won by the lease:
// the standby took over without destroying the leader's session.
var errNotDeposed = errors.New("the standby led without deposing the leader")

// modeResult is what the benchmark measured in one sign mode.
type modeResult struct {
	name string
	runs map[string][]timeline // by failover kind
	idle idle
	rate blockRate
	// fence and reply are the signer's "signed" sign requests: the fence
	// (fence_took) and arrival to reply (took), in milliseconds.
	fence, reply []float64
	safety       safety
	took         time.Duration // wall time of the mode
	// results counts the mode's sign requests by result and refusals by
	// class (signer mode only; nil otherwise).
	results map[string]int
}

// runBench runs the benchmark on one network and one Consul: the restart
// mode (the replicas as setUp started them), then, after a graceful stop
// of both replicas, the signer mode, which reads the watermark the restart
// mode left in Consul, then, after another such stop, the signer mode's
// leaderless policy (--signers any), on the record the leader policy
// left; then, when a horcrux binary is found, Horcrux on a localnet of its
// own (benchHorcrux). It prints the columns side by side.
func runBench(ctx context.Context, env *demoEnv, runs int) error {
	began := time.Now()
	restart, err := env.benchMode(ctx, "restart", runs)
	if err != nil {
		return err
	}
	if err := env.switchMode(ctx, signerMode); err != nil {
		return err
	}
	signer, err := env.benchMode(ctx, "signer", runs)
	if err != nil {
		return err
	}
	if err := env.switchMode(ctx, anyMode); err != nil {
		return err
	}
	anyRes, err := env.benchAny(ctx, runs)
	if err != nil {
		return err
	}
	// Horcrux last, on a localnet of its own, valguard's set-up stopped
	// first so that the two do not share the machine's cores.
	var hx *modeResult
	if bin := horcruxBinary(); bin == "" {
		env.say("%s", hxHint)
	} else {
		env.tearDown()
		env.say("valguard's localnet and Consul stopped; Horcrux (%s) next", bin)
		res, err := benchHorcrux(ctx, env, bin, runs)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			env.say("Horcrux: %v; its column shows what was measured before (the rest \"%s\")", err, noFigure)
		}
		hx = &res
	}
	fmt.Println()
	printBench(os.Stdout, env.wiring, env.consulKind(), runs, restart, signer, anyRes, hx)
	hxTook := ""
	if hx != nil {
		hxTook = fmt.Sprintf(", Horcrux %s", hx.took.Round(time.Second))
	}
	fmt.Printf("\nrestart mode took %s, signer mode (leader) %s, signer mode (any) %s%s, the whole bench %s (set-up included: %s)\n",
		restart.took.Round(time.Second), signer.took.Round(time.Second), anyRes.took.Round(time.Second), hxTook,
		time.Since(began).Round(time.Second), time.Since(env.start).Round(time.Second))
	return nil
}

// benchMode measures the mode the replicas run in now: valguard's RSS and
// the block rate while a replica leads, then runs graceful failovers,
// voluntary hand-overs and crash failovers (and, in the signer mode,
// crashes with deposition), then the safety check.
func (e *demoEnv) benchMode(ctx context.Context, name string, runs int) (modeResult, error) {
	res := modeResult{name: name, runs: map[string][]timeline{}}
	began := time.Now()
	leader, _, err := e.leaderAndStandby(ctx)
	if err != nil {
		return res, err
	}
	h0, _ := localnet.Height(ctx, e.rpc)
	if _, err := e.firstSigned(ctx, h0, time.Minute); err != nil {
		return res, err
	}
	e.say("%s mode: replica %s leads and the validator signs", name, leader.id)
	if err := e.measureIdle(leader); err != nil {
		return res, err
	}
	res.idle = e.idle
	if res.rate, err = e.blockRate(ctx, rateWindow); err != nil {
		return res, err
	}
	e.say("%s mode: %s", name, res.rate)
	if res.runs[kindGraceful], err = e.failovers(ctx, kindGraceful, syscall.SIGTERM, runs); err != nil {
		return res, err
	}
	if res.runs[kindHandover], err = e.handovers(ctx, runs); err != nil {
		return res, err
	}
	if res.runs[kindCrash], err = e.failovers(ctx, kindCrash, syscall.SIGKILL, runs); err != nil {
		return res, err
	}
	if name == "signer" {
		if res.runs[kindDepose], err = e.depositions(ctx, runs); err != nil {
			return res, err
		}
		res.fence, res.reply = fenceLatencies(e.logPaths(), began)
		res.results = signResults(e.logPaths(), began, time.Now())
	}
	if res.safety, err = e.checkSafety(ctx); err != nil {
		return res, err
	}
	res.took = time.Since(began)
	return res, nil
}

// failovers signals the leader's valguard runs times; after each, the old
// leader is started again and waited for as the standby.
func (e *demoEnv) failovers(ctx context.Context, kind string, sig syscall.Signal, runs int) ([]timeline, error) {
	var out []timeline
	for i := 0; i < runs; i++ {
		leader, standby, err := e.leaderAndStandby(ctx)
		if err != nil {
			return out, err
		}
		h0, _ := localnet.Height(ctx, e.rpc)
		if _, err := e.firstSigned(ctx, h0, time.Minute); err != nil {
			return out, err
		}
		tl, err := e.failover(ctx, leader, standby, sig)
		if err != nil {
			return out, err
		}
		deposed := ""
		if !tl.deposedAt.IsZero() {
			deposed = fmt.Sprintf(", deposed the leader at +%.2fs", tl.deposedAt.Sub(tl.killAt).Seconds())
		}
		e.say("%s run %d/%d: kill→first signature %.2fs, missed heights %d%s", kind, i+1, runs, tl.toSign().Seconds(), tl.missed, deposed)
		out = append(out, tl)
		if err := leader.start(ctx); err != nil {
			return out, err
		}
		if err := leader.waitState(ctx, "Voting", 2*time.Minute); err != nil {
			return out, err
		}
	}
	return out, nil
}

// depositions gives both replicas --signer-depose-after (the standby is
// restarted with it now, the leader when it is started again after its
// crash) and runs SIGKILL failovers; each must be won by a deposition.
func (e *demoEnv) depositions(ctx context.Context, runs int) ([]timeline, error) {
	mode := append(append([]string{}, signerMode...), "--signer-depose-after", deposeAfter.String())
	for _, r := range e.replicas {
		r.mode = mode
	}
	_, standby, err := e.leaderAndStandby(ctx)
	if err != nil {
		return nil, err
	}
	if err := standby.stop(); err != nil {
		return nil, err
	}
	if err := standby.start(ctx); err != nil {
		return nil, err
	}
	if err := standby.waitState(ctx, "Voting", 2*time.Minute); err != nil {
		return nil, err
	}
	e.say("standby %s restarted with --signer-depose-after %s", standby.id, deposeAfter)
	tls, err := e.failovers(ctx, kindDepose, syscall.SIGKILL, runs)
	for i, tl := range tls {
		if tl.deposedAt.IsZero() {
			return tls, fmt.Errorf("deposition run %d: %w (log: %s)", i+1, errNotDeposed, e.replicaByID(tl.to).logPath)
		}
	}
	return tls, err
}

// switchMode stops both replicas gracefully, the standby first, and starts
// them again with mode: a supported switch, the watermark in Consul
// carries over.
func (e *demoEnv) switchMode(ctx context.Context, mode []string) error {
	leader, standby, err := e.leaderAndStandby(ctx)
	if err != nil {
		return err
	}
	for _, r := range []*replica{standby, leader} {
		if err := r.stop(); err != nil {
			return err
		}
	}
	for _, r := range e.replicas {
		r.mode = mode
		if err := r.start(ctx); err != nil {
			return err
		}
	}
	e.say("replicas stopped (SIGTERM, standby first) and started with %v", mode)
	return nil
}

// stop sends SIGTERM to the replica's valguard alone and waits for it and
// for the node it started to be gone.
func (r *replica) stop() error {
	node := localnet.LastNodePID(r.logPath)
	if err := r.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-r.p.Done():
	case <-time.After(stopTimeout):
		return fmt.Errorf("valguard %s did not exit within %s of SIGTERM", r.id, stopTimeout)
	}
	if localnet.Alive(node) {
		return fmt.Errorf("valguard %s exited, its node (pid %d) still runs", r.id, node)
	}
	return nil
}

func (e *demoEnv) replicaByID(id string) *replica {
	for _, r := range e.replicas {
		if r.id == id {
			return r
		}
	}
	return e.replicas[0]
}

func (e *demoEnv) logPaths() []string {
	var out []string
	for _, r := range e.replicas {
		out = append(out, r.logPath)
	}
	return out
}

// blockRate is the chain's pace over a window.
type blockRate struct {
	from, to int64
	// span is between the header times of blocks from and to.
	span time.Duration
	// missed are the heights in (from, to) the HA validator did not sign.
	missed int
}

func (b blockRate) perSecond() float64 {
	if b.span <= 0 {
		return 0
	}
	return float64(b.to-b.from) / b.span.Seconds()
}

func (b blockRate) String() string {
	return fmt.Sprintf("%.3f blocks/s (heights %d..%d over %.1fs; the validator missed %d of them)",
		b.perSecond(), b.from, b.to, b.span.Seconds(), b.missed)
}

// blockRate counts the blocks made during window from now, timed by
// their headers.
func (e *demoEnv) blockRate(ctx context.Context, window time.Duration) (blockRate, error) {
	var b blockRate
	c, err := rpchttp.New(e.rpc, "/websocket")
	if err != nil {
		return b, err
	}
	if b.from, err = localnet.Height(ctx, e.rpc); err != nil {
		return b, err
	}
	select {
	case <-ctx.Done():
		return b, ctx.Err()
	case <-time.After(window):
	}
	if b.to, err = localnet.Height(ctx, e.rpc); err != nil {
		return b, err
	}
	var at [2]time.Time
	for i, h := range []int64{b.from, b.to} {
		blk, err := c.Block(ctx, &h)
		if err != nil {
			return b, err
		}
		at[i] = blk.Block.Time
	}
	b.span = at[1].Sub(at[0])
	_, missed, err := localnet.Signers(ctx, e.rpc, b.from+1, b.to-1, e.net.HAAddress)
	b.missed = len(missed)
	return b, err
}
