package neard

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/setting"
	"github.com/valguard/valguard/supervisor"
)

// Defaults for Config fields left zero.
const (
	DefaultValidatorAddr    = "0.0.0.0:24567"
	DefaultVoterAddr        = "0.0.0.0:24568"
	DefaultMaxBlockAge      = time.Minute
	DefaultPromotionTimeout = 10 * time.Second

	// statusTimeout bounds one /status request whatever the caller's ctx.
	statusTimeout = 5 * time.Second
)

// Promotion says how a voter becomes the validator.
type Promotion string

const (
	// PromotionHot links the key into the running neard and sends SIGHUP
	// (nearcore ≥ 2.1), then waits for /status to report the key loaded.
	PromotionHot Promotion = "hot"
	// PromotionRestart stops neard, links the key and the validator node
	// key, switches the network address and starts neard (kuutamod's way).
	PromotionRestart Promotion = "restart"
	// PromotionAuto is hot when the running neard reports version ≥ 2.1,
	// restart otherwise.
	PromotionAuto Promotion = "auto"
)

// ParsePromotion checks a --promotion value.
func ParsePromotion(s string) (Promotion, error) {
	switch p := Promotion(s); p {
	case PromotionHot, PromotionRestart, PromotionAuto:
		return p, nil
	case "":
		return PromotionAuto, nil
	}
	return "", setting.Errorf("Promotion", "promotion %q: want hot, restart or auto", s)
}

// Config configures the adapter.
type Config struct {
	Home      string   // the neard home (with config.json)
	Binary    string   // the neard binary (default "neard" in PATH)
	Args      []string // extra arguments after "run"
	BootNodes string   // passed as `run --boot-nodes` when set

	ValidatorKey     string // validator_key.json, outside Home
	ValidatorNodeKey string // the validator's node key; needed unless Promotion is hot
	VoterNodeKey     string // the standby's node key; default: created in <home>/valguard

	ValidatorAddr string // network.addr of the validator (default 0.0.0.0:24567)
	VoterAddr     string // network.addr of the voter (default 0.0.0.0:24568)
	// PublicAddresses ("ip" or "ip:port" each; the validator's port is
	// added when missing) make network.public_addrs
	// "<validator node key>@ip:port" for the validator and empty for the
	// voter, as kuutamod does. None leaves public_addrs to the operator.
	PublicAddresses []string

	Promotion        Promotion
	PromotionTimeout time.Duration // bound on a hot promotion's confirmation
	// MaxBlockAge: a node whose latest block is older is not synced.
	// Negative disables the check (restarting a halted chain).
	MaxBlockAge time.Duration
	Log         zerolog.Logger
}

// Node is the NEAR adapter; it implements supervisor.Node,
// supervisor.HotPromoter and supervisor.HeadFence.
type Node struct {
	cfg    Config
	p      paths
	key    Key
	vnode  Key // validator node key (zero when not configured)
	public []string
	client *http.Client
	lockID string
	// heights is the highest head seen in the validator role (the
	// watermark); it has its own lock.
	heights *heights

	mu   sync.Mutex
	role supervisor.Role // role last prepared
}

var (
	_ supervisor.Node        = (*Node)(nil)
	_ supervisor.HotPromoter = (*Node)(nil)
	_ supervisor.HeadFence   = (*Node)(nil)
)

