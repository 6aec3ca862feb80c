//go:build e2e

package cometbft

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/privval"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/supervisor"
)

// A localnet of 4 validators (power 10 each) whose HA validator signs
// through a replica node run by the adapter in the signer mode, with
// CometBFT's reference FilePV signer server (privval.SignerServer) on the
// socket in valguard's place. It shows, on the real thing: the node
// reports the validator's key and the signer-mode Status accepts it;
// ChainID is the network's; LastSignedHeight finds the validator's last
// commit signature, exactly, within its window and not outside it (on a
// first scan; a floor once found stays), and is 0 for a validator that
// never signed.
func TestRealLocalnetSignerModeAndChainFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a CometBFT localnet")
	}
	bin := cometbftBinary(t)
	ctx := t.Context()
	dir := shortDir(t)
	net, err := localnet.Create(ctx, localnet.Config{Dir: filepath.Join(dir, "ln"), Binary: bin, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := net.StartValidators(ctx, filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		t.Cleanup(func() { _ = p.Stop(localnet.DefaultStopTimeout) })
	}
	replica := net.ReplicaHomes[0]
	n, err := New(Config{Home: replica, ValidatorKey: net.ValidatorKey, Binary: bin, SignMode: SignSigner, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := n.ChainID(); err != nil || id != net.ChainID {
		t.Fatalf("ChainID = %q, %v; want %q", id, err, net.ChainID)
	}
	priv, err := n.PrivKey()
	if err != nil {
		t.Fatal(err)
	}
	if priv.PubKey().Address().String() != net.HAAddress {
		t.Fatalf("PrivKey address %s, want the HA validator %s", priv.PubKey().Address(), net.HAAddress)
	}

	// The signer dials before the node starts (the node waits 3 s for it).
	_, sock, _ := parseSignerAddr(n.SignerAddr())
	pv := privval.LoadFilePVEmptyState(net.ValidatorKey, filepath.Join(dir, "pv_state.json"))
	ep := privval.NewSignerDialerEndpoint(cmtlog.NewNopLogger(), privval.DialUnixFn(sock),
		privval.SignerDialerEndpointConnRetries(1200), privval.SignerDialerEndpointRetryWaitInterval(50*time.Millisecond))
	ss := privval.NewSignerServer(ep, net.ChainID, pv)
	if err := n.Prepare(ctx, supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if err := ss.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, err := n.Command(supervisor.RoleVoter)
	if err != nil {
		t.Fatal(err)
	}
	node := startLogged(t, cmd, dir, "replica")
	t.Cleanup(func() { _ = ss.Stop() }) // before the node stops: the server spins on EOF

	if err := firstStatus(t, n); err != nil {
		t.Fatalf("signer-mode Status of the real node: %v", err)
	}
	res, err := n.rpc.Status(ctx)
	if err != nil || res.ValidatorInfo.Address.String() != net.HAAddress {
		t.Fatalf("the node reports validator %v (%v), want %s", res.ValidatorInfo.Address, err, net.HAAddress)
	}

	// Through the node's own RPC: the validator signs, and the floor
	// finds it, moving up with the chain. The validator's first signature
	// can come a few heights in (its node joins late), so this waits for
	// five signed heights, not for a height. Only a floor below the node's
	// latest height is taken: the commit at the latest height is the
	// node's own seen commit, which can hold a precommit that the
	// canonical commit (the next block's last commit, the one every other
	// node serves) does not.
	began := time.Now()
	var live int64
	for {
		if time.Since(began) > 90*time.Second {
			t.Fatalf("within 90 s, no floor below the latest height that is in the canonical commit with 5 signed heights up to it (floor %d)", live)
		}
		time.Sleep(500 * time.Millisecond)
		if live, err = n.LastSignedHeight(ctx, 20); err != nil {
			t.Fatal(err)
		}
		if live < 5 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := localnet.WaitHeight(wctx, n.RPC(), live+1)
		cancel()
		if err != nil {
			continue
		}
		if ok, err := localnet.SignedAt(ctx, n.RPC(), net.HAAddress, live); err != nil || !ok {
			continue // signed, seen, but not in the canonical commit
		}
		signed, _, err := localnet.Signers(ctx, n.RPC(), 1, live, net.HAAddress)
		if err != nil {
			t.Fatal(err)
		}
		if len(signed) >= 5 {
			break
		}
	}
	t.Logf("floor %d through the replica's RPC %v after it answered", live, time.Since(began).Round(time.Millisecond))

	// The validator stops signing (its only node stops); the chain goes
	// on with 30 of 40. From node0, the floor is then a fixed height.
	stopped := time.Now()
	if err := node.Stop(localnet.DefaultStopTimeout); err != nil {
		t.Error(err)
	}
	if err := ss.Stop(); err != nil {
		t.Log(err)
	}
	rpc0 := net.RPC(net.Homes[0])
	h0, err := localnet.Height(ctx, rpc0)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := localnet.WaitHeight(wctx, rpc0, h0+5); err != nil {
		t.Fatal(err)
	}
	readFrom(t, n, rpc0)
	top, err := localnet.Height(ctx, rpc0)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := localnet.Signers(ctx, rpc0, 1, top, net.HAAddress)
	if err != nil || len(signed) < 5 {
		t.Fatalf("heights signed by the HA validator: %v (%v), want at least 5", signed, err)
	}
	last := signed[len(signed)-1]
	scanStart := time.Now()
	floor, err := n.LastSignedHeight(ctx, top+10)
	scanTook := time.Since(scanStart)
	if err != nil || floor != last {
		t.Fatalf("LastSignedHeight = %d, %v; want %d, the last height of %d signed ones below %d", floor, err, last, len(signed), top)
	}
	t.Logf("stopped signing %v ago; top %d, floor %d (%d heights signed); scan of %d heights took %v",
		time.Since(stopped).Round(time.Millisecond), top, floor, len(signed), top-floor+1, scanTook.Round(time.Millisecond))
	if floor < live {
		t.Fatalf("the floor went down: %d after %d", floor, live)
	}
	// A floor once found stays, whatever the window of a later call.
	if got, err := n.LastSignedHeight(ctx, 1); err != nil || got != last {
		t.Fatalf("LastSignedHeight over 1 height after it found %d = %d, %v; want %d", last, got, err, last)
	}
	// With nothing found before (a new client: a new cache), a window that
	// ends below the last signature finds none; a later top only moves the
	// window further away.
	readFrom(t, n, rpc0)
	if got, err := n.LastSignedHeight(ctx, top-last); err != nil || got != 0 {
		t.Fatalf("LastSignedHeight over the %d heights above %d = %d, %v; want 0", top-last, last, got, err)
	}
	// One that reaches it finds it (10 heights of slack for a moving top).
	if got, err := n.LastSignedHeight(ctx, top-last+10); err != nil || got != last {
		t.Fatalf("LastSignedHeight over %d heights = %d, %v; want %d", top-last+10, got, err, last)
	}
	if _, err := n.LastSignedHeight(ctx, 0); err == nil {
		t.Fatal("a window of 0 heights accepted")
	}

	// A validator that never signed has floor 0, over the whole chain.
	h, key := home(t, "")
	never := newNode(t, h, key)
	readFrom(t, never, rpc0)
	if got, err := never.LastSignedHeight(ctx, top+100); err != nil || got != 0 {
		t.Fatalf("LastSignedHeight of a key that never signed = %d, %v; want 0", got, err)
	}

	// No double sign on the way: no evidence, no conflicting vote logged.
	if ev, err := localnet.DuplicateVoteEvidence(ctx, rpc0, 1, top); err != nil || len(ev) != 0 {
		t.Fatalf("duplicate-vote evidence %v (%v)", ev, err)
	}
	if lines, err := localnet.ConflictingVoteLines(filepath.Join(dir, "replica.log")); err != nil || len(lines) != 0 {
		t.Fatalf("conflicting votes in the replica's log: %v (%v)", lines, err)
	}
}

// readFrom points n at the node whose RPC is at rpc: a new client, and a
// new chain-floor scan over it that knows nothing (the scan and its cache
// belong to the client and the validator).
func readFrom(t *testing.T, n *Node, rpc string) {
	t.Helper()
	c, err := rpchttp.New(rpc, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	n.rpc, n.floor = c, newFloorScan(c, n.key.Address)
}
