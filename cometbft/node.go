package cometbft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// DefaultMaxBlockAge is how old the latest block may be for a node to count
// as synced.
const DefaultMaxBlockAge = time.Minute

// Config configures the adapter.
type Config struct {
	Home         string   // the node home (with config/config.toml)
	Binary       string   // the node binary: cometbft, or a Cosmos SDK daemon
	Args         []string // extra arguments after "start --home HOME"
	ValidatorKey string   // the validator's priv_validator_key.json, outside Home
	// MaxBlockAge: a node whose latest block is older is not synced.
	// Negative disables the check (restarting a halted chain).
	MaxBlockAge time.Duration
	Log         zerolog.Logger
}

// Node is the CometBFT adapter; it implements supervisor.Node.
type Node struct {
	cfg  Config
	p    paths
	key  Key
	rpc  *rpchttp.HTTP
	seen atomic.Int64 // highest committed height this replica observed

	mu   sync.Mutex
	role supervisor.Role // role last prepared
}

var _ supervisor.Node = (*Node)(nil)

// New checks the node home and the validator key and returns the adapter.
func New(cfg Config) (*Node, error) {
	if cfg.Home == "" {
		return nil, errors.New("--node-home is required")
	}
	home, err := filepath.Abs(cfg.Home)
	if err != nil {
		return nil, err
	}
	cfg.Home = home
	if cfg.MaxBlockAge == 0 {
		cfg.MaxBlockAge = DefaultMaxBlockAge
	}
	p, err := readConfig(home)
	if err != nil {
		return nil, err
	}
	if cfg.ValidatorKey == "" {
		return nil, errors.New("no validator key: set --validator-key or provide $CREDENTIALS_DIRECTORY/priv_validator_key.json")
	}
	if cfg.ValidatorKey, err = filepath.Abs(cfg.ValidatorKey); err != nil {
		return nil, err
	}
	if cfg.ValidatorKey == p.key {
		return nil, fmt.Errorf("--validator-key %s is the node's own key path: move the validator key out of the node home and point --validator-key at its new place", cfg.ValidatorKey)
	}
	key, err := LoadKey(cfg.ValidatorKey)
	if err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		cfg.Binary = "cometbft"
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("node binary %q: %w: set --node-binary", cfg.Binary, err)
	}
	cfg.Binary = bin
	rpc, err := rpchttp.New(p.rpc, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("rpc client for %s: %w", p.rpc, err)
	}
	return &Node{cfg: cfg, p: p, key: key, rpc: rpc}, nil
}

// Address is the validator's address (upper-case hex).
func (n *Node) Address() string { return n.key.Address }

// RPC is the URL of the node's RPC.
func (n *Node) RPC() string { return n.p.rpc }

// spec is the key link, with what we own and what must never be a file.
func (n *Node) spec() keylink.Spec {
	return keylink.Spec{
		Link:      n.p.key,
		Owned:     []string{n.p.voterKey, n.cfg.ValidatorKey},
		Protected: func(path string) (bool, error) { return holds(path, n.key.Address) },
	}
}

// Prepare implements supervisor.Node.
func (n *Node) Prepare(_ context.Context, role supervisor.Role, watermark []byte) error {
	// Whatever the node last signed with the validator key is kept first.
	last, err := n.saveValidatorState()
	if err != nil {
		return err
	}
	if role == supervisor.RoleVoter {
		return n.prepareVoter()
	}
	return n.prepareValidator(last, watermark)
}

func (n *Node) prepareVoter() error {
	out, err := keylink.Clean(n.spec())
	if err != nil {
		return err
	}
	n.logOutcome(out)
	if err := ensureVoterKey(n.p); err != nil {
		return fmt.Errorf("create the voter key %s: %w", n.p.voterKey, err)
	}
	out, err = keylink.Link(n.spec(), n.p.voterKey)
	if err != nil {
		return err
	}
	n.logOutcome(out)
	// The voter key never signs: its state is the zero state.
	if err := writeState(n.p.state, SignState{}); err != nil {
		return fmt.Errorf("write voter sign state %s: %w", n.p.state, err)
	}
	n.setRole(supervisor.RoleVoter)
	return nil
}

