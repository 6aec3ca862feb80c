//go:build e2e

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/cometbft"
	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/localnet"
)

// The policies of the ACL table in docs/operations.md, for the validator whose lock id
// is id.
func runPolicy(id string) string {
	return fmt.Sprintf(`key_prefix "valguard/%s/" { policy = "write" }
session_prefix "" { policy = "write" }`, id)
}

func readPolicy(id string) string {
	return fmt.Sprintf(`key_prefix "valguard/%s/" { policy = "read" }`, id)
}

func controlPolicy(id string) string {
	return readPolicy(id) + fmt.Sprintf(`
key_prefix "valguard/%s/control/" { policy = "write" }`, id)
}

// aclToken creates, with the agent's management token, a policy of rules
// and a token with that policy alone (expiring after ttl when ttl > 0),
// writes its secret to a 0600 file and returns the file and the token's
// accessor id.
func aclToken(t *testing.T, agent *consultest.Agent, rules string, ttl time.Duration) (file, accessor string) {
	t.Helper()
	acl := agent.Client(t).ACL()
	p, _, err := acl.PolicyCreate(&api.ACLPolicy{Name: "p-" + consultest.NewUUID(t)[:13], Rules: rules}, nil)
	if err != nil {
		t.Fatalf("create policy %q: %v", rules, err)
	}
	tok, _, err := acl.TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}, ExpirationTTL: ttl}, nil)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	file = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok.SecretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, tok.AccessorID
}

// consulArgs are the flags that reach agent with the token in tokenFile
// ("" for none) and the agent's CA.
func consulArgs(agent *consultest.Agent, tokenFile string) []string {
	args := []string{"--consul-url", agent.URL}
	if agent.CAFile != "" {
		args = append(args, "--consul-ca-file", agent.CAFile)
	}
	if tokenFile != "" {
		args = append(args, "--consul-token-file", tokenFile)
	}
	return args
}

// refusedAtStart runs valguard with args and asserts that it exits
// non-zero within d (a command that got through its start would still
// run) with output containing every one of want.
func refusedAtStart(t *testing.T, args []string, d time.Duration, want ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, valguardBin, args...)
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=", "CONSUL_HTTP_TOKEN=", "CONSUL_HTTP_TOKEN_FILE=", "CONSUL_CACERT=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("valguard %s still ran after %s: not refused at start; output:\n%s", args[0], d, tail(string(out), 20))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("valguard %s: %v (want a non-zero exit); output:\n%s", args[0], err, tail(string(out), 20))
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Fatalf("valguard %s exit %d: output does not say %q:\n%s", args[0], ee.ExitCode(), w, tail(string(out), 20))
		}
	}
	if strings.Contains(string(out), "panic") {
		t.Fatalf("valguard %s panicked:\n%s", args[0], out)
	}
	t.Logf("valguard %s → exit %d: %s", args[0], ee.ExitCode(), strings.TrimSpace(tail(string(out), 3)))
	return string(out)
}

