//go:build e2e

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/localnet"
)

// localChain is a running localnet with Consul, for end-to-end tests.
type localChain struct {
	t      *testing.T
	net    *localnet.Net
	consul *consultest.Agent
	rpc    string // a validator's RPC, for chain checks
	logs   []string
	dir    string

	validatorLogs []string            // the logs of the validator nodes startChain started
	validators    []*localnet.Process // those nodes, in the order of net.Homes without the HA one
	replicas      []*replica          // every replica made by c.replica
}

func cometbftOrSkip(t *testing.T) string {
	t.Helper()
	return binaryOrSkip(t, localnet.CometBFTBinary)
}

// binaryOrSkip is the binary find looks up; without one the test is
// skipped, or fails in CI (make test installs every binary).
func binaryOrSkip(t *testing.T, find func() (string, error)) string {
	t.Helper()
	bin, err := find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (make test installs it)", err)
		}
		t.Skip(err)
	}
	return bin
}

func startChain(t *testing.T, powers []int64) *localChain {
	t.Helper()
	cometbftOrSkip(t)
	return startChainOn(t, powers, consultest.Start(t))
}

// startChainOn is startChain with the Consul agent the replicas use by
// default given (a server of a cluster, say).
func startChainOn(t *testing.T, powers []int64, agent *consultest.Agent) *localChain {
	t.Helper()
	return startChainHomes(t, powers, agent, 0)
}

// startChainHomes is startChainOn with replicas replica homes (0: the
// localnet's default, 2).
func startChainHomes(t *testing.T, powers []int64, agent *consultest.Agent, replicas int) *localChain {
	t.Helper()
	return startChainWith(t, cometbftOrSkip(t), powers, agent, replicas)
}

