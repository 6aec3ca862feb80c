package cometbft

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/types"
	"github.com/tidwall/gjson"

	"github.com/valguard/valguard/signer"
)

// SignMode is how the validator key reaches the node.
type SignMode string

const (
	// SignRestart (the default): the key file is linked into the node
	// home while this replica leads, and the node restarted as the
	// validator.
	SignRestart SignMode = "restart"
	// SignSigner: valguard holds the key and is the node's remote signer
	// on priv_validator_laddr; the node runs all the time with its own
	// voter key file in the home (CometBFT v0.38 still loads a FilePV from
	// priv_validator_key_file before node/node.go replaces it with the
	// socket client, so a key file must be there, and it is never the
	// validator's).
	SignSigner SignMode = "signer"
)

// setSignMode checks the sign mode and the signer address of cfg, whose
// Home is absolute.
func (cfg *Config) setSignMode() error {
	switch cfg.SignMode {
	case "":
		cfg.SignMode = SignRestart
	case SignRestart, SignSigner:
	default:
		return fmt.Errorf("sign mode %q: want %q or %q", cfg.SignMode, SignRestart, SignSigner)
	}
	if cfg.SignMode == SignRestart {
		if cfg.SignerAddr != "" {
			return errors.New("a signer address is a setting of the signer mode")
		}
		return nil
	}
	if cfg.SignerAddr == "" {
		cfg.SignerAddr = "unix://" + filepath.Join(cfg.Home, "valguard", "privval.sock")
	}
	if _, _, err := signer.ParseAddr(cfg.SignerAddr); err != nil {
		return err
	}
	return nil
}

// SignerAddr is the node's priv_validator_laddr in signer mode, which
// valguard dials; "" in restart mode.
func (n *Node) SignerAddr() string { return n.cfg.SignerAddr }

// checkLaddr checks config.toml's priv_validator_laddr: empty in restart
// mode (the node would take its key from a signer valguard does not
// control), empty or valguard's own address in signer mode.
func (n *Node) checkLaddr(p paths) error {
	switch {
	case p.laddr == "":
		return nil
	case n.cfg.SignMode == SignSigner && p.laddr == n.cfg.SignerAddr:
		return nil
	case n.cfg.SignMode == SignSigner:
		return fmt.Errorf("%s sets priv_validator_laddr = %q, but valguard serves the node's signer at %s: set it to \"\" (valguard passes its own address to the node)", p.config, p.laddr, n.cfg.SignerAddr)
	}
	return fmt.Errorf("%s sets priv_validator_laddr = %q (a remote signer): in the restart sign mode valguard manages a file key; set it to \"\", or use the signer sign mode", p.config, p.laddr)
}

// checkSignerAddr refuses, in signer mode, a signer address something
// already listens on (another node, whose signer valguard would become),
// and, for a unix socket, anything at its path that is not a socket. A
// stale socket file (nothing accepts on it) is left for Command to remove.
func (n *Node) checkSignerAddr() error {
	if n.cfg.SignMode != SignSigner {
		return nil
	}
	network, addr, err := signer.ParseAddr(n.cfg.SignerAddr)
	if err != nil {
		return err
	}
	if network == "unix" {
		fi, err := os.Lstat(addr)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("signer socket %s: %w", addr, err)
		case fi.Mode()&fs.ModeSocket == 0:
			return fmt.Errorf("signer socket %s exists and is not a socket (%s): move it away; valguard removes only stale sockets there", addr, fi.Mode().Type())
		}
	}
	c, err := net.DialTimeout(network, addr, probeTimeout)
	if err != nil {
		return nil // nothing accepts: free, or a stale socket
	}
	c.Close()
	return fmt.Errorf("another process serves the signer address %s (a node left running?): stop it (ss -lxp or ss -ltnp shows which), then start valguard again", n.cfg.SignerAddr)
}

// removeStaleSocket removes a stale unix socket at the signer address:
// CometBFT v0.38 leaves its privval socket file behind even after a clean
// stop, and the next start then fails on it ("bind: address already in
// use"). Only a socket nothing accepts on is removed.
func (n *Node) removeStaleSocket() error {
	if err := n.checkSignerAddr(); err != nil {
		return err
	}
	network, addr, _ := signer.ParseAddr(n.cfg.SignerAddr)
	if network != "unix" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(addr), 0o700); err != nil {
		return err
	}
	if err := os.Remove(addr); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale signer socket %s: %w", addr, err)
	}
	return nil
}

// ChainID is the chain id in the node's genesis file, read without
// decoding the rest of it (real chains' genesis files run to hundreds of
// megabytes).
func (n *Node) ChainID() (string, error) {
	data, err := os.ReadFile(n.p.genesis)
	if err != nil {
		return "", fmt.Errorf("genesis file: %w", err)
	}
	id := gjson.GetBytes(data, "chain_id")
	if id.Type != gjson.String || id.Str == "" {
		return "", fmt.Errorf("genesis file %s has no chain_id", n.p.genesis)
	}
	return id.Str, nil
}

// PrivKey loads the validator key into memory, for the signer mode: an
// ed25519 key whose address is the one New read.
func (n *Node) PrivKey() (crypto.PrivKey, error) {
	data, err := os.ReadFile(n.cfg.ValidatorKey)
	if err != nil {
		return nil, fmt.Errorf("validator key: %w", err)
	}
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal(data, &k); err != nil || k.PrivKey == nil {
		return nil, fmt.Errorf("validator key %s is not a CometBFT priv_validator_key.json", n.cfg.ValidatorKey)
	}
	if _, ok := k.PrivKey.(ed25519.PrivKey); !ok {
		return nil, fmt.Errorf("validator key %s is a %s key: the signer mode signs with ed25519 keys only", n.cfg.ValidatorKey, k.PrivKey.Type())
	}
	if got := k.PrivKey.PubKey().Address().String(); got != n.key.Address {
		return nil, fmt.Errorf("validator key %s changed since start-up (address %s, was %s)", n.cfg.ValidatorKey, got, n.key.Address)
	}
	return k.PrivKey, nil
}

// LastSignedHeight is the latest of the last maxScan committed heights
// whose commit carries this validator's signature; 0 if none does. It is
// the chain's floor under the signer's watermark.
func (n *Node) LastSignedHeight(ctx context.Context, maxScan int64) (int64, error) {
	st, err := n.rpc.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("node status: %w", err)
	}
	return lastSignedHeight(ctx, n.rpc, n.key.Address, st.SyncInfo.LatestBlockHeight, maxScan)
}

// lastSignedHeight scans the commits from top down for addr's signature,
// at most maxScan of them.
func lastSignedHeight(ctx context.Context, c *rpchttp.HTTP, addr string, top, maxScan int64) (int64, error) {
	for h := top; h > 0 && h > top-maxScan; h-- {
		res, err := c.Commit(ctx, &h)
		if err != nil {
			return 0, fmt.Errorf("commit at height %d: %w", h, err)
		}
		for _, sig := range res.SignedHeader.Commit.Signatures {
			if sig.BlockIDFlag == types.BlockIDFlagCommit && sig.ValidatorAddress.String() == addr {
				return h, nil
			}
		}
	}
	return 0, nil
}