// New checks the node home, the keys and the addresses, reads the
// validator height this replica saved (<home>/valguard/watermark.json) and
// returns the adapter. Nothing in the home is changed yet.
func New(cfg Config) (*Node, error) {
	if cfg.Home == "" {
		return nil, setting.Errorf("Home", "the node home is required")
	}
	var err error
	if cfg.Home, err = filepath.Abs(cfg.Home); err != nil {
		return nil, err
	}
	p, err := readConfig(cfg.Home)
	if err != nil {
		return nil, err
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, p: p, client: &http.Client{Timeout: statusTimeout}}
	if err := n.loadKeys(); err != nil {
		return nil, err
	}
	if n.lockID, err = lockID(n.key.PublicKey); err != nil {
		return nil, fmt.Errorf("validator key %s: %w", n.key.Path, err)
	}
	if n.heights, err = loadHeights(filepath.Join(p.own, watermarkFile), n.key.PublicKey, cfg.Log); err != nil {
		return nil, err
	}
	for _, a := range cfg.PublicAddresses {
		pa, err := publicAddr(a, cfg.ValidatorAddr)
		if err != nil {
			return nil, err
		}
		n.public = append(n.public, n.vnode.PublicKey+"@"+pa)
	}
	if len(n.public) > 0 && cfg.Promotion != PromotionRestart {
		cfg.Log.Warn().Str("promotion", string(cfg.Promotion)).Msg("--public-address and --validator-network-addr apply to restart promotions only: a hot promotion keeps the voter's node key, address and public_addrs")
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, setting.Errorf("Binary", "neard binary %q: %w: give the path of neard", cfg.Binary, err)
	}
	n.cfg.Binary = bin
	return n, nil
}

func (c *Config) setDefaults() error {
	if c.Binary == "" {
		c.Binary = "neard"
	}
	if c.ValidatorAddr == "" {
		c.ValidatorAddr = DefaultValidatorAddr
	}
	if c.VoterAddr == "" {
		c.VoterAddr = DefaultVoterAddr
	}
	if c.MaxBlockAge == 0 {
		c.MaxBlockAge = DefaultMaxBlockAge
	}
	if c.PromotionTimeout == 0 {
		c.PromotionTimeout = DefaultPromotionTimeout
	}
	if c.PromotionTimeout < 0 {
		return setting.Errorf("PromotionTimeout", "the promotion timeout must be positive")
	}
	if c.Promotion == "" {
		c.Promotion = PromotionAuto
	}
	if _, err := ParsePromotion(string(c.Promotion)); err != nil {
		return err
	}
	for field, a := range map[string]string{"ValidatorAddr": c.ValidatorAddr, "VoterAddr": c.VoterAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return setting.Errorf(field, "network address %q: want host:port, e.g. 0.0.0.0:24567", a)
		}
	}
	if c.ValidatorAddr == c.VoterAddr {
		return setting.Errorf("VoterAddr", "the validator and the voter network addresses are both %s: the voter needs its own port (default %s) so that peers never mistake the standby for the validator", c.VoterAddr, DefaultVoterAddr)
	}
	return nil
}

// loadKeys checks the validator key and the two node keys.
func (n *Node) loadKeys() error {
	c := &n.cfg
	if c.ValidatorKey == "" {
		return setting.Errorf("ValidatorKey", "no validator key: give one, or provide $CREDENTIALS_DIRECTORY/validator_key.json")
	}
	key, err := LoadKey(c.ValidatorKey)
	if err != nil {
		return err
	}
	if key.Path == n.p.validatorKey {
		return setting.Errorf("ValidatorKey", "%s is where neard reads its validator key (validator_key_file), which valguard links only while holding the lock: move the key out of the node home and give its new place", key.Path)
	}
	n.key, c.ValidatorKey = key, key.Path
	if c.ValidatorNodeKey == "" && c.Promotion != PromotionHot {
		return setting.Errorf("ValidatorNodeKey", "no validator node key: give one (or provide $CREDENTIALS_DIRECTORY/validator_node_key.json); the %s promotion restarts neard with the validator's node key", c.Promotion)
	}
	if c.ValidatorNodeKey != "" {
		if n.vnode, err = LoadNodeKey(c.ValidatorNodeKey); err != nil {
			return setting.Errorf("ValidatorNodeKey", "%w", err)
		}
		c.ValidatorNodeKey = n.vnode.Path
	}
	if n.vnode.Path == n.p.nodeKey {
		return setting.Errorf("ValidatorNodeKey", "%s is where neard reads its node key (node_key_file), which valguard links per role: move it out of the node home and give its new place", n.vnode.Path)
	}
	if len(c.PublicAddresses) > 0 && n.vnode.PublicKey == "" {
		return setting.Errorf("PublicAddresses", "a public address needs the validator node key: it is announced with the validator's node key")
	}
	if c.VoterNodeKey == "" {
		c.VoterNodeKey = filepath.Join(n.p.own, "voter_node_key.json")
		return nil // created on the first voter start
	}
	voter, err := LoadNodeKey(c.VoterNodeKey)
	if err != nil {
		return setting.Errorf("VoterNodeKey", "%w", err)
	}
	c.VoterNodeKey = voter.Path
	if n.vnode.Path != "" {
		if err := distinct(voter, n.vnode); err != nil {
			return err
		}
	}
	if voter.Path == n.p.nodeKey {
		return setting.Errorf("VoterNodeKey", "%s is where neard reads its node key (node_key_file), which valguard links per role: move it out of the node home and give its new place", voter.Path)
	}
	return nil
}

