package cometbft

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/supervisor"
)

// SignMode is how the validator key reaches the node (chain.SignMode).
type SignMode = chain.SignMode

const (
	// SignRestart (the default; the zero value means it): the key file is
	// linked into the node home while this replica leads, and the node is
	// restarted as the validator.
	SignRestart = chain.SignRestart
	// SignSigner: valguard holds the key in memory and is the node's
	// remote signer on priv_validator_laddr. The node runs all the time
	// in the voter role, with this replica's voter key file in the home:
	// CometBFT v0.38.26 still loads a FilePV from priv_validator_key_file
	// (node/setup.go DefaultNewNode: privval.LoadOrGenFilePV, which
	// generates and writes a key when the file is missing) before
	// node/node.go NewNodeWithContext replaces it with the socket client
	// when priv_validator_laddr is set. So a key file must be there, and
	// it is never the validator's (S1′).
	SignSigner = chain.SignSigner
)

// ErrSignerMode is a request the signer mode never serves: the
// validator role (the node runs as a voter all the time and valguard
// signs for it; the key is never linked into the node home).
var ErrSignerMode = errors.New("the signer mode never links the validator key into the node home (S1′): the node runs in the voter role and valguard signs for it")

// ErrSignerAddr is an unusable signer address.
var ErrSignerAddr = errors.New("unusable signer address")

// maxSocketPath is the longest unix socket path sun_path holds on Linux
// (108 bytes with the terminating NUL).
const maxSocketPath = 107

// parseSignerAddr splits a signer address, unix:///absolute/path or
// tcp://host:port, into what net.Dial takes. It wraps ErrSignerAddr.
func parseSignerAddr(addr string) (network, address string, err error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return "", "", fmt.Errorf("%w %q: no scheme: write unix:///absolute/path.sock or tcp://host:port", ErrSignerAddr, addr)
	}
	switch scheme {
	case "unix":
		switch {
		case rest == "":
			return "", "", fmt.Errorf("%w %q: no socket path: write unix:///absolute/path.sock", ErrSignerAddr, addr)
		case !filepath.IsAbs(rest):
			return "", "", fmt.Errorf("%w %q: the socket path %q is relative: write an absolute path after unix:// (three slashes in all)", ErrSignerAddr, addr, rest)
		case strings.HasSuffix(rest, "/"):
			return "", "", fmt.Errorf("%w %q: the socket path ends in /: name a file, not a directory", ErrSignerAddr, addr)
		case strings.ContainsRune(rest, 0):
			return "", "", fmt.Errorf("%w %q: the socket path holds a NUL byte", ErrSignerAddr, addr)
		case len(rest) > maxSocketPath:
			return "", "", fmt.Errorf("%w %q: the socket path is %d bytes, and a unix socket path holds at most %d: choose a shorter path", ErrSignerAddr, addr, len(rest), maxSocketPath)
		}
		return "unix", rest, nil
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("%w %q: %v: write tcp://host:port", ErrSignerAddr, addr, err)
		}
		if host == "" {
			return "", "", fmt.Errorf("%w %q: no host (valguard dials the node there): write tcp://host:port, e.g. tcp://127.0.0.1:26659", ErrSignerAddr, addr)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return "", "", fmt.Errorf("%w %q: the port %q is not a number in 1..65535", ErrSignerAddr, addr, port)
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("%w %q: scheme %q: only unix:// and tcp:// are served", ErrSignerAddr, addr, scheme)
}

// sameSignerAddr reports whether two signer addresses name the same
// socket (unix paths compared after filepath.Clean).
func sameSignerAddr(a, b string) bool {
	na, aa, errA := parseSignerAddr(a)
	nb, ab, errB := parseSignerAddr(b)
	if errA != nil || errB != nil {
		return a == b
	}
	if na == "unix" {
		aa, ab = filepath.Clean(aa), filepath.Clean(ab)
	}
	return na == nb && aa == ab
}

// setSignMode checks the sign mode and the signer address of cfg, whose
// Home is absolute, and fills in the default address.
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
			return fmt.Errorf("signer address %q given in the %s sign mode: it is a setting of the %s sign mode only; remove it or choose that mode", cfg.SignerAddr, SignRestart, SignSigner)
		}
		return nil
	}
	if cfg.SignerAddr == "" {
		def := "unix://" + filepath.Join(cfg.Home, "valguard", "privval.sock")
		if _, _, err := parseSignerAddr(def); err != nil {
			return fmt.Errorf("the default signer address for the node home %s: %w, e.g. unix:///run/valguard/privval.sock, or move the node home to a shorter path", cfg.Home, err)
		}
		cfg.SignerAddr = def
	}
	if _, _, err := parseSignerAddr(cfg.SignerAddr); err != nil {
		return err
	}
	return nil
}