// startChainWith is startChainHomes on the cometbft binary bin.
func startChainWith(t *testing.T, bin string, powers []int64, agent *consultest.Agent, replicas int) *localChain {
	t.Helper()
	dir := t.TempDir()
	ctx := t.Context()
	n, err := localnet.Create(ctx, localnet.Config{Dir: dir, Binary: bin, Powers: powers, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := n.StartValidators(ctx, filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	c := &localChain{t: t, net: n, consul: agent, rpc: n.RPC(n.Homes[0]), dir: dir, validators: procs}
	for _, p := range procs {
		c.logs = append(c.logs, p.LogPath)
		c.validatorLogs = append(c.validatorLogs, p.LogPath)
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	}
	return c
}

// replica starts a valguard replica on replica home i.
func (c *localChain) replica(id string, i int, extra ...string) *replica {
	args := append([]string{
		"--node-home", c.net.ReplicaHomes[i], "--node-binary", c.net.Binary,
		"--validator-key", c.net.ValidatorKey, "--consul-url", "http://" + c.consul.Addr,
		"--stop-timeout", "10s",
	}, extra...)
	r := newReplica(c.t, id, c.dir, args...)
	c.logs = append(c.logs, r.logPath)
	c.replicas = append(c.replicas, r)
	return r
}

func (c *localChain) height() int64 {
	h, err := localnet.Height(c.t.Context(), c.rpc)
	if err != nil {
		c.t.Fatal(err)
	}
	return h
}

// firstSignedAfter waits for the HA validator to sign a height > after and
// returns it.
func (c *localChain) firstSignedAfter(after int64, d time.Duration) int64 {
	c.t.Helper()
	ctx := c.t.Context()
	var got int64
	ok := within(ctx, d, func() bool {
		h, err := localnet.Height(ctx, c.rpc)
		if err != nil {
			return false
		}
		for x := after + 1; x <= h; x++ {
			if s, err := localnet.SignedAt(ctx, c.rpc, c.net.HAAddress, x); err == nil && s {
				got = x
				return true
			}
		}
		return false
	})
	if !ok {
		c.t.Fatalf("validator %s signed nothing after height %d within %s", c.net.HAAddress, after, d)
	}
	return got
}

// evidenceBlocks is how many blocks past the height at the time of the
// call the double-sign scan waits for: DuplicateVoteEvidence is committed a
// block or two after the offence, and the kvstore app's power change takes
// effect later still.
const evidenceBlocks = 3

// evidenceWait bounds that wait. With 3 of 4 validators up the localnet
// makes ~0.65 blocks/s.
const evidenceWait = 60 * time.Second

// noDoubleSign checks the three signs of a double-sign (docs/testing.md, localnet facts): no
// DuplicateVoteEvidence in any block, no conflicting vote in any node log,
// the validator's power unchanged. It first waits until the chain is
// evidenceBlocks past the height at the call, so that evidence of a
// signature made just before the call has landed; a chain that does not get
// there fails the test (use noDoubleSignHalted on a chain halted on
// purpose).
func (c *localChain) noDoubleSign(power int64) {
	c.t.Helper()
	c.waitEvidenceBlocks()
	c.failOnDoubleSign(power)
}

// waitEvidenceBlocks waits until the chain is evidenceBlocks past its
// height at the call, and fails the test if it does not get there within
// evidenceWait.
func (c *localChain) waitEvidenceBlocks() {
	c.t.Helper()
	h0 := c.height()
	ctx, cancel := context.WithTimeout(c.t.Context(), evidenceWait)
	defer cancel()
	if err := localnet.WaitHeight(ctx, c.rpc, h0+evidenceBlocks); err != nil {
		c.t.Fatalf("double-sign scan: the chain did not get %d blocks past height %d within %s, so evidence could not land: %v",
			evidenceBlocks, h0, evidenceWait, err)
	}
}

// noDoubleSignHalted is noDoubleSign for a chain halted on purpose, where
// no block can carry evidence any more and waiting for blocks would fail:
// it checks instead that the validator node in home has signed nothing
// since its sign state was raised (the raise writes no signature; FilePV
// saves one before it returns a vote), then scans blocks, logs and power
// at once.
func (c *localChain) noDoubleSignHalted(power int64, home string) {
	c.t.Helper()
	data, err := os.ReadFile(filepath.Join(home, "data", "priv_validator_state.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	var st struct {
		Height    string `json:"height"`
		Round     int32  `json:"round"`
		Step      int8   `json:"step"`
		Signature []byte `json:"signature"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		c.t.Fatalf("sign state of %s: %v", home, err)
	}
	if len(st.Signature) > 0 {
		c.t.Fatalf("the validator node in %s signed at %s/%d/%d on a halted chain", home, st.Height, st.Round, st.Step)
	}
	c.failOnDoubleSign(power)
}

func (c *localChain) failOnDoubleSign(power int64) {
	c.t.Helper()
	h, findings, err := c.doubleSignFindings(power)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(findings) > 0 {
		c.t.Fatalf("double sign:\n%s", strings.Join(findings, "\n"))
	}
	c.t.Logf("checked heights 1..%d: no evidence, no conflicting votes, power %d", h, power)
}

// doubleSignFindings scans, with no wait, every block from 1 to the latest
// height for DuplicateVoteEvidence, every node log (nodeLogs) for a
// conflicting vote, and the validator's power, and describes each sign of a
// double sign it finds. It returns the last height scanned.
func (c *localChain) doubleSignFindings(power int64) (int64, []string, error) {
	ctx := c.t.Context()
	h, err := localnet.Height(ctx, c.rpc)
	if err != nil {
		return 0, nil, err
	}
	logs, err := c.nodeLogs()
	if err != nil {
		return h, nil, err
	}
	out, err := localnet.DoubleSignFindings(ctx, c.rpc, c.net.HAAddress, power, 1, h, logs)
	if err != nil {
		return h, nil, err
	}
	return h, out, nil
}

// nodeLogs lists every node log of the chain: c.logs (every validator's and
// every replica's, plus what tests added) and any other *.log under the
// chain's directory, so a node a test starts by hand is scanned too. Each
// validator log must exist, and each replica that was started must have a
// log that holds its node's output, or the scan would pass blind.
func (c *localChain) nodeLogs() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, l := range c.validatorLogs {
		if _, err := os.Stat(l); err != nil {
			return nil, fmt.Errorf("validator node log: %w", err)
		}
	}
	started := map[string]bool{}
	for _, r := range c.replicas {
		if r.runs == 0 {
			continue
		}
		started[r.logPath] = true
		if localnet.LastNodePID(r.logPath) > 0 && !holdsNodeOutput(r.logPath) {
			return nil, fmt.Errorf("replica %s started a node but its log %s holds none of the node's output", r.id, r.logPath)
		}
	}
	for _, l := range c.logs {
		_, err := os.Stat(l)
		switch {
		case err == nil:
			add(l)
		case started[l] || !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("node log: %w", err)
		}
	}
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
			add(p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, l := range c.validatorLogs {
		if !seen[l] {
			return nil, fmt.Errorf("validator node log %s not scanned", l)
		}
	}
	return out, nil
}

// holdsNodeOutput reports whether a valguard log holds a line that is not
// one of valguard's own JSON events: the node's output.
func holdsNodeOutput(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "{") {
			return true
		}
	}
	return false
}

// signerWatch follows one replica's log for the node it gave the
// validator key to: the last node started in the validator role, or the
// running node a hot promotion loaded the key into. It reads only what was
// appended since the last look.
type signerWatch struct {
	r   *replica
	off int64
	pid int // the validator node's pid, 0 if none yet
}

// update reads the complete lines appended to the replica's log.
func (w *signerWatch) update() {
	f, err := os.Open(w.r.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, w.off, 1<<40))
	if err != nil {
		return
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return
	}
	w.off += int64(end + 1)
	for _, line := range bytes.Split(data[:end], []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("{")) {
			continue // the node's own output
		}
		var ev struct {
			Message string `json:"message"`
			Role    string `json:"role"`
			PID     int    `json:"pid"`
		}
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		switch {
		case ev.Message == "node started" && ev.Role == "validator",
			ev.Message == "hot promotion: loading the validator key into the running node":
			w.pid = ev.PID
		}
	}
}

// signer says whether the replica may be signing now, and why: its state is
// Validating, or the node it gave the key to still runs, whatever its
// state says (Shutdown while the node stops, no answer from a killed
// valguard whose node outlives it).
func (w *signerWatch) signer() (bool, string) {
	st := w.r.state()
	switch {
	case localnet.Alive(w.pid):
		return true, fmt.Sprintf("%s: validator node %d alive (state %q)", w.r.id, w.pid, st)
	case st == "Validating":
		return true, fmt.Sprintf("%s: Validating", w.r.id)
	}
	return false, ""
}

// possibleSigners returns one line per replica that may be signing now.
// Every log is read before any state: a replica's state read before
// another's log could pair its last "Validating" (a moment before it
// released the lock) with the new leader's promotion logged a moment
// after, two instants that never overlapped.
func possibleSigners(ws []*signerWatch) []string {
	for _, w := range ws {
		w.update()
	}
	var out []string
	for _, w := range ws {
		if ok, why := w.signer(); ok {
			out = append(out, why)
		}
	}
	return out
}

// oneSigner watches the replicas until the test ends and fails it if two
// of them may sign at once (possibleSigners). It samples every 100 ms: an
// overlap shorter than that can go unseen; the chain checks
// (noDoubleSign) are the other half.
func oneSigner(t *testing.T, rs ...*replica) {
	ws := make([]*signerWatch, len(rs))
	for i, r := range rs {
		ws[i] = &signerWatch{r: r}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		overlaps := 0
		for {
			select {
			case <-stop:
				if overlaps > 1 {
					t.Errorf("%d samples with more than one possible signer", overlaps)
				}
				return
			case <-time.After(100 * time.Millisecond):
			}
			if who := possibleSigners(ws); len(who) > 1 {
				overlaps++
				if overlaps == 1 {
					t.Errorf("%d possible signers at once: %s", len(who), strings.Join(who, "; "))
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// keyLinked reports whether the validator key is linked in a replica home.
func (c *localChain) keyLinked(i int) bool {
	target, err := os.Readlink(filepath.Join(c.net.ReplicaHomes[i], "config", "priv_validator_key.json"))
	return err == nil && target == c.net.ValidatorKey
}

func TestFailoverEndToEnd(t *testing.T) {
	c := startChain(t, nil)
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	a, b := c.replica("a", 0), c.replica("b", 1)
	oneSigner(t, a, b)
	a.start()
	a.waitState("Validating", 90*time.Second)
	b.start()
	b.waitState("Voting", 90*time.Second)
	if !c.keyLinked(0) || c.keyLinked(1) {
		t.Fatalf("key links: a %v, b %v; want only a", c.keyLinked(0), c.keyLinked(1))
	}
	c.firstSignedAfter(c.height(), 60*time.Second)
	c.noDoubleSign(10)

	// SIGKILL the leader's valguard: its node dies with it (S9) and the
	// standby takes over once Consul expires the session.
	// A signature counts as b's only above the height in progress when a's
	// node was seen dead: a may have signed up to that one.
	nodeA := a.nodePID()
	killedAt, hKill := time.Now(), c.height()
	a.signal(syscall.SIGKILL)
	a.waitExit(5 * time.Second)
	if !within(ctx, 5*time.Second, func() bool { return !alive(nodeA) }) {
		t.Fatalf("node %d of the killed valguard still runs", nodeA)
	}
	hDead := c.height() + 1
	took := b.waitState("Validating", 60*time.Second)
	signed := c.firstSignedAfter(hDead, 60*time.Second)
	t.Logf("crash failover: kill→Validating %s, kill→first signature %s (height %d, killed at %d, old node dead by %d)",
		took.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond), signed, hKill, hDead)
	c.noDoubleSign(10)

	// The first replica comes back as a voter, with no key link.
	a.start()
	a.waitState("Voting", 90*time.Second)
	if c.keyLinked(0) {
		t.Fatal("restarted replica a has the validator key linked while voting")
	}

	// SIGTERM the new leader: a fast hand-over to a.
	// b's node signs until it has stopped; a's signatures are those above
	// the height in progress when b's validator node was gone.
	nodeB := b.nodePID()
	hTerm, termAt := c.height(), time.Now()
	b.signal(syscall.SIGTERM)
	a.waitState("Validating", 30*time.Second)
	handover := time.Since(termAt)
	if alive(nodeB) {
		t.Fatalf("a Validating while b's validator node %d still runs", nodeB)
	}
	hDead = c.height() + 1
	b.waitExit(30 * time.Second)
	if c.keyLinked(1) {
		t.Fatal("replica b left the validator key linked after shutdown")
	}
	signed = c.firstSignedAfter(hDead, 60*time.Second)
	t.Logf("graceful hand-over: SIGTERM→Validating %s, →first signature %s (height %d, SIGTERM at %d, old node dead by %d)",
		handover.Round(time.Millisecond), time.Since(termAt).Round(time.Millisecond), signed, hTerm, hDead)
	c.noDoubleSign(10)

	b.start()
	b.waitState("Voting", 90*time.Second)
	if c.keyLinked(1) {
		t.Fatal("restarted replica b has the validator key linked while voting")
	}
	c.firstSignedAfter(c.height(), 60*time.Second)
	c.noDoubleSign(10)
}
