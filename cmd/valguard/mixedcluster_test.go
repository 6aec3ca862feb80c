package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/consultest"
)

// TestMixedConsulClustersRefused: --consul-url with an address that does
// not answer, one of another Consul cluster and one of the right cluster
// (two real agents, each a cluster of its own) is refused by every command
// that talks to Consul, before anything is read or written, with an error
// naming both groups of Raft servers; the same list without the other
// cluster is accepted.
func TestMixedConsulClustersRefused(t *testing.T) {
	right, other := consultest.Start(t), consultest.Start(t)
	rightPeers, otherPeers := raftPeers(t, right), raftPeers(t, other)
	dead := "http://127.0.0.1:1"
	mixed := strings.Join([]string{dead, "http://" + other.Addr, "http://" + right.Addr}, ",")
	dir := t.TempDir()
	home, key := cometHome(t, dir)
	for _, tc := range []struct{ cmd, args []string }{
		{[]string{"status"}, []string{"--validator-key", key}},
		{[]string{"active-validator"}, []string{"--validator-id", "ABC"}},
		{[]string{"drain"}, []string{"--validator-key", key, "--reason", "test", "a"}},
		{[]string{"undrain"}, []string{"--validator-key", key, "a"}},
		{[]string{"handover"}, []string{"--validator-key", key, "--no-wait"}},
		{[]string{"state", "show"}, []string{"--validator-key", key}},
		{[]string{"run"}, []string{"--metrics-addr", "", "--node-binary", "true", "--node-home", home, "--validator-key", key}},
	} {
		t.Run(strings.Join(tc.cmd, " "), func(t *testing.T) {
			args := append(append(append([]string{}, tc.cmd...), "--consul-url", mixed), tc.args...)
			cmd := exec.Command(valguardBin, args...)
			cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("accepted two clusters:\n%s", out)
			}
			for _, want := range []string{"address of another Consul cluster", other.Addr + " name the Raft servers [" + otherPeers, right.Addr + " name the Raft servers [" + rightPeers} {
				if !strings.Contains(string(out), want) {
					t.Fatalf("output does not say %q:\n%s", want, out)
				}
			}
		})
	}
	// Nothing was written to either cluster.
	for _, a := range []*consultest.Agent{right, other} {
		keys, _, err := a.Client(t).KV().Keys("valguard/", "", nil)
		if err != nil || len(keys) != 0 {
			t.Fatalf("keys written to %s: %v (%v)", a.Addr, keys, err)
		}
	}
	// One cluster, with an address that does not answer: accepted.
	out, err := exec.Command(valguardBin, "status", "--validator-key", key, "--consul-url", dead+",http://"+right.Addr).CombinedOutput()
	if strings.Contains(string(out), "another Consul cluster") {
		t.Fatalf("one cluster refused (%v):\n%s", err, out)
	}
}

// raftPeers is the one Raft server a dev agent names.
func raftPeers(t *testing.T, a *consultest.Agent) string {
	t.Helper()
	peers, err := a.Client(t).Status().Peers()
	if err != nil || len(peers) != 1 {
		t.Fatalf("peers of %s: %v, %v", a.Addr, peers, err)
	}
	return peers[0]
}
