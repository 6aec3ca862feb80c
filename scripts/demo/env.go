package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"

	"github.com/valguard/valguard/internal/freeport"
	"github.com/valguard/valguard/internal/localnet"
)

type demoEnv struct {
	dir      string
	valguard string
	wiring   localnet.Wiring
	consul   *localnet.Consul        // a dev agent, or nil
	cluster  *localnet.ConsulCluster // servers, or nil
	net      *localnet.Net
	nodes    []*localnet.Process
	replicas []*replica
	rpc      string
	start    time.Time
	idle     idle
	// turn picks the next victim of a leaderless kill (it alternates).
	turn int
}

// idle is what measureIdle sampled.
type idle struct {
	rssMB, cpuPct float64
	window        time.Duration
}

func (e *demoEnv) say(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// setUp starts Consul, the localnet wired as wiring says, and both
// replicas in the restart mode.
// With consulServers > 1 Consul is a cluster of that many servers (each
// replica talking to a server of its own, as to a local agent); with 1, a
// dev agent.
func setUp(ctx context.Context, dir, valguard string, wiring localnet.Wiring, consulServers int) (*demoEnv, error) {
	e := &demoEnv{dir: dir, valguard: valguard, wiring: wiring, start: time.Now()}
	consulBin, err := localnet.ConsulBinary()
	if err != nil {
		return e, err
	}
	cometBin, err := localnet.CometBFTBinary()
	if err != nil {
		return e, err
	}
	if consulServers > 1 {
		if e.cluster, err = localnet.StartConsulCluster(ctx, consulBin, filepath.Join(dir, "consul"), consulServers, nil); err != nil {
			return e, err
		}
		e.say("consul cluster of %d servers (raft_multiplier %d) on %s", consulServers, localnet.ClusterRaftMultiplier, strings.Join(e.cluster.Addrs(), ", "))
	} else {
		if e.consul, err = localnet.StartConsul(ctx, consulBin, filepath.Join(dir, "consul"), nil); err != nil {
			return e, err
		}
		e.say("consul agent on %s", e.consul.Addr)
	}
	if e.net, err = localnet.Create(ctx, localnet.Config{Dir: filepath.Join(dir, "chain"), Binary: cometBin, Wiring: wiring}); err != nil {
		return e, err
	}
	if e.nodes, err = e.net.StartValidators(ctx, filepath.Join(dir, "logs")); err != nil {
		return e, err
	}
	e.rpc = e.net.RPC(e.net.Homes[0])
	e.say("CometBFT localnet: validators 0-2 running, validator 3 (%s, power 10 of 40) held by replicas a and b; wiring %s", short(e.net.HAAddress), wiring)
	if err := localnet.WaitHeight(ctx, e.rpc, 2); err != nil {
		return e, err
	}
	for i, id := range []string{"a", "b"} {
		r, err := e.newReplica(id, i)
		if err != nil {
			return e, err
		}
		e.replicas = append(e.replicas, r)
	}
	for _, r := range e.replicas {
		if err := r.start(ctx); err != nil {
			return e, err
		}
	}
	e.say("replicas started: valguard run --node-home <replica home> --validator-key %s (logs in %s)", e.net.ValidatorKey, filepath.Join(dir, "logs"))
	return e, nil
}

// tearDown stops valguard first (it stops its node, then releases), then
// the validators and Consul.
func (e *demoEnv) tearDown() {
	for _, r := range e.replicas {
		if r.p != nil {
			_ = r.p.Stop(20 * time.Second)
		}
	}
	for _, n := range e.nodes {
		_ = n.Stop(5 * time.Second)
	}
	if e.consul != nil {
		_ = e.consul.Stop(5 * time.Second)
	}
	if e.cluster != nil {
		e.cluster.Kill()
	}
}

type replica struct {
	e    *demoEnv
	id   string
	args []string
	// mode are the flags added to args at each start: none for the
	// restart mode, --sign-mode signer and its flags for the signer mode.
	mode    []string
	logPath string
	metrics string
	p       *localnet.Process
}

func (e *demoEnv) newReplica(id string, i int) (*replica, error) {
	port, err := freeport.Take()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	r := &replica{e: e, id: id, metrics: addr, logPath: filepath.Join(e.dir, "logs", "valguard-"+id+".log")}
	r.args = []string{"run", "--replica-id", id, "--node-home", e.net.ReplicaHomes[i], "--node-binary", e.net.Binary,
		"--validator-key", e.net.ValidatorKey, "--consul-url", "http://" + e.consulAddr(i),
		"--metrics-addr", addr, "--log-format", "json"}
	return r, nil
}

func (r *replica) start(ctx context.Context) error {
	args := append(append([]string{}, r.args...), r.mode...)
	p, err := localnet.StartProcess(ctx, r.logPath, nil, r.e.valguard, args...)
	r.p = p
	return err
}

func (r *replica) state() string { return localnet.ValguardState(r.metrics) }

func (r *replica) waitState(ctx context.Context, want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.state() == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("replica %s not %s within %s (log: %s)", r.id, want, d, r.logPath)
}

// event is the time of the first log event with message msg (and, if
// role is set, that role) after t.
func (r *replica) event(msg, role string, after time.Time) (time.Time, bool) {
	for _, ev := range localnet.ValguardEvents(r.logPath) {
		if ev["message"] != msg || (role != "" && ev["role"] != role) {
			continue
		}
		s, _ := ev["time"].(string)
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.After(after) {
			return t, true
		}
	}
	return time.Time{}, false
}

// leaderAndStandby waits until one replica validates and the other votes.
func (e *demoEnv) leaderAndStandby(ctx context.Context) (*replica, *replica, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		a, b := e.replicas[0], e.replicas[1]
		sa, sb := a.state(), b.state()
		switch {
		case sa == "Validating" && sb == "Voting":
			return a, b, nil
		case sb == "Validating" && sa == "Voting":
			return b, a, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, nil, errors.New("no leader and standby within 2m; see the logs")
}

func (e *demoEnv) activeValidator() string {
	out, _ := exec.Command(e.valguard, "active-validator", "--consul-url", "http://"+e.consulAddr(0),
		"--validator-key", e.net.ValidatorKey).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// signature is when the HA validator signed height h (its commit-signature
// timestamp), if it did.
func (e *demoEnv) signature(ctx context.Context, c *rpchttp.HTTP, h int64) (time.Time, bool) {
	res, err := c.Commit(ctx, &h)
	if err != nil || res.Commit == nil {
		return time.Time{}, false
	}
	for _, s := range res.Commit.Signatures {
		if s.BlockIDFlag == types.BlockIDFlagCommit && strings.EqualFold(s.ValidatorAddress.String(), e.net.HAAddress) {
			return s.Timestamp, true
		}
	}
	return time.Time{}, false
}

// firstSigned waits for the HA validator's first signature above height
// after and returns its height and time.
func (e *demoEnv) firstSigned(ctx context.Context, after int64, d time.Duration) (signed, error) {
	c, err := rpchttp.New(e.rpc, "/websocket")
	if err != nil {
		return signed{}, err
	}
	deadline := time.Now().Add(d)
	next := after + 1
	for time.Now().Before(deadline) {
		h, err := localnet.Height(ctx, e.rpc)
		for ; err == nil && next < h; next++ { // commit of next is final once h > next
			if t, ok := e.signature(ctx, c, next); ok {
				return signed{height: next, at: t}, nil
			}
		}
		select {
		case <-ctx.Done():
			return signed{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return signed{}, fmt.Errorf("validator signed nothing above height %d within %s", after, d)
}

type signed struct {
	height int64
	at     time.Time
}

// measureIdle samples the leader's valguard RSS and CPU over a window into
// e.idle.
func (e *demoEnv) measureIdle(r *replica) error {
	got, err := sampleIdle(r.p.PID, 10*time.Second)
	if err != nil {
		return err
	}
	e.idle = got
	e.say("valguard %s while Validating: RSS %.1f MB, CPU %.2f%% of a core", r.id, e.idle.rssMB, e.idle.cpuPct)
	return nil
}

// safety is what checkSafety found.
type safety struct {
	height          int64 // heights 1..height were scanned
	evidence, lines int
	power           int64
}

func (s safety) String() string {
	return fmt.Sprintf("heights 1..%d: %d DuplicateVoteEvidence, %d conflicting-vote log lines, validator power %d",
		s.height, s.evidence, s.lines, s.power)
}

// checkSafety is the double-sign check: no evidence on chain, no
// conflicting votes in any node log, power unchanged. It returns an error
// if any of them failed.
func (e *demoEnv) checkSafety(ctx context.Context) (safety, error) {
	h, err := localnet.Height(ctx, e.rpc)
	if err != nil {
		return safety{}, err
	}
	ev, err := localnet.DuplicateVoteEvidence(ctx, e.rpc, 1, h)
	if err != nil {
		return safety{}, err
	}
	logs, _ := filepath.Glob(filepath.Join(e.dir, "logs", "*.log"))
	lines, err := localnet.ConflictingVoteLines(logs...)
	if err != nil {
		return safety{}, err
	}
	power, err := localnet.Power(ctx, e.rpc, e.net.HAAddress)
	if err != nil {
		return safety{}, err
	}
	s := safety{height: h, evidence: len(ev), lines: len(lines), power: power}
	e.say("evidence check, %s", s)
	if len(ev) > 0 || len(lines) > 0 || power != localnet.DefaultPower {
		return s, fmt.Errorf("DOUBLE SIGN: evidence %v; log lines %v", ev, lines)
	}
	return s, nil
}

// consulAddr is the Consul HTTP address replica i talks to: the dev agent,
// or server i of the cluster.
func (e *demoEnv) consulAddr(i int) string {
	if e.cluster != nil {
		return e.cluster.Servers[i%len(e.cluster.Servers)].Addr
	}
	return e.consul.Addr
}

// consulKind says what Consul the bench ran against, for its report.
func (e *demoEnv) consulKind() string {
	if e.cluster != nil {
		return fmt.Sprintf("%d servers, raft_multiplier %d", len(e.cluster.Servers), localnet.ClusterRaftMultiplier)
	}
	return "a -dev agent"
}