// SignerAddr is the node's priv_validator_laddr in the signer mode, which
// valguard dials: unix:///path or tcp://host:port. It is "" in the
// restart mode.
func (n *Node) SignerAddr() string { return n.cfg.SignerAddr }

func (n *Node) signerMode() bool { return n.cfg.SignMode == SignSigner }

// checkLaddr checks config.toml's priv_validator_laddr: empty in the
// restart mode (the node would take its key from a signer valguard does
// not control, not from the key file valguard manages), empty or
// valguard's own address in the signer mode.
func (n *Node) checkLaddr(p paths) error {
	switch {
	case p.laddr == "":
		return nil
	case n.signerMode() && sameSignerAddr(p.laddr, n.cfg.SignerAddr):
		return nil
	case n.signerMode():
		return fmt.Errorf("%s sets priv_validator_laddr to %q; valguard serves the signer at %s: remove the setting (valguard passes its own address to the node)", p.config, p.laddr, n.cfg.SignerAddr)
	}
	return fmt.Errorf("%s sets priv_validator_laddr = %q (a remote signer): in the %s sign mode valguard manages a file key; set it to \"\", or use the %s sign mode", p.config, p.laddr, SignRestart, SignSigner)
}

// checkSignerListener looks at the signer address before a node start
// (signer mode only; nil otherwise). It refuses an address something
// already accepts on (another node, whose signer valguard would become,
// or whose socket this node's start would take over) and, for a unix
// socket, anything at the path that is not a socket. stale reports a
// socket file nothing accepts on, which a node left behind: CometBFT's
// next start would fail on it ("bind: address already in use").
func (n *Node) checkSignerListener() (stale bool, err error) {
	if !n.signerMode() {
		return false, nil
	}
	network, addr, err := parseSignerAddr(n.cfg.SignerAddr)
	if err != nil {
		return false, err
	}
	if network == "unix" {
		fi, err := os.Lstat(addr)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("signer socket %s: %w", addr, err)
		case fi.Mode().Type() != fs.ModeSocket:
			return false, fmt.Errorf("the signer socket path %s holds a %s, not a socket: valguard removes only a stale socket there; move it away", addr, fileKind(fi.Mode()))
		}
	}
	c, err := net.DialTimeout(network, addr, probeTimeout)
	if err == nil {
		c.Close()
		return false, fmt.Errorf("another process serves %s (a node left running?): stop it (ss -lxp or ss -ltnp shows which), then start valguard again", addr)
	}
	if network == "unix" {
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return false, fmt.Errorf("signer socket %s: cannot tell whether something serves it: %w", addr, err)
		}
		return true, nil
	}
	return false, nil
}

// prepareSignerSocket readies the signer address for a node start: a
// stale socket file is removed (only a socket nothing accepts on) and the
// socket's directory created. It changes nothing when it refuses.
func (n *Node) prepareSignerSocket() error {
	stale, err := n.checkSignerListener()
	if err != nil || !n.signerMode() {
		return err
	}
	network, addr, _ := parseSignerAddr(n.cfg.SignerAddr)
	if network != "unix" {
		return nil
	}
	if stale {
		if err := os.Remove(addr); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the stale signer socket %s: %w", addr, err)
		}
		n.cfg.Log.Info().Str("path", addr).Msg("stale signer socket removed")
	}
	if err := os.MkdirAll(filepath.Dir(addr), 0o700); err != nil {
		return fmt.Errorf("create the signer socket's directory: %w", err)
	}
	return nil
}

// fileKind names a file type for an error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return m.Type().String()
}

// checkSignerStatus is the signer mode's key check on a running node's
// status (S1′): the node must report the validator's address (its key
// comes from valguard's socket; anything else means it does not sign
// through valguard: a foreign key, or its own key file because the
// binary ignored priv_validator_laddr), and the node home's key file
// must not hold the validator key (the node loads that file at start
// even with a remote signer). Both are supervisor.ErrUnexpectedKey.
func (n *Node) checkSignerStatus(got string) error {
	if got != n.key.Address {
		what := "a foreign key"
		n.mu.Lock()
		if got == n.voterAddr {
			what = "this replica's voter key (the node does not use the remote signer: check that the node binary takes --priv_validator_laddr)"
		}
		n.mu.Unlock()
		return fmt.Errorf("%w: the node reports validator address %s, %s, although valguard serves it the validator key %s at %s",
			supervisor.ErrUnexpectedKey, got, what, n.key.Address, n.cfg.SignerAddr)
	}
	held, err := holds(n.p.key, n.key.Address)
	if err != nil {
		return fmt.Errorf("read the node's key file %s: %w", n.p.key, err)
	}
	if held {
		return fmt.Errorf("%w: the node's key file %s holds the validator key; in the signer mode no node may hold it (S1′): the node loads that file at start even with a remote signer; remove it from the node home (valguard puts its voter key there)",
			supervisor.ErrUnexpectedKey, n.p.key)
	}
	return nil
}
