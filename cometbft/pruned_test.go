//go:build e2e

package cometbft

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	abciserver "github.com/cometbft/cometbft/abci/server"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/valguard/valguard/internal/localnet"
)

// prunedRetain is how many blocks the pruned node keeps.
const prunedRetain = 20

// A real CometBFT node whose old blocks are gone: validator 0 (power 30
// of 40, the chain runs without the other) runs with a kvstore app served
// from this test over an ABCI socket, which asks the node to retain only
// its last prunedRetain blocks (ResponseCommit.RetainHeight). The HA
// validator signs through a replica node for a while, then stops. The
// chain floor read from the pruned node, with a window far wider than
// what it keeps: finds the HA validator's last signature while the node
// still stores it; keeps it (cached) after the node pruned it; is 0 with
// no error on a fresh scan that finds only heights without it, and for a
// key that never signed. Before the fix, each of those scans failed on the
// first pruned commit.
func TestRealPrunedNodeChainFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a CometBFT localnet")
	}
	bin := cometbftBinary(t)
	ctx := t.Context()
	dir := shortDir(t)
	net, err := localnet.Create(ctx, localnet.Config{Dir: filepath.Join(dir, "ln"), Binary: bin,
		Validators: 2, Powers: []int64{30, 10}, Replicas: 1, TimeoutCommit: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	// Validator 0's app, with a retain height.
	app := kvstore.NewInMemoryApplication()
	app.RetainBlocks = prunedRetain
	abciAddr := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	srv := abciserver.NewSocketServer(abciAddr, app)
	srv.SetLogger(cmtlog.NewNopLogger())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() }) // after the node stopped (cleanups run last first)
	home0 := net.Homes[0]
	setProxyApp(t, home0, abciAddr)
	node0, err := net.StartNode(ctx, home0, filepath.Join(dir, "node0.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node0.Stop(localnet.DefaultStopTimeout) })

	// The HA validator signs from its replica node (the built-in kvstore,
	// nothing pruned there).
	replica := net.ReplicaHomes[0]
	key, err := os.ReadFile(net.ValidatorKey)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(replica, "config", "priv_validator_key.json"), string(key))
	ha, err := net.StartNode(ctx, replica, filepath.Join(dir, "replica.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ha.Stop(localnet.DefaultStopTimeout) })

	rpc0 := net.RPC(home0)
	remote := func(keyPath string) *Remote {
		r, err := NewRemote(RemoteConfig{RPC: rpc0, ValidatorKey: keyPath, ChainID: net.ChainID, SignerAddr: "unix://" + filepath.Join(dir, "unused.sock")})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const window = 1000 // far more than the node keeps
	r := remote(net.ValidatorKey)

	// Wait for the node to prune and the HA validator to sign.
	began := time.Now()
	for {
		if time.Since(began) > 90*time.Second {
			t.Fatalf("after 90 s: %s", describe(ctx, t, rpc0))
		}
		time.Sleep(300 * time.Millisecond)
		earliest, _ := heights(ctx, t, rpc0)
		if earliest <= 1 {
			continue
		}
		h, _, err := r.LastSigned(ctx, window)
		if err != nil {
			t.Fatalf("LastSigned on the pruned node (%s): %v", describe(ctx, t, rpc0), err)
		}
		if h >= earliest+3 {
			break
		}
	}

	// A validator that never signed: 0, down to the earliest height.
	neverKey := filepath.Join(dir, "never.json")
	writeKey(t, neverKey)
	start := time.Now()
	if h, _, err := remote(neverKey).LastSigned(ctx, window); err != nil || h != 0 {
		t.Fatalf("LastSigned of a key that never signed = %d, %v; want 0 (%s)", h, err, describe(ctx, t, rpc0))
	}
	t.Logf("pruned node (%s): a fresh scan of every stored height took %v",
		describe(ctx, t, rpc0), time.Since(start).Round(time.Microsecond))
	replicaRPC := net.RPC(replica)
	rr, err := rpchttp.New(replicaRPC, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if h, _, err := newFloorScan(rr, ed25519.GenPrivKey().PubKey().Address().String()).lastSigned(ctx, window); err != nil || h != 0 {
		t.Fatalf("LastSigned of a key that never signed, on the unpruned node = %d, %v; want 0", h, err)
	}
	t.Logf("unpruned node (%s): a fresh scan of every stored height took %v",
		describe(ctx, t, replicaRPC), time.Since(start).Round(time.Microsecond))

	// The HA validator stops signing; the chain goes on.
	if err := ha.Stop(localnet.DefaultStopTimeout); err != nil {
		t.Error(err)
	}
	_, top := heights(ctx, t, rpc0)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := localnet.WaitHeight(wctx, rpc0, top+3); err != nil {
		t.Fatal(err)
	}
	earliest, top := heights(ctx, t, rpc0)
	signed, _, err := localnet.Signers(ctx, rpc0, earliest+2, top, net.HAAddress)
	if err != nil || len(signed) == 0 {
		t.Fatalf("heights %d..%d signed by the HA validator: %v (%v)", earliest+2, top, signed, err)
	}
	last := signed[len(signed)-1]
	start = time.Now()
	floor, round, err := r.LastSigned(ctx, window)
	if err != nil || floor != last {
		t.Fatalf("LastSigned = %d, %v; want %d, the HA validator's last signature", floor, err, last)
	}
	t.Logf("cached scan, top %d, floor %d: %v", top, floor, time.Since(start).Round(time.Microsecond))

	// The node prunes the last signature away.
	for {
		if time.Since(began) > 3*time.Minute {
			t.Fatalf("the node did not prune height %d: %s", last, describe(ctx, t, rpc0))
		}
		time.Sleep(300 * time.Millisecond)
		if earliest, _ := heights(ctx, t, rpc0); earliest > last+1 {
			break
		}
	}
	// Cached: the floor stays.
	if h, rd, err := r.LastSigned(ctx, window); err != nil || h != last || rd != round {
		t.Fatalf("LastSigned after the node pruned height %d = %d/%d, %v; want %d/%d (%s)", last, h, rd, err, last, round, describe(ctx, t, rpc0))
	}
	// Fresh: what the node shows, which is nothing (the documented limit).
	start = time.Now()
	if h, _, err := remote(net.ValidatorKey).LastSigned(ctx, window); err != nil || h != 0 {
		t.Fatalf("a fresh LastSigned after the node pruned height %d = %d, %v; want 0 (%s)", last, h, err, describe(ctx, t, rpc0))
	}
	t.Logf("pruned node (%s): a fresh scan without the signature took %v", describe(ctx, t, rpc0), time.Since(start).Round(time.Microsecond))
}

// setProxyApp points home's node at the ABCI socket addr.
func setProxyApp(t *testing.T, home, addr string) {
	t.Helper()
	path := filepath.Join(home, "config", "config.toml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := `proxy_app = "kvstore"`
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %s", path, old)
	}
	write(t, path, strings.Replace(string(data), old, fmt.Sprintf("proxy_app = %q", addr), 1))
}

// heights are the node's earliest and latest stored heights.
func heights(ctx context.Context, t *testing.T, rpc string) (earliest, latest int64) {
	t.Helper()
	c, err := rpchttp.New(rpc, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.SyncInfo.EarliestBlockHeight, st.SyncInfo.LatestBlockHeight
}

func describe(ctx context.Context, t *testing.T, rpc string) string {
	earliest, latest := heights(ctx, t, rpc)
	return fmt.Sprintf("heights %d..%d stored", earliest, latest)
}
