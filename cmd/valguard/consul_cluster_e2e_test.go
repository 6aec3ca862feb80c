//go:build e2e

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
)

// TestSignerModeConsulCluster runs two signer-mode replicas of a validator
// holding 2/5 of the power against a 3-server Consul cluster, each replica
// talking to a server of its own (as it would to its local agent), and
// drives the cluster through its faults:
//
//   - the Raft leader killed: the survivors elect a new one; the signing
//     replica's fences ride it out or fail (then it is demoted and the lock
//     moves): either way the chain resumes with no operator;
//   - a graceful hand-over across servers (the release written through one
//     server, the take through another);
//   - quorum lost (two of three servers killed) and restored after 15 s:
//     nothing is signed meanwhile (fail closed: the chain halts at 2/5),
//     then the chain resumes by itself.
//
// After each: no evidence, no conflicting vote, power unchanged, one
// sign-bytes value per height/round/step across both signing logs, the
// watermark only rising, and the standby's node never restarted.
func TestSignerModeConsulCluster(t *testing.T) {
	cluster := consultest.StartCluster(t, 3)
	leader, err := cluster.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := (leader+1)%3, (leader+2)%3
	c := startChainOn(t, signerPowers, cluster.Agent(fa))
	c.migrateFromFileKey(5)
	// Each replica on a follower: killing the Raft leader then leaves both
	// with their own agent, as in production where each talks to a local
	// client agent.
	a := c.signerReplica("a", 0)
	b := c.signerReplica("b", 1, "--consul-url", "http://"+cluster.Servers[fb].Addr)
	keepLogsOnFailure(t, a, b)
	c.leaderAndStandby(a, b)
	pidA, pidB := a.nodePID(), b.nodePID()

	// The Raft leader dies.
	hKill, killAt := c.height(), time.Now()
	killed := cluster.KillLeader()
	if err := cluster.WaitReady(t.Context(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	elected := time.Since(killAt)
	signed := c.firstSignedAfter(hKill, 90*time.Second)
	t.Logf("consul leader %d killed: new leader after %s; validator signed height %d %s after the kill (a %s, b %s)",
		killed, elected.Round(time.Millisecond), signed, time.Since(killAt).Round(time.Millisecond), a.state(), b.state())
	logEventsSince(t, killAt, a, b)
	// A Raft election is shorter than the lease: the fence's unknown
	// outcome is resolved by reading back, and the leader stays.
	if a.state() != "Validating" {
		t.Errorf("replica a is %s after the Consul leader's death: a Raft election of %s cost a failover", a.state(), elected.Round(time.Millisecond))
	}
	samePID(t, a, pidA)
	samePID(t, b, pidB)
	c.noDoubleSign(20)
	cluster.Restart(killed)

	// A graceful hand-over across servers: whichever replica leads now is
	// SIGTERMed; the other leads with its node as it was.
	lead, standby := a, b
	if b.state() == "Validating" {
		lead, standby = b, a
	}
	standby.waitState("Voting", 90*time.Second)
	pidS := standby.nodePID()
	hTerm, termAt := c.height(), time.Now()
	lead.signal(syscall.SIGTERM)
	took := standby.waitState("Validating", 30*time.Second)
	signed = c.firstSignedAfter(hTerm, 60*time.Second)
	first := time.Since(termAt)
	lead.waitExit(30 * time.Second)
	exited := time.Since(termAt)
	t.Logf("graceful hand-over across servers: SIGTERM→Validating %s, first signature at height %d %s after the SIGTERM; old leader's valguard exited after %s",
		took.Round(time.Millisecond), signed, first.Round(time.Millisecond), exited.Round(time.Millisecond))
	// The old leader stops its node within the grace and the node's own
	// shutdown (~1.5 s), not at the stop timeout's SIGKILL.
	if exited > 8*time.Second {
		t.Errorf("the old leader's valguard took %s to exit: its node's shutdown hung (no signer answering it?)", exited.Round(time.Millisecond))
	}
	logEventsSince(t, termAt, standby, lead)
	samePID(t, standby, pidS)
	lead.start()
	lead.waitState("Voting", 90*time.Second)
	c.noDoubleSign(20)

	// Quorum lost: two servers die (the leader's own and one more); the
	// third cannot commit anything, so no fence succeeds and nothing new
	// is signed. After 15 s both come back with their data.
	lead, standby = standby, lead
	pidL, pidS := lead.nodePID(), standby.nodePID()
	var down []int
	for i, s := range cluster.Servers {
		if len(down) < 2 {
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
			down = append(down, i)
		}
	}
	hLost, lostAt := c.height(), time.Now()
	time.Sleep(15 * time.Second)
	hDuring := c.height()
	for _, i := range down {
		if err := cluster.Start(t.Context(), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.WaitReady(t.Context(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	restored := time.Since(lostAt)
	signed = c.firstSignedAfter(hDuring, 120*time.Second)
	t.Logf("quorum lost for %s (servers %v): heights %d→%d meanwhile; validator signed height %d %s after the quorum came back (leader now: a %s, b %s)",
		restored.Round(time.Millisecond), down, hLost, hDuring, signed, (time.Since(lostAt) - restored).Round(time.Millisecond), a.state(), b.state())
	if hDuring > hLost+2 {
		t.Errorf("the chain moved from %d to %d while Consul had no quorum: something signed without a fence", hLost, hDuring)
	}
	samePID(t, lead, pidL)
	samePID(t, standby, pidS)
	c.noDoubleSign(20)
	oneSignaturePerHRS(t, a, b)
}

// logEventsSince logs the replicas' log events since at, but for sign
// requests, so that a test's output shows how a fault played out.
func logEventsSince(t *testing.T, at time.Time, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		for _, ev := range r.events() {
			when, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
			if err != nil || when.Before(at) {
				continue
			}
			if ev["result"] != nil {
				if ev["result"] != "signed" {
					t.Logf("%s %s %v %v/%v/%v %v %v", r.id, when.Format("15:04:05.000"), ev["type"], ev["height"], ev["round"], ev["step"], ev["result"], ev["reason"])
				}
				continue
			}
			t.Logf("%s %s %v %v state=%v error=%v", r.id, when.Format("15:04:05.000"), ev["level"], ev["message"], ev["state"], ev["error"])
		}
	}
}

// keepLogsOnFailure copies the replicas' logs out of the test's temporary
// directory when the test fails (or VALGUARD_KEEP_LOGS is set), and says
// where.
func keepLogsOnFailure(t *testing.T, rs ...*replica) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("VALGUARD_KEEP_LOGS") == "" {
			return
		}
		dir, err := os.MkdirTemp("", "valguard-"+t.Name()+"-")
		if err != nil {
			t.Log(err)
			return
		}
		for _, r := range rs {
			if b, err := os.ReadFile(r.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(dir, filepath.Base(r.logPath)), b, 0o644)
			}
		}
		t.Logf("replica logs kept in %s", dir)
	})
}
