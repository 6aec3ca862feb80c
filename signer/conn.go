package signer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/libs/protoio"
	p2pconn "github.com/cometbft/cometbft/p2p/conn"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"github.com/rs/zerolog"
)

// Connection timing and limits.
const (
	// DefaultRedialEvery is the pause between the end of one connection
	// (or a failed dial) and the next dial.
	DefaultRedialEvery = 100 * time.Millisecond
	// connWriteTimeout bounds each reply, as the node's own 5 s
	// read/write timeout (privval defaultTimeoutReadWriteSeconds).
	connWriteTimeout = 5 * time.Second
	// connReadTimeout is the longest Serve waits for the node's next
	// request. A live node is never silent for long: it pings every 2/3
	// of its 5 s timeout (≈3.33 s) after its last exchange
	// (signer_listener_endpoint.go), so 12 s is more than three ping
	// intervals, enough for a loaded host, and a node that vanished
	// without closing the socket (frozen, or a tcp peer gone without a
	// FIN) is noticed within 12 s. A node that exits closes the socket,
	// which ends the read at once (EOF). It also bounds the tcp handshake
	// and the wait in the node's accept backlog while the node still
	// holds an older connection.
	connReadTimeout = 12 * time.Second
	// maxMessageSize bounds a request read from the node. privval's own
	// limit is 10 KiB (maxRemoteSignerMsgSize, signer_endpoint.go), for
	// what the node reads; what it writes has none, and a precommit
	// carrying a large vote extension (oracle chains) is bigger: 4 MiB
	// leaves room for those. Replies stay small (Handle drops the
	// extension from a signed vote: the node copies back only the
	// signature, timestamp and extension signature).
	maxMessageSize = 4 << 20
	// maxUnixPath is the longest socket path sun_path holds (108 bytes
	// with the terminating NUL).
	maxUnixPath = 107
)

// ErrAddr: a privval address ParseAddr refuses. The error wrapping it says
// what is wrong and how to write it.
var ErrAddr = errors.New("invalid privval address")

// Handler answers one request from the node. It must answer before the
// node's read timeout (5 s). Serve calls it for one request at a time.
type Handler interface {
	Handle(ctx context.Context, req privvalproto.Message) privvalproto.Message
}

// ConnConfig configures Serve. Zero fields take the documented defaults.
type ConnConfig struct {
	// Addr is the node's priv_validator_laddr: "unix:///abs/path.sock" or
	// "tcp://host:port" (tcp uses CometBFT's SecretConnection, as tmkms
	// does). Required.
	Addr string
	// ConnKey is the key of our side of the SecretConnection (ed25519).
	// Required for tcp, unused for unix.
	ConnKey crypto.PrivKey
	// RedialEvery is the pause before every dial after the first.
	// Default DefaultRedialEvery.
	RedialEvery time.Duration
	Log         zerolog.Logger
	// OnConnected, if set, is called with true when the node sends the
	// first request on a connection and with false when that connection
	// ends (a metric).
	OnConnected func(bool)
}

// ParseAddr splits a privval address into the network and address Serve
// dials: "unix:///abs/path.sock" gives ("unix", "/abs/path.sock"), and
// "tcp://host:port" gives ("tcp", "host:port"). A unix path must be
// absolute and at most 107 bytes (sun_path); a tcp address needs a host
// and a port in 1..65535. Errors wrap ErrAddr.
func ParseAddr(addr string) (network, address string, err error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return "", "", fmt.Errorf("%w %q: no scheme; write unix:///absolute/path.sock or tcp://host:port", ErrAddr, addr)
	}
	switch scheme {
	case "unix":
		switch {
		case rest == "":
			return "", "", fmt.Errorf("%w %q: no socket path; write unix:///absolute/path.sock", ErrAddr, addr)
		case !strings.HasPrefix(rest, "/"):
			return "", "", fmt.Errorf("%w %q: the socket path %q is relative; write an absolute path after unix:// (three slashes in all)", ErrAddr, addr, rest)
		case strings.HasSuffix(rest, "/"):
			return "", "", fmt.Errorf("%w %q: the socket path ends in /; name a file, not a directory", ErrAddr, addr)
		case strings.ContainsRune(rest, 0):
			return "", "", fmt.Errorf("%w %q: the socket path holds a NUL byte", ErrAddr, addr)
		case len(rest) > maxUnixPath:
			return "", "", fmt.Errorf("%w %q: the socket path is %d bytes, a unix socket path holds at most %d; choose a shorter path", ErrAddr, addr, len(rest), maxUnixPath)
		}
		return "unix", rest, nil
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("%w %q: %v; write tcp://host:port", ErrAddr, addr, err)
		}
		if host == "" {
			return "", "", fmt.Errorf("%w %q: no host; write tcp://host:port, e.g. tcp://127.0.0.1:26659", ErrAddr, addr)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return "", "", fmt.Errorf("%w %q: port %q is not a number in 1..65535", ErrAddr, addr, port)
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("%w %q: scheme %q; only unix:// and tcp:// are served", ErrAddr, addr, scheme)
}

