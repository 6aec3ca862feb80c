package cometbft

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/valguard/valguard/supervisor"
)

// Status implements supervisor.Node. Restart mode: a node started as a
// voter that reports any validator address other than the voter key's
// (the validator's key above all) is supervisor.ErrUnexpectedKey: a key
// reached it that valguard did not link; the supervisor kills it and
// stops (S1, S7).
//
// Signer mode: the node legitimately reports the validator's address, as
// its key comes from valguard's socket. Any other address (a foreign
// key, or its voter key file: the node does not sign through valguard),
// and a node home whose key file holds the validator key (the node loads
// that file at start even with a remote signer, so it would hold the key
// in memory: S1′), are supervisor.ErrUnexpectedKey. The key file is read
// at every call, also for a node valguard did not prepare.
//
// A node with no block yet counts as synced only at the chain's launch:
// the genesis file's genesis_time, read once at the first such status,
// ahead or less than LaunchWindow ago (see synced).
func (n *Node) Status(ctx context.Context) (supervisor.Status, error) {
	res, err := n.rpc.Status(ctx)
	if err != nil {
		return supervisor.Status{}, err
	}
	if n.signerMode() {
		if err := n.checkSignerStatus(res.ValidatorInfo.Address.String()); err != nil {
			return supervisor.Status{}, err
		}
	}
	n.mu.Lock()
	voter := !n.signerMode() && n.prepared && n.role == supervisor.RoleVoter
	voterAddr := n.voterAddr
	n.mu.Unlock()
	if got := res.ValidatorInfo.Address.String(); voter && got != voterAddr {
		what := "a key other than this replica's voter key " + voterAddr
		if got == n.key.Address {
			what = "the validator key"
		}
		return supervisor.Status{}, fmt.Errorf("%w: the voter node reports validator address %s, %s, although valguard linked only the voter key: check priv_validator_key_file and priv_validator_laddr in %s, the node's arguments and environment, and what else writes into the node home",
			supervisor.ErrUnexpectedKey, got, what, n.p.config)
	}
	si := res.SyncInfo
	st := supervisor.Status{Height: si.LatestBlockHeight, CatchingUp: si.CatchingUp, BlockTime: si.LatestBlockTime}
	for {
		seen := n.seen.Load()
		if st.Height <= seen || n.seen.CompareAndSwap(seen, st.Height) {
			break
		}
	}
	// The genesis file is read only for a node with no block yet. The
	// key-file mode does not lead from height 0: its sign-state raise
	// needs a committed height (prepareValidator, S8), so a launch there
	// waits for the first block as before.
	launch := n.signerMode() && st.Height == 0 && !st.CatchingUp && n.launching(time.Now())
	st.Synced = synced(st, n.cfg.MaxBlockAge, launch)
	return st, nil
}

// synced is the adapter's verdict on a node's status: not catching up,
// and either a block no older than maxAge (negative: any age) or, when
// launch says the chain is at its launch (genesis time ahead or less
// than LaunchWindow ago: Node.launching), no block at all: the chain's
// first block may need this very validator, so that waiting for a block
// would never end. Without that evidence a node with no block is not
// synced: in the signer mode every replica's node presents the
// validator's key, and with a third of the power or more CometBFT skips
// block sync, so a node whose home was wiped on a running chain reports
// height 0, not catching up, within a second; counted as synced, it could
// lead, and with a missing watermark sign old heights again. A node that
// joins a running chain otherwise reports catching up while it
// block-syncs; one cut off from every peer at a launch may end its block
// sync at height 0 and count as synced, and is then kept out of the
// election by the other replicas' heights (run --max-lag).
func synced(st supervisor.Status, maxAge time.Duration, launch bool) bool {
	if st.CatchingUp {
		return false
	}
	if st.Height == 0 {
		return launch
	}
	return st.Height > 0 && (maxAge < 0 || time.Since(st.BlockTime) <= maxAge)
}

// Watermark implements supervisor.Node: the validator's sign state, from the
// file the node writes before every signature. In the signer mode it is
// nil: the watermark is the signer's, fenced in Consul with every
// signature, and the node's own state file is its voter key's.
func (n *Node) Watermark() ([]byte, error) {
	if n.signerMode() {
		return nil, nil
	}
	n.mu.Lock()
	role := n.role
	n.mu.Unlock()
	if role != supervisor.RoleValidator {
		return nil, nil
	}
	s, err := readState(n.p.state)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}