// distinct refuses one key for both roles: the standby and the validator
// would share a network identity.
func distinct(voter, validator Key) error {
	same := voter.Path == validator.Path
	if a, err := os.Stat(voter.Path); err == nil {
		if b, err := os.Stat(validator.Path); err == nil && os.SameFile(a, b) {
			same = true
		}
	}
	if same || voter.PublicKey == validator.PublicKey {
		return setting.Errorf("VoterNodeKey", "%s and the validator node key %s are the same key: the standby needs a node key of its own (give none and valguard creates one, or generate one with `neard init` in a scratch home)", voter.Path, validator.Path)
	}
	return nil
}

// publicAddr is addr with the validator's port added when it has none.
func publicAddr(addr, validatorAddr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if net.ParseIP(host) == nil {
			return "", setting.Errorf("PublicAddresses", "public address %q: want an IP address, or IP:port", addr)
		}
		return addr, nil
	}
	if net.ParseIP(addr) == nil {
		return "", setting.Errorf("PublicAddresses", "public address %q: want an IP address, or IP:port", addr)
	}
	_, port, _ := net.SplitHostPort(validatorAddr)
	return net.JoinHostPort(addr, port), nil
}

// AccountID is the validator's account, from its key.
func (n *Node) AccountID() string { return n.key.AccountID }

// PublicKey is the validator key's public_key as the key file writes it,
// "ed25519:<base58>".
func (n *Node) PublicKey() string { return n.key.PublicKey }

// LockID identifies the validator key for the election: the upper-case hex
// of the first 20 bytes of SHA-256 of the raw 32-byte ed25519 public key
// (the way CometBFT derives a validator address), for a lock key
// valguard/<LockID>/leader. Every replica given this key computes the same
// id. It names the key, not the account: NEAR
// account ids are not derived from keys, and an account may have several
// keys, so two keys of one account get two locks rather than sharing one
// by accident. Two replicas with different keys of one account are
// therefore not fenced against each other; only the key the account stakes
// with produces blocks the network accepts.
func (n *Node) LockID() string { return n.lockID }

// StatusURL is where the adapter reads neard's status.
func (n *Node) StatusURL() string { return n.p.status }

func (n *Node) setRole(r supervisor.Role) {
	n.mu.Lock()
	n.role = r
	n.mu.Unlock()
}

func (n *Node) currentRole() supervisor.Role {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.role
}

// Command implements supervisor.Node: `neard --home H run [--boot-nodes B] [args]`.
func (n *Node) Command(supervisor.Role) (*exec.Cmd, error) {
	args := []string{"--home", n.cfg.Home, "run"}
	if n.cfg.BootNodes != "" {
		args = append(args, "--boot-nodes", n.cfg.BootNodes)
	}
	return exec.Command(n.cfg.Binary, append(args, n.cfg.Args...)...), nil
}
