//go:build e2e

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/faultproxy"
	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/internal/testnet"
)

// signerPowers give the HA validator 20 of 50, more than a third: the chain
// halts whenever it does not sign, so every failover below must bring the
// chain back on its own (the shape of TestStaleSignStateTrap, which the
// key-file mode cannot get out of without an operator).
var signerPowers = []int64{10, 10, 10, 20}

// signerReplica starts a replica in signer mode on replica home i. With
// more than a third of the power the chain halts whenever the validator
// does not sign, so "synced" cannot ask for a recent block.
func (c *localChain) signerReplica(id string, i int, extra ...string) *replica {
	return c.replica(id, i, append([]string{"--sign-mode", "signer", "--max-block-age", "0"}, extra...)...)
}

// migrateFromFileKey starts the chain the way an operator moving from a
// file key does: the validator signs from replica home 0 with its key
// file linked in and no valguard, up to height h; that node is stopped
// (the chain halts: the validator holds more than a third), its sign
// state is imported into Consul with valguard state import, and the key
// link is left in the home for valguard to remove (S2).
func (c *localChain) migrateFromFileKey(h int64) {
	t := c.t
	home := c.signWithoutValguard(h)
	state := filepath.Join(home, "data", "priv_validator_state.json")
	out, err := valguardOut("state", "import", "--consul-url", "http://"+c.consul.Addr,
		"--validator-key", c.net.ValidatorKey, "--chain-id", c.net.ChainID, state)
	if err != nil {
		t.Fatalf("state import: %v\n%s", err, out)
	}
	t.Logf("file-key node stopped at height %d; %s", c.height(), strings.TrimSpace(out))
}

// missedSince counts the heights in (from, to] the HA validator did not
// sign.
func (c *localChain) missedSince(from, to int64) int {
	_, missed, err := localnet.Signers(c.t.Context(), c.rpc, from+1, to, c.net.HAAddress)
	if err != nil {
		c.t.Fatal(err)
	}
	return len(missed)
}

// oneSignaturePerHRS checks the replicas' signing logs: across all of
// them, every height/round/step signed or re-served carries one sign-bytes
// value (timestamps aside, S1″), and the fenced watermark — the HRS of each
// new signature, in time order — only goes up (localnet.OneSignaturePerHRS).
func oneSignaturePerHRS(t *testing.T, rs ...*replica) {
	t.Helper()
	logs := map[string]string{}
	for _, r := range rs {
		logs[r.id] = r.logPath
	}
	signed, hrs, findings := localnet.OneSignaturePerHRS(localnet.SignEvents(logs))
	if len(findings) > 0 {
		t.Fatalf("signing logs:\n%s", strings.Join(findings, "\n"))
	}
	if signed == 0 {
		t.Fatal("no signed event in any replica's log: the check saw nothing")
	}
	t.Logf("signing logs: %d new signatures, %d height/round/steps, one sign-bytes value each, watermark only rising", signed, hrs)
}

// leaderAndStandby starts replica a until it leads and the validator
// signs, then replica b as its standby; both logs' tails are printed if
// the test fails.
func (c *localChain) leaderAndStandby(a, b *replica) {
	t := c.t
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("a:\n%s\nb:\n%s", tailFile(a.logPath, 40), tailFile(b.logPath, 40))
		}
	})
	a.start()
	a.waitState("Validating", 90*time.Second)
	b.start()
	b.waitState("Voting", 90*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)
}

// samePID fails the test if replica r's node was restarted.
func samePID(t *testing.T, r *replica, pid int) {
	t.Helper()
	if got := r.nodePID(); got != pid || !alive(pid) {
		t.Fatalf("replica %s node pid %d (alive %v), was %d: the node was restarted", r.id, got, alive(pid), pid)
	}
}

