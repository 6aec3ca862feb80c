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

	"github.com/valguard/valguard/internal/setting"
	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// DefaultMaxBlockAge is how old the latest block may be for a node to count
// as synced.
const DefaultMaxBlockAge = time.Minute

// Config configures the adapter.
type Config struct {
	Home   string // the node home (with config/config.toml)
	Binary string // the node binary: cometbft, or a Cosmos SDK daemon
	// Args are extra arguments after "start --home HOME". Arguments that
	// override what valguard manages (the home, the key and sign-state
	// files, priv_validator_laddr, double_sign_check_height, the RPC and
	// P2P listen addresses), in any spelling, are refused by New.
	Args         []string
	ValidatorKey string // the validator's priv_validator_key.json, outside Home
	// Environ is the node's environment, as os.Environ returns it; nil
	// means os.Environ() at New. New refuses one that sets, under a prefix
	// the node reads (CMT, TM, the binary's upper-cased base name, DAEMON_NAME),
	// a setting valguard manages; Command passes exactly this checked
	// environment to the node.
	Environ []string
	// MaxBlockAge: a node whose latest block is older is not synced.
	// Negative disables the check (restarting a halted chain).
	MaxBlockAge time.Duration
	Log         zerolog.Logger
	// SignMode is SignRestart (the zero value means it) or SignSigner.
	SignMode SignMode
	// SignerAddr is the node's priv_validator_laddr in the signer mode,
	// which valguard dials: unix:///absolute/path (at most 107 bytes of
	// path; default unix://<Home>/valguard/privval.sock) or
	// tcp://host:port (CometBFT's SecretConnection, with a listener key
	// the node makes afresh at every start: the signer cannot
	// authenticate the node). It must be empty in the restart mode.
	SignerAddr string
}

// Node is the CometBFT adapter; it implements supervisor.Node.
type Node struct {
	cfg  Config
	p    paths
	key  Key
	env  []string // the node's environment, checked in New
	rpc  *rpchttp.HTTP
	seen atomic.Int64 // highest committed height this replica observed

	mu        sync.Mutex
	role      supervisor.Role // role last prepared
	prepared  bool            // a role was prepared
	voterAddr string          // address of the voter key, once prepared

	genesisOnce sync.Once // reads genesisAt, genesisErr (genesisTime)
	genesisAt   time.Time // the genesis file's genesis_time
	genesisErr  error     // why genesisAt could not be read
}

var _ supervisor.Node = (*Node)(nil)

// New checks the node home, the node's arguments and environment, the
// validator key, the sign mode and signer address, and that nothing
// listens yet on the node's RPC, P2P and (signer mode) signer addresses,
// and returns the adapter. It changes nothing on disk.
func New(cfg Config) (*Node, error) {
	if cfg.Home == "" {
		return nil, setting.Errorf("Home", "the node home is required")
	}
	home, err := filepath.Abs(cfg.Home)
	if err != nil {
		return nil, err
	}
	cfg.Home = home
	if err := cfg.setSignMode(); err != nil {
		return nil, err
	}
	if cfg.MaxBlockAge == 0 {
		cfg.MaxBlockAge = DefaultMaxBlockAge
	}
	p, err := readConfig(home)
	if err != nil {
		return nil, err
	}
	if cfg.ValidatorKey == "" {
		return nil, setting.Errorf("ValidatorKey", "no validator key: give one, or provide $CREDENTIALS_DIRECTORY/priv_validator_key.json")
	}
	if cfg.ValidatorKey, err = filepath.Abs(cfg.ValidatorKey); err != nil {
		return nil, err
	}
	if cfg.ValidatorKey == p.key {
		return nil, setting.Errorf("ValidatorKey", "%s is the node's own key path: move the validator key out of the node home and give its new place", cfg.ValidatorKey)
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
		return nil, setting.Errorf("Binary", "node binary %q: %w: give the daemon's path or name", cfg.Binary, err)
	}
	cfg.Binary = bin
	if err := checkArgs(cfg.Args); err != nil {
		return nil, err
	}
	env := environ(cfg.Environ)
	if err := checkEnv(cfg.Binary, env); err != nil {
		return nil, err
	}
	rpc, err := rpchttp.New(p.rpc, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("rpc client for %s: %w", p.rpc, err)
	}
	n := &Node{cfg: cfg, p: p, key: key, env: env, rpc: rpc}
	if err := n.checkLaddr(p); err != nil {
		return nil, err
	}
	if err := n.checkNoListener(); err != nil {
		return nil, err
	}
	if _, err := n.checkSignerListener(); err != nil {
		return nil, err
	}
	if n.signerMode() {
		if network, _, _ := parseSignerAddr(cfg.SignerAddr); network == "tcp" {
			cfg.Log.Warn().Str("signer_addr", cfg.SignerAddr).
				Msg("tcp signer address: the node's SecretConnection key is new at every start, so valguard cannot authenticate the node; prefer a unix socket")
		}
	}
	return n, nil
}

// Address is the validator's address (upper-case hex).
func (n *Node) Address() string { return n.key.Address }

// PublicKey is the validator's public key, "<type>:<base64>" with the type
// as CometBFT's JSON names it: "tendermint/PubKeyEd25519:<base64>".
func (n *Node) PublicKey() string { return n.key.PublicKey }