func (n *Node) prepareValidator(last SignState, watermark []byte) error {
	var wm SignState
	if len(watermark) > 0 {
		if err := json.Unmarshal(watermark, &wm); err != nil {
			return fmt.Errorf("the published watermark %q is unreadable: %w", watermark, err)
		}
	}
	seen := n.seen.Load()
	if seen == 0 {
		return errors.New("no committed height observed yet: refusing to start the validator without one (S8)")
	}
	raised := maxState(last, wm, blockHeight(seen+1))
	// Persist before acting: the raised state is on disk before the key is.
	if err := writeState(n.p.vstate, raised); err != nil {
		return fmt.Errorf("write %s: %w", n.p.vstate, err)
	}
	if err := writeState(n.p.state, raised); err != nil {
		return fmt.Errorf("write %s: %w", n.p.state, err)
	}
	n.cfg.Log.Info().Int64("height", raised.Height).Int32("round", raised.Round).Int8("step", raised.Step).
		Int64("observed", seen).Int64("watermark", wm.Height).Int64("last", last.Height).Msg("sign state raised")
	out, err := keylink.Link(n.spec(), n.cfg.ValidatorKey)
	if err != nil {
		return err
	}
	n.logOutcome(out)
	n.setRole(supervisor.RoleValidator)
	return nil
}

// saveValidatorState merges the sign-state file into the validator state we
// keep, and returns the result. A voter's state is zero, so merging it
// changes nothing.
func (n *Node) saveValidatorState() (SignState, error) {
	if err := os.MkdirAll(n.p.own, 0o700); err != nil {
		return SignState{}, err
	}
	kept, err := readState(n.p.vstate)
	if err != nil {
		return kept, err
	}
	cur, err := readState(n.p.state)
	if err != nil {
		// A corrupt state file is not trusted, nor lost: kept aside.
		aside := n.p.state + ".valguard-unreadable"
		n.cfg.Log.Warn().Err(err).Str("moved_to", aside).Msg("unreadable sign state moved aside")
		if rerr := os.Rename(n.p.state, aside); rerr != nil {
			return kept, fmt.Errorf("%w (and it could not be moved aside: %v)", err, rerr)
		}
		return kept, nil
	}
	if kept.Less(cur) {
		if err := writeState(n.p.vstate, cur); err != nil {
			return kept, err
		}
		kept = cur
	}
	return kept, nil
}

func (n *Node) logOutcome(o keylink.Outcome) {
	if o.MovedAside != "" {
		n.cfg.Log.Warn().Str("path", n.p.key).Str("moved_to", o.MovedAside).Msg("file where the key link goes moved aside")
	}
}

func (n *Node) setRole(r supervisor.Role) {
	n.mu.Lock()
	n.role = r
	n.mu.Unlock()
}

// Command implements supervisor.Node.
func (n *Node) Command(supervisor.Role) (*exec.Cmd, error) {
	args := append([]string{"start", "--home", n.cfg.Home, "--consensus.double_sign_check_height", "0"}, n.cfg.Args...)
	return exec.Command(n.cfg.Binary, args...), nil
}

// Status implements supervisor.Node.
func (n *Node) Status(ctx context.Context) (supervisor.Status, error) {
	res, err := n.rpc.Status(ctx)
	if err != nil {
		return supervisor.Status{}, err
	}
	si := res.SyncInfo
	st := supervisor.Status{Height: si.LatestBlockHeight, CatchingUp: si.CatchingUp, BlockTime: si.LatestBlockTime}
	for {
		seen := n.seen.Load()
		if st.Height <= seen || n.seen.CompareAndSwap(seen, st.Height) {
			break
		}
	}
	fresh := n.cfg.MaxBlockAge < 0 || time.Since(si.LatestBlockTime) <= n.cfg.MaxBlockAge
	st.Synced = !si.CatchingUp && st.Height > 0 && fresh
	return st, nil
}

// Watermark implements supervisor.Node: the validator's sign state, from the
// file the node writes before every signature.
func (n *Node) Watermark() ([]byte, error) {
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