// Serve is the privval connection to the node, which listens: it dials
// cfg.Addr, reads a request, answers it with h.Handle, writes the reply,
// and repeats. On any error (dial, handshake, read, write, a read timeout,
// the node closing the connection) it closes the connection and dials
// again after RedialEvery, for as long as ctx lasts; it never spins. It
// returns nil once ctx is done and the request in hand (if any) was
// handled, and an error only for a configuration it cannot serve (an
// address ParseAddr refuses, tcp without ConnKey).
//
// Each reply has 5 s to be written; the wait for the next request is
// bounded by 12 s (see connReadTimeout). Requests larger than privval's
// 10 KiB limit end the connection.
//
// A unix socket whose dial is refused is a node's stale socket, and Serve
// removes it (removeStaleSocket).
//
// Not guaranteed: that the node accepts a connection (it holds one at a
// time and takes a new one only after the old one failed it), nor that a
// reply cut off by a broken connection reached the node.
func Serve(ctx context.Context, cfg ConnConfig, h Handler) error {
	network, address, err := ParseAddr(cfg.Addr)
	if err != nil {
		return err
	}
	if network == "tcp" && cfg.ConnKey == nil {
		return fmt.Errorf("%w %q: tcp needs a connection key for the SecretConnection", ErrAddr, cfg.Addr)
	}
	if cfg.RedialEvery <= 0 {
		cfg.RedialEvery = DefaultRedialEvery
	}
	log := cfg.Log.With().Str("addr", cfg.Addr).Logger()
	var (
		failed   int    // attempts in a row that got no request
		lastFail string // the last such error logged
		downAt   = time.Now()
	)
	for first := true; ; first = false {
		if !first {
			t := time.NewTimer(cfg.RedialEvery)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		up := false // the node sent a request on this connection
		served := 0
		var before fs.FileInfo // the socket file as it was before the dial
		if network == "unix" {
			before, _ = os.Lstat(address)
		}
		conn, err := dial(ctx, network, address, cfg.ConnKey)
		if err == nil {
			served, err = serveConn(ctx, conn, h, func(connected bool) {
				if connected {
					up = true
					log.Info().Int("failed_attempts", failed).Dur("down", time.Since(downAt)).Msg("node connected")
					failed, lastFail = 0, ""
				}
				if cfg.OnConnected != nil {
					cfg.OnConnected(connected)
				}
			})
		}
		if ctx.Err() != nil {
			return nil
		}
		if up {
			log.Warn().Err(err).Int("requests", served).Msg("privval connection ended; redialing")
			downAt = time.Now()
			continue
		}
		// A failed dial or handshake, or a connection that ended before
		// the first request: one line per streak, and one more when the
		// cause changes (the node may be down for minutes at 10 attempts
		// a second).
		failed++
		if msg := err.Error(); failed == 1 || msg != lastFail {
			log.Warn().Err(err).Int("failed_attempts", failed).Msg("no privval connection to the node; redialing")
			lastFail = msg
		}
		if network == "unix" && errors.Is(err, syscall.ECONNREFUSED) {
			removeStaleSocket(address, before, log)
		}
	}
}

// removeStaleSocket removes the node's socket file at path, whose dial was
// just refused, when it is still the file before was (Lstat'd before the
// dial): nothing accepts on it any more. CometBFT does not remove
// its privval socket when it stops, even cleanly, and its next start fails
// on the file ("bind: address already in use"); valguard removes it
// before every start it makes itself (cometbft's Prepare), and this covers
// the starts it does not make: cosmovisor starting the upgraded daemon, a
// node under its own service manager (--node external). Only a socket is
// removed, and only the file the refused dial went to: a socket made anew
// there meanwhile (a node that started after something else removed the
// stale one) is another file and stays. Not guaranteed: a node that binds
// the path in the instant between its bind and its listen (one call), or
// between the last look and the removal, loses its socket, gets no signer
// and exits after its 3 s wait for one; its next start then succeeds. No
// signature depends on it: the key is only in valguard's memory.
func removeStaleSocket(path string, before fs.FileInfo, log zerolog.Logger) {
	fi, err := os.Lstat(path)
	if err != nil || before == nil || fi.Mode().Type() != fs.ModeSocket || !os.SameFile(fi, before) {
		return
	}
	if err := os.Remove(path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn().Err(err).Str("path", path).Msg("could not remove the stale signer socket: the node cannot listen on it again")
		}
		return
	}
	log.Info().Str("path", path).Msg("stale signer socket removed: the node stopped and left it behind; its next start can listen again")
}

// dial connects to the node, with the SecretConnection handshake for tcp
// (as privval.DialTCPFn, but ended by ctx too).
func dial(ctx context.Context, network, address string, key crypto.PrivKey) (net.Conn, error) {
	d := net.Dialer{Timeout: connWriteTimeout}
	conn, err := d.DialContext(ctx, network, address)
	if err != nil || network != "tcp" {
		return conn, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(connReadTimeout)); err != nil {
		conn.Close()
		return nil, err
	}
	sc, err := p2pconn.MakeSecretConnection(conn, key)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("secret connection handshake: %w", err)
	}
	return sc, nil
}

// serveConn answers requests on conn until an error or ctx ends, closes
// conn and returns how many requests it answered and why it stopped. It
// calls connected(true) when the first request arrives and
// connected(false) when such a connection ends.
func serveConn(ctx context.Context, conn net.Conn, h Handler, connected func(bool)) (int, error) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	r := protoio.NewDelimitedReader(conn, maxMessageSize)
	served := 0
	up := false
	defer func() {
		if up {
			connected(false)
		}
	}()
	for {
		if err := conn.SetReadDeadline(time.Now().Add(connReadTimeout)); err != nil {
			return served, err
		}
		var req privvalproto.Message
		if _, err := r.ReadMsg(&req); err != nil {
			return served, fmt.Errorf("read request: %w", err)
		}
		if !up {
			up = true
			connected(true)
		}
		reply := h.Handle(ctx, req)
		if err := conn.SetWriteDeadline(time.Now().Add(connWriteTimeout)); err != nil {
			return served, err
		}
		out, err := encodeReply(&reply)
		if err != nil {
			return served, fmt.Errorf("encode reply: %w", err)
		}
		if _, err := conn.Write(out); err != nil {
			return served, fmt.Errorf("write reply: %w", err)
		}
		served++
	}
}