// LockID identifies the validator for its lock: the CometBFT address
// (upper-case hex), which CometBFT derives from the public key (the first
// 20 bytes of its SHA-256 for ed25519). Two replicas of one key always
// have the same LockID; two keys never do.
func (n *Node) LockID() string { return n.key.Address }

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
//
// Voter: if the key path holds the validator key, it is unlinked before
// anything else (before anything that can fail); then config.toml is
// re-checked, the validator's last sign state is kept, and the voter key
// and its zero state are put in place.
//
// Validator: config.toml is re-checked, the last sign state kept, the
// sign state raised (S8) and written, and the validator key linked last.
//
// A config.toml that changed since New (key or state path, genesis
// file, RPC or P2P address, a remote signer now set, another config file
// shadowing it) is refused: valguard must be restarted to take the new
// values. The refusal changes nothing on disk, except that a linked
// validator key was unlinked (voter).
//
// Signer mode: the voter role is the only one (the validator role is
// ErrSignerMode, the node never gets the key). The voter key goes in
// place as above, since CometBFT loads a key file even when it signs
// through priv_validator_laddr. Before anything changes, priv_validator_laddr
// in config.toml must be empty or the signer address, and the signer
// address must be free: a socket on which something accepts, or
// anything at the socket path that is not a socket, is refused. A stale
// socket file (nothing accepts on it) is removed last, when nothing was
// refused.
func (n *Node) Prepare(_ context.Context, role supervisor.Role, watermark []byte) error {
	if role == supervisor.RoleVoter {
		return n.prepareVoter()
	}
	if n.signerMode() {
		return fmt.Errorf("prepare the validator role: %w", ErrSignerMode)
	}
	if err := n.checkConfig(); err != nil {
		return err
	}
	last, err := n.saveValidatorState()
	if err != nil {
		return err
	}
	return n.prepareValidator(last, watermark)
}

// checkConfig re-reads config.toml: the paths and addresses valguard
// manages must be the ones New read, or a key could be loaded from a
// place valguard no longer cleans.
func (n *Node) checkConfig() error {
	p, err := readConfig(n.cfg.Home)
	if err == nil {
		err = n.checkLaddr(p)
	}
	if err != nil {
		return fmt.Errorf("config.toml changed under valguard: %w; restart valguard after a config change", err)
	}
	// priv_validator_laddr is checked above, as New checked it: empty or
	// the signer address, whichever it is now.
	p.laddr = n.p.laddr
	if p != n.p {
		return fmt.Errorf("%s changed under valguard (priv_validator_key_file, priv_validator_state_file, priv_validator_laddr, genesis_file, [rpc] laddr or [p2p] laddr): restart valguard after a config change to take the new values", n.p.config)
	}
	return nil
}

// unlinkValidatorKey removes the validator key from the key path when it
// is there (a link to it, or anything that resolves to a file holding
// it); when the key path cannot be read, it cleans it anyway. A validator
// key as a regular file is keylink.ErrValidatorKeyFile, unchanged.
func (n *Node) unlinkValidatorKey() error {
	if ok, err := holds(n.p.key, n.key.Address); err == nil && !ok {
		return nil
	}
	out, err := keylink.Clean(n.spec())
	if err != nil {
		return err
	}
	n.logOutcome(out)
	return nil
}

func (n *Node) prepareVoter() error {
	// S2, S7: the key goes first; nothing below may leave it linked.
	if err := n.unlinkValidatorKey(); err != nil {
		return err
	}
	if err := n.checkConfig(); err != nil {
		return err
	}
	if _, err := n.checkSignerListener(); err != nil {
		return err
	}
	// Whatever the node last signed with the validator key is kept before
	// the voter's zero state replaces it.
	if _, err := n.saveValidatorState(); err != nil {
		return fmt.Errorf("keep the validator's last sign state from %s in %s (the validator key is unlinked): %w", n.p.state, n.p.vstate, err)
	}
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
	data, err := os.ReadFile(n.p.voterKey)
	if err != nil {
		return fmt.Errorf("read the voter key: %w", err)
	}
	voterAddr, err := keyAddress(data)
	if err != nil {
		return fmt.Errorf("the voter key %s: %w", n.p.voterKey, err)
	}
	// The voter key never signs: its state is the zero state.
	if err := writeState(n.p.state, SignState{}); err != nil {
		return fmt.Errorf("write voter sign state %s: %w", n.p.state, err)
	}
	if err := n.prepareSignerSocket(); err != nil {
		return err
	}
	n.mu.Lock()
	n.role, n.prepared, n.voterAddr = supervisor.RoleVoter, true, voterAddr
	n.mu.Unlock()
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
	n.role, n.prepared = r, true
	n.mu.Unlock()
}

// Command implements supervisor.Node. It refuses to build a command while
// something already listens on the node's RPC or P2P address (a leftover
// node would be read as this one). The node gets the environment checked
// in New, nothing else.
//
// Every command has --consensus.double_sign_check_height 0. Signer mode:
// the voter role is the only one (the validator role is ErrSignerMode);
// the command also has --priv_validator_laddr with the signer address,
// and is refused while something accepts on that address or something
// other than a socket is at its path (Prepare removed a stale socket).
// Both replicas' nodes report the validator's key there, so CometBFT's
// double-sign check would find its own recent signatures at every start
// and refuse it.
func (n *Node) Command(role supervisor.Role) (*exec.Cmd, error) {
	if n.signerMode() && role != supervisor.RoleVoter {
		return nil, fmt.Errorf("a %s node command: %w", role, ErrSignerMode)
	}
	if err := n.checkNoListener(); err != nil {
		return nil, err
	}
	args := []string{"start", "--home", n.cfg.Home, "--consensus.double_sign_check_height", "0"}
	if n.signerMode() {
		if _, err := n.checkSignerListener(); err != nil {
			return nil, err
		}
		args = append(args, "--priv_validator_laddr", n.cfg.SignerAddr)
	}
	args = append(args, n.cfg.Args...)
	cmd := exec.Command(n.cfg.Binary, args...)
	cmd.Env = append([]string{}, n.env...)
	return cmd, nil
}

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
