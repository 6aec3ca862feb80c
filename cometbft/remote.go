package cometbft

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"time"

	"github.com/cometbft/cometbft/crypto"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/valguard/valguard/supervisor"
)

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// RPC is the node's RPC address: http://host:port (tcp://host:port is
	// taken as http).
	RPC string
	// ValidatorKey is the validator's priv_validator_key.json.
	ValidatorKey string
	// ChainID is the node's chain; requests of another chain are refused.
	ChainID string
	// SignerAddr is the node's priv_validator_laddr, which valguard dials:
	// unix:///abs/path or tcp://host:port. Required: valguard does not
	// know the node's configuration.
	SignerAddr string
	// MaxBlockAge as in Config: 0 means DefaultMaxBlockAge, negative any
	// age.
	MaxBlockAge time.Duration
}

// ErrExternal: an external node is never prepared or started by valguard.
var ErrExternal = errors.New("the node runs on its own: valguard signs for it and never prepares or starts it")

// Remote is a CometBFT node valguard signs for but does not run (another
// systemd unit, a container): it reads the node's status and serves its
// privval connection, nothing else. Unlike Node it never probes the
// signer address (a node waiting for its signer takes any connection for
// it, and exits when that connection closes at once). It implements
// supervisor.Node for a supervisor with Unsupervised set.
type Remote struct {
	cfg RemoteConfig
	key Key
	rpc *rpchttp.HTTP
	// floor is the chain-floor scan of the validator on the node, with
	// its cache (LastSigned).
	floor *floorScan
}

var _ supervisor.Node = (*Remote)(nil)

// NewRemote checks cfg and the validator key.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.ChainID == "" {
		return nil, errors.New("an external node needs its chain id")
	}
	if cfg.SignerAddr == "" {
		return nil, fmt.Errorf("%w: an external node needs its priv_validator_laddr", ErrSignerAddr)
	}
	if _, _, err := parseSignerAddr(cfg.SignerAddr); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.RPC)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tcp") || u.Host == "" {
		return nil, fmt.Errorf("node RPC %q: want http://host:port", cfg.RPC)
	}
	if u.Scheme == "tcp" {
		u.Scheme = "http"
	}
	if cfg.MaxBlockAge == 0 {
		cfg.MaxBlockAge = DefaultMaxBlockAge
	}
	key, err := LoadKey(cfg.ValidatorKey)
	if err != nil {
		return nil, err
	}
	rpc, err := rpchttp.New(u.String(), "/websocket")
	if err != nil {
		return nil, fmt.Errorf("rpc client for %s: %w", u, err)
	}
	return &Remote{cfg: cfg, key: key, rpc: rpc, floor: newFloorScan(rpc, key.Address)}, nil
}

// Prepare is never called for an unsupervised node.
func (r *Remote) Prepare(context.Context, supervisor.Role, []byte) error { return ErrExternal }

// Command is never called for an unsupervised node.
func (r *Remote) Command(supervisor.Role) (*exec.Cmd, error) { return nil, ErrExternal }

// Watermark is nil: the signer's watermark is fenced in Consul.
func (r *Remote) Watermark() ([]byte, error) { return nil, nil }

// Status reads the node's status. A node that reports another validator
// key than this one does not sign through valguard (its
// priv_validator_laddr is not ours): it is an error, so the replica never
// counts as synced.
//
// A node with no block yet never counts as synced: valguard has no
// genesis file for an external node, so no evidence that height 0 means
// a chain at its launch rather than a node whose home was wiped on a
// running chain (see synced), and the node's RPC offers the genesis time
// only in /genesis or /genesis_chunked, whose answers run to the size of
// the genesis file (16 MB chunks). An external node must have a block
// before its replica enters the election, so a chain whose first block
// needs this validator cannot launch through an external node: run the
// launch with valguard running the node.
func (r *Remote) Status(ctx context.Context) (supervisor.Status, error) {
	res, err := r.rpc.Status(ctx)
	if err != nil {
		return supervisor.Status{}, err
	}
	if got := res.ValidatorInfo.Address.String(); got != r.key.Address {
		return supervisor.Status{}, fmt.Errorf("the node at %s reports validator %s, not %s: set its priv_validator_laddr to %s", r.cfg.RPC, got, r.key.Address, r.cfg.SignerAddr)
	}
	if res.NodeInfo.Network != r.cfg.ChainID {
		return supervisor.Status{}, fmt.Errorf("the node at %s is on chain %q, not %q", r.cfg.RPC, res.NodeInfo.Network, r.cfg.ChainID)
	}
	si := res.SyncInfo
	st := supervisor.Status{Height: si.LatestBlockHeight, CatchingUp: si.CatchingUp, BlockTime: si.LatestBlockTime}
	st.Synced = synced(st, r.cfg.MaxBlockAge, false)
	return st, nil
}

// ChainID is the configured chain id.
func (r *Remote) ChainID() (string, error) { return r.cfg.ChainID, nil }

// PrivKey loads the validator key into memory (see Node.PrivKey).
func (r *Remote) PrivKey() (crypto.PrivKey, error) {
	return loadPrivKey(r.cfg.ValidatorKey, r.key.Address)
}

// LastSigned: see Node.LastSigned; the cache is this Remote's.
func (r *Remote) LastSigned(ctx context.Context, maxScan int64) (int64, int32, error) {
	return r.floor.lastSigned(ctx, maxScan)
}

// SignerAddr is the node's priv_validator_laddr.
func (r *Remote) SignerAddr() string { return r.cfg.SignerAddr }

// Address is the validator's address (upper-case hex).
func (r *Remote) Address() string { return r.key.Address }

// PublicKey is the validator's public key, "<type>:<base64>".
func (r *Remote) PublicKey() string { return r.key.PublicKey }

// LockID names the validator's lock: its address.
func (r *Remote) LockID() string { return r.key.Address }

// RPC is the node's RPC address.
func (r *Remote) RPC() string { return r.cfg.RPC }