// TestSignerModeEndToEnd drives two signer-mode replicas of a validator
// holding 2/5 of the power through a graceful hand-over, a SIGKILL of the
// leader's valguard, a SIGKILL of the leader's node, and a frozen leader
// deposed by the standby; after each, the chain must move on with the
// standby's node never restarted and no double sign.
func TestSignerModeEndToEnd(t *testing.T) {
	c := startChain(t, signerPowers)
	ctx := t.Context()
	c.migrateFromFileKey(5)
	a, b := c.signerReplica("a", 0), c.signerReplica("b", 1)
	c.leaderAndStandby(a, b)
	if c.keyLinked(0) || c.keyLinked(1) {
		t.Fatal("signer mode linked the validator key into a node home (S1′)")
	}

	// Graceful: SIGTERM the leader. The standby leads with its node as it
	// was; no height is missed beyond the one in progress.
	pidB := b.nodePID()
	hTerm, termAt := c.height(), time.Now()
	a.signal(syscall.SIGTERM)
	took := b.waitState("Validating", 30*time.Second)
	signed := c.firstSignedAfter(hTerm, 30*time.Second)
	a.waitExit(30 * time.Second)
	if err := localnet.WaitHeight(ctx, c.rpc, hTerm+6); err != nil {
		t.Fatal(err)
	}
	t.Logf("graceful: SIGTERM→Validating %s, →first signature at height %d after %s; missed heights %d of (%d, %d]",
		took.Round(time.Millisecond), signed, time.Since(termAt).Round(time.Millisecond), c.missedSince(hTerm, hTerm+5), hTerm, hTerm+5)
	samePID(t, b, pidB)
	c.noDoubleSign(20)

	// Crash: SIGKILL the leader's valguard (its node dies with it). The
	// chain halts (2/5 of the power gone) until the standby leads on the
	// lease alone.
	a.start()
	a.waitState("Voting", 90*time.Second)
	pidA := a.nodePID()
	hKill, killAt := c.height(), time.Now()
	b.signal(syscall.SIGKILL)
	b.waitExit(5 * time.Second)
	took = a.waitState("Validating", 60*time.Second)
	signed = c.firstSignedAfter(hKill, 60*time.Second)
	t.Logf("crash (lease only): SIGKILL→Validating %s, →first signature at height %d after %s",
		took.Round(time.Millisecond), signed, time.Since(killAt).Round(time.Millisecond))
	samePID(t, a, pidA)
	c.noDoubleSign(20)

	// The leader's node dies: its valguard releases, the standby leads.
	b.start()
	b.waitState("Voting", 90*time.Second)
	pidB = b.nodePID()
	hKill, killAt = c.height(), time.Now()
	if err := syscall.Kill(pidA, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took = b.waitState("Validating", 60*time.Second)
	signed = c.firstSignedAfter(hKill, 60*time.Second)
	t.Logf("leader's node killed: →Validating %s, →first signature at height %d after %s",
		took.Round(time.Millisecond), signed, time.Since(killAt).Round(time.Millisecond))
	samePID(t, b, pidB)
	a.waitState("Voting", 90*time.Second)
	c.noDoubleSign(20)

	oneSignaturePerHRS(t, a, b)
}

// TestSignerModeDeposition freezes the leader's valguard (SIGSTOP: its node
// runs on but nothing signs for it) and lets the standby, started with
// --signer-depose-after 2s, destroy the frozen leader's session. The chain
// must resume within about D + 2 s instead of 2×TTL, and the revived
// leader's late fence must fail: it signs nothing more.
func TestSignerModeDeposition(t *testing.T) {
	c := startChain(t, signerPowers)
	c.migrateFromFileKey(5)
	a := c.signerReplica("a", 0)
	b := c.signerReplica("b", 1, "--signer-depose-after", "2s", "--signer-depose-holdoff", "10s")
	c.leaderAndStandby(a, b)
	pidB := b.nodePID()

	hStop, stopAt := c.height(), time.Now()
	a.signal(syscall.SIGSTOP)
	took := b.waitState("Validating", 30*time.Second)
	signed := c.firstSignedAfter(hStop, 30*time.Second)
	resumed := time.Since(stopAt)
	t.Logf("frozen leader deposed: SIGSTOP→Validating %s, →first signature at height %d after %s",
		took.Round(time.Millisecond), signed, resumed.Round(time.Millisecond))
	if resumed > 2*time.Second+10*time.Second {
		t.Errorf("the chain resumed %s after the freeze; deposition after 2s should be far below the lease's 2×TTL", resumed.Round(time.Millisecond))
	}
	deposed := false
	for _, ev := range b.events() {
		deposed = deposed || strings.Contains(fmt.Sprint(ev["message"]), "depos")
	}
	if !deposed {
		t.Fatal("b leads, but its log shows no deposition")
	}
	samePID(t, b, pidB)

	a.signal(syscall.SIGCONT)
	a.waitState("Voting", 90*time.Second)
	c.noDoubleSign(20)
	oneSignaturePerHRS(t, a, b)
}

// handoverPhase starts replicas name-a and name-b on replica homes 0 and
// 1 with the sign mode flags mode, lets a lead and sign, hands over to b
// with a SIGTERM of a, lets b sign, stops b, and checks that nothing was
// signed twice.
func (c *localChain) handoverPhase(name string, mode ...string) {
	t := c.t
	t.Helper()
	a := c.replica(name+"-a", 0, mode...)
	b := c.replica(name+"-b", 1, mode...)
	a.start()
	a.waitState("Validating", 90*time.Second)
	b.start()
	b.waitState("Voting", 90*time.Second)
	signed := c.firstSignedAfter(c.height(), 60*time.Second)
	hTerm := c.height()
	a.signal(syscall.SIGTERM)
	b.waitState("Validating", 30*time.Second)
	handed := c.firstSignedAfter(hTerm, 60*time.Second)
	a.waitExit(30 * time.Second)
	b.signal(syscall.SIGTERM)
	b.waitExit(30 * time.Second)
	out, err := valguardOut("state", "show", "--consul-url", "http://"+c.consul.Addr, "--validator-key", c.net.ValidatorKey)
	if err != nil {
		t.Fatalf("state show: %v\n%s", err, out)
	}
	t.Logf("%s: signed at %d, after the hand-over at %d; left %s", name, signed, handed, strings.TrimSpace(out))
	c.noDoubleSign(10)
}

// TestSignModeSwitch moves one validator from the restart mode to the
// signer mode and back, each time by stopping every replica gracefully and
// starting them with the other mode: the watermark each mode leaves in
// Consul is read by the other (the restart mode's height/round/step raise
// the signer's floor; the signer's fenced watermark raises the restart
// mode's sign state, S8), and nothing is signed twice.
func TestSignModeSwitch(t *testing.T) {
	c := startChain(t, nil)
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	c.handoverPhase("restart")
	c.handoverPhase("signer", "--sign-mode", "signer")
	if c.keyLinked(0) || c.keyLinked(1) {
		t.Fatal("a key link left in a replica home after the signer mode")
	}
	c.handoverPhase("restart-again")
	var signerReplicas []*replica
	for _, r := range c.replicas {
		if strings.HasPrefix(r.id, "signer-") {
			signerReplicas = append(signerReplicas, r)
		}
	}
	oneSignaturePerHRS(t, signerReplicas...)
}

// TestSignerModeTCP serves the node over tcp with CometBFT's
// SecretConnection (a node in a container): the validator signs, and
// valguard's side of the connection keeps one key across restarts.
func TestSignerModeTCP(t *testing.T) {
	c := startChain(t, nil)
	if err := localnet.WaitHeight(t.Context(), c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", testnet.FreePort(t))
	a := c.signerReplica("a", 0, "--signer-addr", addr)
	a.start()
	a.waitState("Validating", 90*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)
	keyFile := filepath.Join(c.net.ReplicaHomes[0], "valguard", "signer_conn_key.json")
	first, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("no connection key: %v", err)
	}
	a.signal(syscall.SIGTERM)
	a.waitExit(30 * time.Second)
	a.start()
	a.waitState("Validating", 90*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)
	if again, _ := os.ReadFile(keyFile); string(again) != string(first) {
		t.Fatal("the connection key changed across a restart")
	}
	c.noDoubleSign(10)
	oneSignaturePerHRS(t, a)
}

// TestExternalNodes runs valguard as the remote signer of nodes it does
// not start (--node external), as it would beside a node in a container:
// the test starts each node itself with priv_validator_laddr pointing at
// its valguard. The leader signs; on its SIGTERM the other takes over and
// the nodes are never restarted.
func TestExternalNodes(t *testing.T) {
	c := startChain(t, nil)
	ctx := t.Context()
	if err := localnet.WaitHeight(ctx, c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	var rs []*replica
	var nodes []*localnet.Process
	for i, id := range []string{"a", "b"} {
		home := c.net.ReplicaHomes[i]
		state := filepath.Join(c.dir, "state-"+id)
		if err := os.MkdirAll(state, 0o700); err != nil {
			t.Fatal(err)
		}
		laddr := fmt.Sprintf("tcp://127.0.0.1:%d", testnet.FreePort(t))
		r := newReplica(t, id, c.dir, "--node", "external", "--node-rpc", c.net.RPC(home), "--chain-id", c.net.ChainID,
			"--signer-addr", laddr, "--state-dir", state, "--max-block-age", "0",
			"--validator-key", c.net.ValidatorKey, "--consul-url", "http://"+c.consul.Addr)
		c.replicas = append(c.replicas, r)
		r.start()
		log := filepath.Join(c.dir, "external-node-"+id+".log")
		c.logs = append(c.logs, log)
		p, err := c.net.StartNode(ctx, home, log, "--priv_validator_laddr", laddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
		rs, nodes = append(rs, r), append(nodes, p)
		if i == 0 {
			r.waitState("Validating", 90*time.Second)
		}
	}
	a, b := rs[0], rs[1]
	b.waitState("Voting", 90*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)
	hTerm := c.height()
	a.signal(syscall.SIGTERM)
	took := b.waitState("Validating", 30*time.Second)
	signed := c.firstSignedAfter(hTerm, 30*time.Second)
	a.waitExit(30 * time.Second)
	t.Logf("external: SIGTERM→Validating %s, first signature at height %d (SIGTERM at %d)", took.Round(time.Millisecond), signed, hTerm)
	for i, p := range nodes {
		if !alive(p.PID) {
			t.Fatalf("external node %d is gone: valguard must not stop a node it does not run", i)
		}
	}
	if a.nodePID() != 0 || b.nodePID() != 0 {
		t.Fatal("valguard started a node in external mode")
	}
	c.noDoubleSign(10)
	oneSignaturePerHRS(t, a, b)
}

// TestSignerModeLeaderCutOffFromConsul blackholes the leader's Consul
// traffic (a fault proxy between its valguard and the agent) while it
// keeps its chain peers: its fences time out and stay unresolved, so it
// signs nothing more, and it leaves Validating when its lease's local
// deadline passes; the standby leads once Consul expires the old session,
// and the chain, at 2/5 of the power, resumes with no double sign.
func TestSignerModeLeaderCutOffFromConsul(t *testing.T) {
	c := startChain(t, signerPowers)
	c.migrateFromFileKey(5)
	proxy := faultproxy.New(t, c.consul.Addr)
	a := c.signerReplica("a", 0, "--consul-url", "http://"+proxy.Addr())
	b := c.signerReplica("b", 1)
	c.leaderAndStandby(a, b)
	pidA, pidB := a.nodePID(), b.nodePID()

	hCut, cutAt := c.height(), time.Now()
	proxy.Blackhole()
	var out time.Duration
	demoted := within(t.Context(), 30*time.Second, func() bool {
		out = time.Since(cutAt)
		return a.state() != "Validating"
	})
	if !demoted {
		t.Fatal("the leader cut off from Consul is still Validating after 30s")
	}
	took := b.waitState("Validating", 60*time.Second)
	signed := c.firstSignedAfter(hCut, 60*time.Second)
	t.Logf("leader cut off from Consul: out of Validating after %s; standby Validating %s later, first signature at height %d %s after the cut",
		out.Round(time.Millisecond), took.Round(time.Millisecond), signed, time.Since(cutAt).Round(time.Millisecond))
	samePID(t, b, pidB)
	samePID(t, a, pidA)
	proxy.Pass()
	a.waitState("Voting", 90*time.Second)
	c.noDoubleSign(20)
	oneSignaturePerHRS(t, a, b)
}
