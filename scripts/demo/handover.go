package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/valguard/valguard/internal/localnet"
)

// handoverTimeout is the hand-over command's --timeout in the bench.
const handoverTimeout = 2 * time.Minute

// handoverDoneRE is the line valguard handover prints when the new
// leader's first signature is in a commit.
var handoverDoneRE = regexp.MustCompile(`first signature ([0-9.]+)s after the request, at height (\d+); missed heights since the request \(height (\d+)\): (\d+)`)

// handoverResult is what the bench reads from valguard handover's output.
type handoverResult struct {
	secs          float64
	first, height int64 // first signature's height; chain height at the request
	missed        int
}

// parseHandover reads the command's closing line.
func parseHandover(out string) (handoverResult, error) {
	m := handoverDoneRE.FindStringSubmatch(out)
	if m == nil {
		return handoverResult{}, fmt.Errorf("no first signature in the hand-over output:\n%s", out)
	}
	var r handoverResult
	r.secs, _ = strconv.ParseFloat(m[1], 64)
	r.first, _ = strconv.ParseInt(m[2], 10, 64)
	r.height, _ = strconv.ParseInt(m[3], 10, 64)
	r.missed, _ = strconv.Atoi(m[4])
	return r, nil
}

// handovers runs `valguard handover --to <standby>` runs times, so that
// the direction alternates (a → b, b → a, ...), each once the old leader
// is back as the standby. Each is timed as the failovers are: from the
// command's start to the timestamp of the new leader's first commit
// signature (the height the command reports), with the heights from the
// request to it that the validator did not sign.
func (e *demoEnv) handovers(ctx context.Context, runs int) ([]timeline, error) {
	var out []timeline
	c, err := rpchttp.New(e.rpc, "/websocket")
	if err != nil {
		return nil, err
	}
	for i := 0; i < runs; i++ {
		leader, standby, err := e.leaderAndStandby(ctx)
		if err != nil {
			return out, err
		}
		if err := e.synced(ctx, standby); err != nil {
			return out, err
		}
		h0, err := localnet.Height(ctx, e.rpc)
		if err != nil {
			return out, err
		}
		if _, err := e.firstSigned(ctx, h0, time.Minute); err != nil {
			return out, err
		}
		tl := timeline{from: leader.id, to: standby.id}
		if tl.killHeight, err = localnet.Height(ctx, e.rpc); err != nil {
			return out, err
		}
		tl.killAt = time.Now()
		cmd := exec.CommandContext(ctx, e.valguard, "handover", "--consul-url", "http://"+e.consulAddr(0),
			"--validator-key", e.net.ValidatorKey, "--node-rpc", e.rpc, "--to", standby.id, "--timeout", handoverTimeout.String())
		outb, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("valguard handover --to %s: %v\n%s", standby.id, err, outb)
		}
		res, err := parseHandover(string(outb))
		if err != nil {
			return out, err
		}
		at, ok := e.signature(ctx, c, res.first)
		if !ok {
			return out, fmt.Errorf("hand-over %s → %s: no signature of the validator at height %d, which valguard handover reported", leader.id, standby.id, res.first)
		}
		tl.first = signed{height: res.first, at: at}
		tl.lockAt, _ = standby.event("lock acquired", "", tl.killAt)
		tl.validateAt = time.Now()
		_, missed, err := localnet.Signers(ctx, e.rpc, tl.killHeight+1, res.first, e.net.HAAddress)
		if err != nil {
			return out, err
		}
		tl.missed = len(missed)
		e.say("%s run %d/%d (%s → %s): request→first signature %.2fs (the command says %.3fs), missed heights %d",
			kindHandover, i+1, runs, leader.id, standby.id, tl.toSign().Seconds(), res.secs, tl.missed)
		out = append(out, tl)
		if err := leader.waitState(ctx, "Voting", 2*time.Minute); err != nil {
			return out, err
		}
	}
	return out, nil
}

// synced waits until valguard status exits 0 (a leader and a synced
// standby), which handover --to needs of its target.
func (e *demoEnv) synced(ctx context.Context, standby *replica) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cmd := exec.CommandContext(ctx, e.valguard, "status", "--consul-url", "http://"+e.consulAddr(0), "--validator-key", e.net.ValidatorKey)
		outb, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s not a synced standby within 2m (valguard status: %v)\n%s(log: %s)", standby.id, err, outb, filepath.Base(standby.logPath))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
