//go:build e2e

package localnet

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cometbft/cometbft/types"
)

// stopAll stops every process at cleanup and, if the test failed, logs the
// tail of each node log.
func stopAll(t *testing.T, procs ...*Process) {
	t.Helper()
	for _, p := range procs {
		t.Cleanup(func() {
			if err := p.Stop(10 * time.Second); err != nil {
				t.Errorf("stop pid %d: %v", p.PID, err)
			}
			if t.Failed() {
				t.Logf("tail of %s:\n%s", p.LogPath, logTail(p.LogPath, 15))
			}
		})
	}
}

func TestLocalnet(t *testing.T) {
	bin := binaryOrSkip(t)
	ctx := t.Context()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")

	began := time.Now()
	n, err := Create(ctx, Config{Dir: filepath.Join(dir, "localnet"), Binary: bin})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("Create took %s; chain %s, HA validator %d = %s", time.Since(began).Round(time.Millisecond), n.ChainID, n.HA, n.HAAddress)

	checkFiles(t, n)

	procs, err := n.StartValidators(ctx, logDir)
	if err != nil {
		t.Fatalf("StartValidators: %v", err)
	}
	stopAll(t, procs...)
	if len(procs) != len(n.Homes)-1 {
		t.Fatalf("started %d validators, want %d", len(procs), len(n.Homes)-1)
	}

	rpc0 := n.RPC(n.Homes[0])
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := WaitHeight(waitCtx, rpc0, 5); err != nil {
		t.Fatalf("3 of 4 validators up, chain did not reach height 5: %v", err)
	}
	t5 := time.Now()
	t.Logf("height 5 reached %s after start", t5.Sub(began).Round(time.Millisecond))

	// 30 of 40 is above 2/3 only with all three votes, so validator 0 signs
	// every commit and the stopped HA validator none.
	signed, missed, err := Signers(ctx, rpc0, 2, 4, n.Addresses[0])
	if err != nil || len(signed) != 3 || len(missed) != 0 {
		t.Errorf("validator 0 over heights 2..4: signed %v missed %v err %v", signed, missed, err)
	}
	if ok, err := SignedAt(ctx, rpc0, n.HAAddress, 4); err != nil || ok {
		t.Errorf("HA validator signed height 4 = %v (err %v), want false: nothing runs its key", ok, err)
	}
	if p, err := Power(ctx, rpc0, n.HAAddress); err != nil || p != DefaultPower {
		t.Errorf("Power(HA) = %d, %v; want %d", p, err, DefaultPower)
	}

	replicaLog := filepath.Join(logDir, "replica0.log")
	replica, err := n.StartNode(ctx, n.ReplicaHomes[0], replicaLog)
	if err != nil {
		t.Fatalf("start replica 0: %v", err)
	}
	stopAll(t, replica)
	target, err := Height(ctx, rpc0)
	if err != nil {
		t.Fatal(err)
	}
	target += 2
	syncBegan := time.Now()
	if err := WaitHeight(waitCtx, n.RPC(n.ReplicaHomes[0]), target); err != nil {
		t.Fatalf("replica 0 did not sync to height %d: %v", target, err)
	}
	t.Logf("replica 0 reached height %d %s after its start", target, time.Since(syncBegan).Round(time.Millisecond))

	last, err := Height(ctx, rpc0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%.2f blocks/s with 3 of 4 validators (heights 5..%d)", float64(last-5)/time.Since(t5).Seconds(), last)

	if ok, err := SignedAt(ctx, n.RPC(n.ReplicaHomes[0]), n.HAAddress, target-1); err != nil || ok {
		t.Errorf("replica view: HA validator signed height %d = %v (err %v), want false", target-1, ok, err)
	}
	ev, err := DuplicateVoteEvidence(ctx, rpc0, 1, last)
	if err != nil || len(ev) != 0 {
		t.Errorf("duplicate vote evidence in 1..%d: %v (err %v), want none", last, ev, err)
	}
	logs := []string{replicaLog}
	for _, p := range procs {
		logs = append(logs, p.LogPath)
	}
	if lines, err := ConflictingVoteLines(logs...); err != nil || len(lines) != 0 {
		t.Errorf("conflicting vote lines: %v (err %v), want none", lines, err)
	}
	t.Logf("test body took %s", time.Since(began).Round(time.Millisecond))
}

// checkFiles asserts the layout Create promises.
func checkFiles(t *testing.T, n *Net) {
	t.Helper()
	fi, err := os.Stat(n.ValidatorKey)
	if err != nil {
		t.Fatalf("validator key: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("validator key mode %v, want 0600", fi.Mode().Perm())
	}
	if addr, err := keyAddress(n.ValidatorKey); err != nil || addr != n.HAAddress {
		t.Errorf("validator key address %q (err %v), want %s", addr, err, n.HAAddress)
	}
	left := filepath.Join(n.Homes[n.HA], "config", "priv_validator_key.json")
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v; want it moved out", left, err)
	}
	valKey, err := os.ReadFile(n.ValidatorKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.ReplicaHomes) != DefaultReplicas {
		t.Errorf("%d replica homes, want %d", len(n.ReplicaHomes), DefaultReplicas)
	}
	for _, home := range n.ReplicaHomes {
		key := filepath.Join(home, "config", "priv_validator_key.json")
		own, err := os.ReadFile(key)
		if err != nil {
			t.Errorf("replica key: %v", err)
			continue
		}
		if bytes.Equal(own, valKey) {
			t.Errorf("%s is the validator key", key)
		}
		if addr, _ := keyAddress(key); addr == n.HAAddress {
			t.Errorf("%s has the HA validator's address", key)
		}
	}
	seen := map[string]bool{}
	for _, home := range append(append([]string{}, n.Homes...), n.ReplicaHomes...) {
		gen, err := types.GenesisDocFromFile(genesisPath(home))
		if err != nil {
			t.Fatalf("genesis of %s: %v", home, err)
		}
		if gen.ChainID != n.ChainID {
			t.Errorf("%s: chain %s, want %s", home, gen.ChainID, n.ChainID)
		}
		if len(gen.Validators) != len(n.Homes) {
			t.Errorf("%s: %d genesis validators, want %d", home, len(gen.Validators), len(n.Homes))
		}
		for _, v := range gen.Validators {
			if v.Power != DefaultPower {
				t.Errorf("%s: validator %s power %d, want %d", home, v.Address, v.Power, DefaultPower)
			}
		}
		rpc, peer := n.RPC(home), n.P2P(home)
		if rpc == "" || peer == "" || seen[rpc] || seen[peer] {
			t.Errorf("%s: rpc %q p2p %q missing or shared", home, rpc, peer)
		}
		seen[rpc], seen[peer] = true, true
	}
}
