package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/atomicfile"
	"github.com/valguard/valguard/signer"
)

// chainFloorScan is how many recent heights are searched for this
// validator's last signature, the floor from the chain.
const chainFloorScan = 100

// signerSetup is valguard as the node's remote signer.
type signerSetup struct {
	s       *signer.Signer
	addr    string
	keyFile string // our side's SecretConnection key, for a tcp address
	log     zerolog.Logger
	m       *signer.Metrics
}

// newSigner loads the validator key into memory and builds the signer; it
// changes nothing on disk.
func newSigner(ctx context.Context, cfg Config, el *election.Election, synced, heldOut func() bool, best func() int64, log zerolog.Logger) (*signerSetup, error) {
	ns, sc := cfg.Node, cfg.Signer
	n := ns.Signer
	key, err := n.PrivKey()
	if err != nil {
		return nil, fmt.Errorf("--validator-key: %w", err)
	}
	chainID, err := n.ChainID()
	if err != nil {
		return nil, fmt.Errorf("chain id: %w", err)
	}
	if err := checkStoredChain(ctx, cfg.ConsulTimeout, el, chainID); err != nil {
		return nil, err
	}
	m := signer.NewMetrics(cfg.Registry)
	scfg := signer.Config{
		Key: key, ChainID: chainID, Store: store{el}, Log: log, Metrics: m,
		ParkHold: sc.ParkHold, FenceTimeout: sc.FenceTimeout,
		FloorFile:  filepath.Join(cfg.StateDir, "signer-floor.json"),
		ChainFloor: func(ctx context.Context) (int64, int32, error) { return n.LastSigned(ctx, chainFloorScan) },
		// The chain's latest height as far as a new leader that must
		// raise a missing or lowered watermark can bound it: its node may
		// be up to --max-lag behind the best height a replica reports,
		// and that best height behind the chain, so the bound is the
		// higher of the two plus --max-lag. At a launch (no block
		// anywhere) it is 0: a new validator leads from zero.
		ChainHeight: func(ctx context.Context) (int64, error) {
			st, err := ns.Node.Status(ctx)
			if err != nil {
				return 0, err
			}
			return restoreBound(st.Height, best(), cfg.MaxLag), nil
		},
		DeposeAfter: sc.DeposeAfter, DeposeHoldoff: sc.DeposeHoldoff,
		Holder: func(ctx context.Context) (string, error) {
			// Never this replica's own session: it may have taken the lock
			// a moment ago and not be leading yet.
			l, err := el.Leader(ctx)
			if err != nil || l == nil || l.ReplicaID == el.Config().ReplicaID {
				return "", err
			}
			return l.Session, nil
		},
		Depose: el.DestroyStaleHolder,
		LockFree: func(ctx context.Context) (bool, error) {
			l, err := el.Leader(ctx)
			return err == nil && l == nil, err
		},
		Synced: synced,
	}
	if sc.leaderless() {
		// Every replica signs: no holder to depose, no lock to wait for.
		scfg.Leaderless, scfg.HeldOut = true, heldOut
		scfg.DeposeAfter, scfg.Holder, scfg.Depose, scfg.LockFree = 0, nil, nil, nil
	}
	s, err := signer.New(scfg)
	if errors.Is(err, signer.ErrUnsafeTiming) {
		return nil, fmt.Errorf("--signer-park-hold %s, --fence-timeout %s: %w", sc.ParkHold, sc.FenceTimeout, err)
	}
	if err != nil {
		return nil, err
	}
	return &signerSetup{s: s, addr: n.SignerAddr(), log: log, m: m,
		keyFile: filepath.Join(cfg.StateDir, "signer_conn_key.json")}, nil
}

// start serves the node's privval socket and follows the watermark until
// ctx ends. It runs before the supervisor starts the node (a node that
// finds no signer within 3 s exits), and ctx must end only after the
// supervisor stopped the node.
func (ss *signerSetup) start(ctx context.Context) error {
	cfg := signer.ConnConfig{Addr: ss.addr, Log: ss.log, OnConnected: ss.m.SetConnected}
	if network, _, err := signer.ParseAddr(ss.addr); err != nil {
		return fmt.Errorf("--signer-addr: %w", err)
	} else if network == "tcp" {
		if cfg.ConnKey, err = connKey(ss.keyFile); err != nil {
			return err
		}
	}
	go func() {
		if err := signer.Serve(ctx, cfg, ss.s); err != nil {
			ss.log.Error().Err(err).Msg("privval connection loop ended")
		}
	}()
	go func() {
		if err := ss.s.Run(ctx); err != nil && ctx.Err() == nil {
			ss.log.Error().Err(err).Msg("watermark follower ended")
		}
	}()
	return nil
}

// connKey is our side's SecretConnection key for a tcp signer address,
// created once in the node home's valguard directory (it authenticates
// valguard to nothing CometBFT v0.38 checks, but a stable identity is what
// a later node-side check would pin). It is never the validator key.
func connKey(path string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := ed25519.GenPrivKey()
		if data, err = cmtjson.Marshal(k); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("create the signer connection key %s: %w", path, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signer connection key: %w", err)
	}
	var k crypto.PrivKey
	if err := cmtjson.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("signer connection key %s is unreadable (%v): move it aside and valguard creates a new one", path, err)
	}
	if _, ok := k.(ed25519.PrivKey); !ok {
		return nil, fmt.Errorf("signer connection key %s is not an ed25519 key: move it aside and valguard creates a new one", path)
	}
	return k, nil
}

// checkStoredChain refuses, at start-up, a watermark in Consul of another
// chain than the node's genesis (a copied config, a wrong key): leading
// would be refused later anyway. Consul unreachable now decides nothing;
// every Grant checks again.
func checkStoredChain(ctx context.Context, timeout time.Duration, el *election.Election, chainID string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	value, _, err := el.ReadWatermark(ctx)
	if err != nil || value == nil {
		return nil
	}
	w, err := signer.ParseWatermark(value)
	if err != nil {
		return fmt.Errorf("%s in Consul: %w: inspect it with valguard state show", el.WatermarkKey(), err)
	}
	if w.ChainID != "" && w.ChainID != chainID {
		return fmt.Errorf("%s in Consul is of chain %q, but the node's genesis is of %q: check --validator-key and --node-home (one validator key, one chain)", el.WatermarkKey(), w.ChainID, chainID)
	}
	return nil
}

// restoreBound is the chain height a signer-mode leader raises a missing
// or lowered watermark above: the higher of its node's height and the best
// height a replica reports, plus maxLag (how far behind a synced standby
// may lead); 0 while neither knows a block (a chain at its launch).
func restoreBound(own, best, maxLag int64) int64 {
	h := max(own, best)
	if h == 0 {
		return 0
	}
	return h + max(maxLag, 0)
}

// checkRecordWritable refuses --signers any at start when Consul would
// refuse the sign record's check-and-set (an ACL without kv write on the
// validator's keys, a Consul without transactions) or a replica of
// another policy holds the lock, rather than at the first signature.
func checkRecordWritable(ctx context.Context, el *election.Election, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := el.CheckRecordWritable(ctx); err != nil {
		return fmt.Errorf("--signers any needs check-and-set writes of %s in Consul: %w; "+
			"give valguard's token key write on valguard/<validator>/ (docs/operations.md), and run one policy per validator", el.WatermarkKey(), err)
	}
	return nil
}