// lineWith is the first line of the file at path that contains every one
// of subs, "" if none does.
func lineWith(path string, subs ...string) string {
	data, _ := os.ReadFile(path)
next:
	for _, line := range strings.Split(string(data), "\n") {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		return line
	}
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestACLRefusedAtStart runs the commands against a real Consul agent
// with ACLs on (default deny) and an HTTPS API with a CA of its own: a
// token that lacks one permission of the command's policy, an unknown or
// expired token, and a CA that did not sign the agent's certificate are
// each refused at start, with a non-zero exit and an error that names
// the permission (and the policy rule to grant), the token problem or
// --consul-ca-file. Nothing is left behind in Consul.
func TestACLRefusedAtStart(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{ACL: true, TLS: true})
	dir := t.TempDir()
	home, key := cometHome(t, dir)
	k, err := cometbft.LoadKey(key)
	if err != nil {
		t.Fatal(err)
	}
	id := k.Address
	// Created first: Consul's shortest token lifetime is a minute.
	expiring, _ := aclToken(t, agent, runPolicy(id), time.Minute)
	expiresAt := time.Now().Add(time.Minute)

	run := func(tokenFile string, extra ...string) []string {
		args := append([]string{"run", "--metrics-addr", "", "--node-binary", "sleep", "--node-args", "600",
			"--node-home", home, "--validator-key", key, "--replica-id", "r1"}, consulArgs(agent, tokenFile)...)
		return append(args, extra...)
	}
	op := func(cmd []string, tokenFile string, replica ...string) []string {
		return append(append(append(cmd, "--validator-key", key), consulArgs(agent, tokenFile)...), replica...)
	}
	const start = 10 * time.Second
	prefix := "valguard/" + id + "/"

	t.Run("run without session:write", func(t *testing.T) {
		tok, _ := aclToken(t, agent, fmt.Sprintf(`key_prefix %q { policy = "write" }
session_prefix "" { policy = "read" }`, prefix), 0)
		refusedAtStart(t, run(tok), start, "permission session:write denied", `session_prefix "" { policy = "write" }`)
	})
	t.Run("run without key write", func(t *testing.T) {
		tok, _ := aclToken(t, agent, fmt.Sprintf(`key_prefix %q { policy = "read" }
session_prefix "" { policy = "write" }`, prefix), 0)
		refusedAtStart(t, run(tok), start, "permission key:write denied", "may not write "+prefix, fmt.Sprintf(`key_prefix %q { policy = "write" }`, prefix))
	})
	t.Run("run without read of control", func(t *testing.T) {
		tok, _ := aclToken(t, agent, runPolicy(id)+fmt.Sprintf(`
key_prefix %q { policy = "deny" }`, prefix+"control/"), 0)
		refusedAtStart(t, run(tok), start, "permission key:read denied", "read "+prefix+"control/")
	})
	t.Run("run without a token", func(t *testing.T) {
		refusedAtStart(t, run(""), start, "permission session:write denied", "anonymous token")
	})
	t.Run("run with an unknown token", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(bad, []byte(consultest.NewUUID(t)), 0o600); err != nil {
			t.Fatal(err)
		}
		refusedAtStart(t, run(bad), start, "do not know the ACL token", "expired", "--consul-token-file")
	})
	t.Run("run with another CA", func(t *testing.T) {
		tok, _ := aclToken(t, agent, runPolicy(id), 0)
		other := consultest.NewCA(t, t.TempDir())
		refusedAtStart(t, run(tok, "--consul-ca-file", other.CertFile), start, "not signed by a CA this command trusts", "--consul-ca-file")
	})
	t.Run("status without a CA", func(t *testing.T) {
		tok, _ := aclToken(t, agent, readPolicy(id), 0)
		args := []string{"status", "--validator-key", key, "--consul-url", agent.URL, "--consul-token-file", tok}
		refusedAtStart(t, args, start, "--consul-ca-file")
	})
	t.Run("status without read", func(t *testing.T) {
		tok, _ := aclToken(t, agent, `session_prefix "" { policy = "read" }`, 0)
		refusedAtStart(t, op([]string{"status"}, tok), start, "permission key:read denied", fmt.Sprintf(`key_prefix %q { policy = "read" }`, prefix))
	})
	t.Run("active-validator without read", func(t *testing.T) {
		tok, _ := aclToken(t, agent, `session_prefix "" { policy = "read" }`, 0)
		refusedAtStart(t, op([]string{"active-validator"}, tok), start, "permission key:read denied")
	})
	t.Run("state show without read", func(t *testing.T) {
		tok, _ := aclToken(t, agent, `session_prefix "" { policy = "read" }`, 0)
		refusedAtStart(t, op([]string{"state", "show"}, tok), start, "permission key:read denied")
	})
	t.Run("handover without write of control", func(t *testing.T) {
		tok, _ := aclToken(t, agent, readPolicy(id), 0)
		refusedAtStart(t, op([]string{"handover"}, tok), start, "permission key:write denied", fmt.Sprintf(`key_prefix %q { policy = "write" }`, prefix+"control/"))
	})
	t.Run("drain and undrain without write of control", func(t *testing.T) {
		tok, _ := aclToken(t, agent, readPolicy(id), 0)
		refusedAtStart(t, op([]string{"drain", "--force"}, tok, "r1"), start, "Permission denied")
		refusedAtStart(t, op([]string{"undrain"}, tok, "r1"), start, "Permission denied")
	})
	t.Run("expired token", func(t *testing.T) {
		time.Sleep(time.Until(expiresAt) + 2*time.Second)
		refusedAtStart(t, run(expiring), start, "do not know the ACL token", "expired")
		refusedAtStart(t, op([]string{"status"}, expiring), start, "do not know the ACL token", "expired")
	})

	// The checks changed nothing: no key, no session left.
	client := agent.Client(t)
	pairs, _, err := client.KV().List("valguard/", nil)
	if err != nil || len(pairs) > 0 {
		t.Fatalf("keys left under valguard/: %v (%v)", pairs, err)
	}
	sessions, _, err := client.Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if strings.HasPrefix(s.Name, "valguard") {
			t.Errorf("session %s (%s) left behind", s.ID, s.Name)
		}
	}
}

