package cometbft

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/setting"
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
	cfg Config
	p   paths
	key Key
	env []string // the node's environment, checked in New
	// cosmovisor: the binary is cosmovisor, which runs the daemon
	// (cosmovisor.go).
	cosmovisor bool
	rpc        *rpchttp.HTTP
	seen       atomic.Int64 // highest committed height this replica observed
	// floor is the chain-floor scan of the validator on the node, with
	// its cache (LastSigned); built in New over rpc, it keeps that client.
	floor *floorScan

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
	var signerNetwork string // "unix" or "tcp" in the signer mode
	if cfg.SignMode == SignSigner {
		signerNetwork, _, _ = parseSignerAddr(cfg.SignerAddr)
	}
	cosmovisor := isCosmovisor(cfg.Binary)
	if cosmovisor {
		if env, err = cosmovisorEnv(home, env, signerNetwork == "unix"); err != nil {
			return nil, err
		}
	}
	rpc, err := rpchttp.New(p.rpc, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("rpc client for %s: %w", p.rpc, err)
	}
	n := &Node{cfg: cfg, p: p, key: key, env: env, cosmovisor: cosmovisor, rpc: rpc, floor: newFloorScan(rpc, key.Address)}
	if err := n.checkLaddr(p); err != nil {
		return nil, err
	}
	if err := n.checkNoListener(); err != nil {
		return nil, err
	}
	if _, err := n.checkSignerListener(); err != nil {
		return nil, err
	}
	if signerNetwork == "tcp" {
		cfg.Log.Warn().Str("signer_addr", cfg.SignerAddr).
			Msg("tcp signer address: the node's SecretConnection key is new at every start, so valguard cannot authenticate the node; prefer a unix socket")
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
// and refuse it. With cosmovisor as the binary the command is "cosmovisor
// run start ...", with DAEMON_HOME (and DAEMON_SHUTDOWN_GRACE) set when
// the environment did not.
func (n *Node) Command(role supervisor.Role) (*exec.Cmd, error) {
	if n.signerMode() && role != supervisor.RoleVoter {
		return nil, fmt.Errorf("a %s node command: %w", role, ErrSignerMode)
	}
	if err := n.checkNoListener(); err != nil {
		return nil, err
	}
	args := []string{"start", "--home", n.cfg.Home, "--consensus.double_sign_check_height", "0"}
	if n.cosmovisor {
		args = append([]string{"run"}, args...)
	}
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