// TestACLTLSEndToEnd runs two key-file replicas of a validator on a real
// localnet against a Consul agent with ACLs on (default deny) and an
// HTTPS API with a CA of its own, each command with a token that holds
// exactly its policy from the ACL table in docs/operations.md: run (both replicas),
// status, active-validator and state show (read), handover, drain and
// undrain (read + write of control/). Then the leader's token is deleted
// while it leads: it cannot renew, so it steps down before its lease
// ends (its node stopped, the key unlinked), says why in its log, and the
// standby takes over with one signer at a time and no double sign.
func TestACLTLSEndToEnd(t *testing.T) {
	cometbftOrSkip(t)
	agent := consultest.StartWith(t, consultest.Options{ACL: true, TLS: true})
	c := startChainOn(t, nil, agent)
	ctx := t.Context()
	k, err := cometbft.LoadKey(c.net.ValidatorKey)
	if err != nil {
		t.Fatal(err)
	}
	id := k.Address
	tokA, _ := aclToken(t, agent, runPolicy(id), 0)
	tokB, accessorB := aclToken(t, agent, runPolicy(id), 0)
	readTok, _ := aclToken(t, agent, readPolicy(id), 0)
	ctlTok, _ := aclToken(t, agent, controlPolicy(id), 0)
	// op runs an operator command with the token in tok; replica, if
	// any, goes last.
	op := func(tok, cmd string, rest ...string) (string, int) {
		args := append([]string{cmd}, consulArgs(agent, tok)...)
		if n := len(rest); n > 0 && !strings.HasPrefix(rest[n-1], "-") && (cmd == "drain" || cmd == "undrain") {
			return c.op(append(append(args, rest[:n-1]...), rest[n-1])...)
		}
		return c.op(append(args, rest...)...)
	}
	opOK := func(tok, cmd string, rest ...string) string {
		t.Helper()
		out, code := op(tok, cmd, rest...)
		if code != 0 {
			t.Fatalf("valguard %s with its policy: exit %d", cmd, code)
		}
		return out
	}

	a := c.replica("a", 0, consulArgs(agent, tokA)...)
	b := c.replica("b", 1, consulArgs(agent, tokB)...)
	oneSigner(t, a, b)
	c.leaderAndStandby(a, b)

	// Read: status (until the standby counts as synced), active-validator,
	// state show.
	if !within(ctx, 60*time.Second, func() bool { _, code := op(readTok, "status"); return code == 0 }) {
		t.Fatal("valguard status with the read policy did not exit 0 (a leader and a synced standby) within 60s")
	}
	if out := opOK(readTok, "active-validator"); !strings.Contains(out, "replica a") {
		t.Fatalf("active-validator does not name a:\n%s", out)
	}
	if out, err := valguardOut(append([]string{"state", "show", "--validator-key", c.net.ValidatorKey}, consulArgs(agent, readTok)...)...); err != nil {
		t.Fatalf("valguard state show with the read policy: %v\n%s", err, out)
	}

	// Control: handover to b, drain and undrain of a (now the standby).
	opOK(ctlTok, "handover", "--to", "b")
	b.waitState("Validating", 30*time.Second)
	opOK(ctlTok, "drain", "a")
	if out, code := op(readTok, "status", "--json"); code != 1 || !strings.Contains(out, `"hold": "drained"`) {
		t.Fatalf("status after draining the standby: exit %d (want 1, no synced standby), a not shown drained:\n%s", code, out)
	}
	opOK(ctlTok, "undrain", "a")
	a.waitState("Voting", 60*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)

	// The leader's token is deleted while it leads.
	if _, err := agent.Client(t).ACL().TokenDelete(accessorB, nil); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	nodeB := b.nodePID()
	ttl := 10 * time.Second // the default --session-ttl
	if !within(ctx, ttl, func() bool { return b.state() != "Validating" }) {
		t.Fatalf("b still Validating %s after its token was deleted; log tail:\n%s", ttl, tailFile(b.logPath, 30))
	}
	left := time.Since(revokedAt)
	if !within(ctx, 5*time.Second, func() bool { return !alive(nodeB) && !c.keyLinked(1) }) {
		t.Fatalf("b out of Validating but its validator node %d alive %v, key linked %v", nodeB, alive(nodeB), c.keyLinked(1))
	}
	hDead := c.height() + 1
	took := a.waitState("Validating", 60*time.Second)
	signed := c.firstSignedAfter(hDead, 60*time.Second)
	t.Logf("token deleted: b left Validating after %s; a Validating %s later, first signature at height %d",
		left.Round(time.Millisecond), took.Round(time.Millisecond), signed)
	if line := lineWith(b.logPath, "session", "403 (ACL not found)"); line == "" {
		t.Fatalf("b's log does not say Consul refused its token for its session (403 ACL not found); tail:\n%s", tailFile(b.logPath, 30))
	} else {
		t.Logf("b's log: %s", line)
	}
	c.noDoubleSign(10)
}

// TestACLTokenRevokedSignerMode deletes the token of a signer-mode leader
// while it signs (ACLs on, default deny; HTTPS). Its fence and its renewals
// are refused from that moment: it signs nothing new after the deletion
// (every new signature needs a fence, S1″), leaves Validating before its
// lease ends, and says in its log that Consul refused its token; the
// standby, whose token is intact, takes over, with one signature per
// height/round/step across both and no double sign. state import with the
// run policy raises the watermark first.
func TestACLTokenRevokedSignerMode(t *testing.T) {
	cometbftOrSkip(t)
	agent := consultest.StartWith(t, consultest.Options{ACL: true, TLS: true})
	c := startChainOn(t, signerPowers, agent)
	k, err := cometbft.LoadKey(c.net.ValidatorKey)
	if err != nil {
		t.Fatal(err)
	}
	tokA, accessorA := aclToken(t, agent, runPolicy(k.Address), 0)
	tokB, _ := aclToken(t, agent, runPolicy(k.Address), 0)

	home := c.signWithoutValguard(5)
	state := filepath.Join(home, "data", "priv_validator_state.json")
	args := append([]string{"state", "import", "--validator-key", c.net.ValidatorKey, "--chain-id", c.net.ChainID}, consulArgs(agent, tokA)...)
	if out, err := valguardOut(append(args, state)...); err != nil {
		t.Fatalf("state import with the run policy: %v\n%s", err, out)
	}

	a := c.signerReplica("a", 0, consulArgs(agent, tokA)...)
	b := c.signerReplica("b", 1, consulArgs(agent, tokB)...)
	c.leaderAndStandby(a, b)

	if _, err := agent.Client(t).ACL().TokenDelete(accessorA, nil); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	hRevoked := c.height()
	if !within(t.Context(), 10*time.Second, func() bool { return a.state() != "Validating" }) {
		t.Fatalf("a still Validating 10s (the TTL) after its token was deleted; log tail:\n%s", tailFile(a.logPath, 30))
	}
	left := time.Since(revokedAt)
	took := b.waitState("Validating", 60*time.Second)
	signed := c.firstSignedAfter(hRevoked, 60*time.Second)
	t.Logf("token deleted at height %d: a left Validating after %s; b Validating %s later, first signature at height %d",
		hRevoked, left.Round(time.Millisecond), took.Round(time.Millisecond), signed)
	for _, e := range localnet.SignEvents(map[string]string{a.id: a.logPath}) {
		// Log times are to the millisecond.
		if e.Result == "signed" && e.Fenced.After(revokedAt.Add(time.Millisecond)) {
			t.Errorf("a signed %v (fence started %s) after its token was deleted at %s", e.HRS,
				e.Fenced.Format(time.RFC3339Nano), revokedAt.Format(time.RFC3339Nano))
		}
	}
	if line := lineWith(a.logPath, "session", "403 (ACL not found)"); line == "" {
		t.Fatalf("a's log does not say Consul refused its token for its session (403 ACL not found); tail:\n%s", tailFile(a.logPath, 30))
	} else {
		t.Logf("a's log: %s", line)
	}
	oneSignaturePerHRS(t, a, b)
	c.noDoubleSign(20)
}
