package signer

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/libs/protoio"
	p2pconn "github.com/cometbft/cometbft/p2p/conn"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"github.com/rs/zerolog"
)

func TestParseAddr(t *testing.T) {
	long := "/" + strings.Repeat("a", maxUnixPath-1) // exactly 107 bytes
	for _, tc := range []struct {
		name, addr, network, address string
		wantErr                      string // substring of the error; "" = valid
	}{
		{name: "unix", addr: "unix:///run/valguard/privval.sock", network: "unix", address: "/run/valguard/privval.sock"},
		{name: "unix 107 bytes", addr: "unix://" + long, network: "unix", address: long},
		{name: "tcp ip", addr: "tcp://127.0.0.1:26659", network: "tcp", address: "127.0.0.1:26659"},
		{name: "tcp name", addr: "tcp://node.example:26659", network: "tcp", address: "node.example:26659"},
		{name: "tcp ipv6", addr: "tcp://[::1]:26659", network: "tcp", address: "[::1]:26659"},
		{name: "no scheme", addr: "/run/privval.sock", wantErr: "no scheme"},
		{name: "empty", addr: "", wantErr: "no scheme"},
		{name: "other scheme", addr: "udp://127.0.0.1:1", wantErr: `scheme "udp"`},
		{name: "unix relative", addr: "unix://run/privval.sock", wantErr: "relative"},
		{name: "unix empty", addr: "unix://", wantErr: "no socket path"},
		{name: "unix directory", addr: "unix:///run/valguard/", wantErr: "ends in /"},
		{name: "unix NUL", addr: "unix:///run/a\x00b", wantErr: "NUL"},
		{name: "unix 108 bytes", addr: "unix://" + long + "b", wantErr: "108 bytes"},
		{name: "tcp no port", addr: "tcp://127.0.0.1", wantErr: "missing port"},
		{name: "tcp no host", addr: "tcp://:26659", wantErr: "no host"},
		{name: "tcp port 0", addr: "tcp://127.0.0.1:0", wantErr: "1..65535"},
		{name: "tcp port too big", addr: "tcp://127.0.0.1:65536", wantErr: "1..65535"},
		{name: "tcp port name", addr: "tcp://127.0.0.1:privval", wantErr: "1..65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network, address, err := ParseAddr(tc.addr)
			if tc.wantErr == "" {
				if err != nil || network != tc.network || address != tc.address {
					t.Fatalf("ParseAddr(%q) = %q, %q, %v; want %q, %q, nil", tc.addr, network, address, err, tc.network, tc.address)
				}
				return
			}
			if !errors.Is(err, ErrAddr) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseAddr(%q) = %q, %q, %v; want an ErrAddr saying %q", tc.addr, network, address, err, tc.wantErr)
			}
		})
	}
}

func TestServeRefusesConfig(t *testing.T) {
	for _, cfg := range []ConnConfig{
		{Addr: "unix://relative.sock"},
		{Addr: "tcp://127.0.0.1:26659"}, // no ConnKey
	} {
		err := Serve(context.Background(), cfg, HandlerFunc(nil))
		if !errors.Is(err, ErrAddr) {
			t.Errorf("Serve(%+v) = %v, want ErrAddr", cfg, err)
		}
	}
}

// HandlerFunc adapts a function to Handler (tests only).
type HandlerFunc func(ctx context.Context, req privvalproto.Message) privvalproto.Message

func (f HandlerFunc) Handle(ctx context.Context, req privvalproto.Message) privvalproto.Message {
	return f(ctx, req)
}

// pingHandler answers every request with a PingResponse and counts them.
type pingHandler struct{ n atomic.Int64 }

func (p *pingHandler) Handle(context.Context, privvalproto.Message) privvalproto.Message {
	p.n.Add(1)
	return privvalproto.Message{Sum: &privvalproto.Message_PingResponse{PingResponse: &privvalproto.PingResponse{}}}
}

// shortDir is a temporary directory with a short path, so socket paths
// stay under sun_path's limit whatever the test's name.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vgc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// fakeNode listens on a unix socket as a node's privval listener does and
// hands every accepted connection to serve (in the accept goroutine, so one
// connection at a time, as the node).
func fakeNode(t *testing.T, path string, serve func(net.Conn)) (accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			serve(c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return accepted
}

// startServe runs Serve until the test ends (or stop is called) and
// reports its result on the returned channel.
func startServe(t *testing.T, cfg ConnConfig, h Handler) (stop context.CancelFunc, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	exited := make(chan struct{})
	go func() { ch <- Serve(ctx, cfg, h); close(exited) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10 s of its context's end")
		}
	})
	return cancel, ch
}

func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestServeRoundTrip(t *testing.T) {
	sock := filepath.Join(shortDir(t), "pv.sock")
	type exchange struct{ req, reply privvalproto.Message }
	got := make(chan exchange, 1)
	fakeNode(t, sock, func(c net.Conn) {
		w, r := protoio.NewDelimitedWriter(c), protoio.NewDelimitedReader(c, maxMessageSize)
		req := privvalproto.Message{Sum: &privvalproto.Message_PubKeyRequest{PubKeyRequest: &privvalproto.PubKeyRequest{ChainId: "c"}}}
		if _, err := w.WriteMsg(&req); err != nil {
			t.Error(err)
			return
		}
		var reply privvalproto.Message
		if _, err := r.ReadMsg(&reply); err != nil {
			t.Error(err)
			return
		}
		got <- exchange{req, reply}
		var more privvalproto.Message
		_, _ = r.ReadMsg(&more) // hold the connection until the test ends
	})
	var seen []string
	var mu sync.Mutex
	var conns []bool
	h := HandlerFunc(func(_ context.Context, req privvalproto.Message) privvalproto.Message {
		mu.Lock()
		seen = append(seen, req.GetPubKeyRequest().GetChainId())
		mu.Unlock()
		return privvalproto.Message{Sum: &privvalproto.Message_PubKeyResponse{PubKeyResponse: &privvalproto.PubKeyResponse{}}}
	})
	stop, done := startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.Nop(), OnConnected: func(up bool) {
		mu.Lock()
		conns = append(conns, up)
		mu.Unlock()
	}}, h)
	select {
	case ex := <-got:
		if ex.reply.GetPubKeyResponse() == nil {
			t.Fatalf("reply %v, want a PubKeyResponse", ex.reply)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply within 5 s")
	}
	stopAt := time.Now()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v after cancel, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve still running 2 s after cancel")
	}
	t.Logf("Serve returned %v after cancel", time.Since(stopAt))
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "c" {
		t.Errorf("handler saw %q, want one request for chain c", seen)
	}
	if len(conns) != 2 || !conns[0] || conns[1] {
		t.Errorf("OnConnected calls %v, want [true false]", conns)
	}
}

// TestServeDoesNotSpin: a node that closes every connection at once (what
// made privval's SignerServer spin), a socket file nobody listens on, and
// no socket file: Serve redials about every RedialEvery and burns little
// CPU.
func TestServeDoesNotSpin(t *testing.T) {
	const window = 2 * time.Second
	t.Run("node closes at once", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "pv.sock")
		accepted := fakeNode(t, sock, func(net.Conn) {})
		var logged lockedBuffer
		startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.New(&logged)}, &pingHandler{})
		time.Sleep(200 * time.Millisecond)
		n0, cpu0, t0 := accepted.Load(), cpuTime(t), time.Now()
		time.Sleep(window)
		n, cpu, el := accepted.Load()-n0, cpuTime(t)-cpu0, time.Since(t0)
		t.Logf("%d connections in %v (%.1f/s), CPU %v (%.1f%%)", n, el, float64(n)/el.Seconds(), cpu, 100*cpu.Seconds()/el.Seconds())
		if max := int64(el/DefaultRedialEvery) + 2; n > max || n < 5 {
			t.Errorf("%d connections in %v, want 5..%d (one per RedialEvery)", n, el, max)
		}
		if cpu > el/10 {
			t.Errorf("CPU %v in %v, want under 10%%", cpu, el)
		}
		if lines := logged.lines(); len(lines) != 1 {
			t.Errorf("logged %d lines, want 1 for the whole streak:\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})
	for _, tc := range []struct {
		name  string
		stale bool
	}{{"stale socket file", true}, {"no socket file", false}} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(shortDir(t), "pv.sock")
			if tc.stale {
				makeStaleSocket(t, sock)
			}
			startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.Nop()}, &pingHandler{})
			time.Sleep(200 * time.Millisecond)
			cpu0, t0 := cpuTime(t), time.Now()
			time.Sleep(window)
			cpu, el := cpuTime(t)-cpu0, time.Since(t0)
			t.Logf("CPU %v in %v (%.1f%%)", cpu, el, 100*cpu.Seconds()/el.Seconds())
			if cpu > el/10 {
				t.Errorf("CPU %v in %v, want under 10%%", cpu, el)
			}
		})
	}
}

// TestServeRedials: after the node drops a connection, and after a
// request over privval's size limit, Serve dials again and serves the new
// connection.
func TestServeRedials(t *testing.T) {
	sock := filepath.Join(shortDir(t), "pv.sock")
	answered := make(chan int64, 10)
	var n atomic.Int64
	fakeNode(t, sock, func(c net.Conn) {
		w, r := protoio.NewDelimitedWriter(c), protoio.NewDelimitedReader(c, maxMessageSize)
		switch n.Add(1) {
		case 1: // drop without a word
			return
		case 2: // a request over the limit: Serve must hang up
			big := privvalproto.Message{Sum: &privvalproto.Message_PubKeyRequest{PubKeyRequest: &privvalproto.PubKeyRequest{ChainId: strings.Repeat("x", maxMessageSize+1)}}}
			if _, err := w.WriteMsg(&big); err != nil {
				return // Serve hung up while the request was still coming: what it must do
			}
			var reply privvalproto.Message
			if _, err := r.ReadMsg(&reply); err == nil {
				t.Errorf("reply %v to an oversized request, want the connection closed", reply)
			}
			return
		}
		ping := privvalproto.Message{Sum: &privvalproto.Message_PingRequest{PingRequest: &privvalproto.PingRequest{}}}
		if _, err := w.WriteMsg(&ping); err != nil {
			t.Error(err)
			return
		}
		var reply privvalproto.Message
		if _, err := r.ReadMsg(&reply); err != nil {
			t.Error(err)
			return
		}
		answered <- n.Load()
	})
	h := &pingHandler{}
	startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.Nop()}, h)
	select {
	case conn := <-answered:
		if conn != 3 {
			t.Errorf("answered on connection %d, want 3", conn)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no answer within 5 s (%d connections)", n.Load())
	}
	if got := h.n.Load(); got != 1 {
		t.Errorf("handler called %d times, want 1 (the oversized request never reaches it)", got)
	}
}

// TestServeReturnsWhileHandling: a cancelled Serve closes the connection,
// lets the handler in progress return and returns nil.
func TestServeReturnsWhileHandling(t *testing.T) {
	sock := filepath.Join(shortDir(t), "pv.sock")
	fakeNode(t, sock, func(c net.Conn) {
		ping := privvalproto.Message{Sum: &privvalproto.Message_PingRequest{PingRequest: &privvalproto.PingRequest{}}}
		_, _ = protoio.NewDelimitedWriter(c).WriteMsg(&ping)
		var reply privvalproto.Message
		_, _ = protoio.NewDelimitedReader(c, maxMessageSize).ReadMsg(&reply)
	})
	in := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, _ privvalproto.Message) privvalproto.Message {
		close(in)
		<-ctx.Done()
		return privvalproto.Message{Sum: &privvalproto.Message_PingResponse{PingResponse: &privvalproto.PingResponse{}}}
	})
	stop, done := startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.Nop()}, h)
	<-in
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve still running 2 s after cancel")
	}
}

// TestServeTCPHandshake: over tcp, Serve speaks the SecretConnection
// handshake with the key it is given.
func TestServeTCPHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ours := ed25519.GenPrivKey()
	remote := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc, err := p2pconn.MakeSecretConnection(c, ed25519.GenPrivKey())
		if err != nil {
			t.Error(err)
			return
		}
		remote <- sc.RemotePubKey().Bytes()
		ping := privvalproto.Message{Sum: &privvalproto.Message_PingRequest{PingRequest: &privvalproto.PingRequest{}}}
		_, _ = protoio.NewDelimitedWriter(sc).WriteMsg(&ping)
		var reply privvalproto.Message
		_, _ = protoio.NewDelimitedReader(sc, maxMessageSize).ReadMsg(&reply)
	}()
	startServe(t, ConnConfig{Addr: "tcp://" + ln.Addr().String(), ConnKey: ours, Log: zerolog.Nop()}, &pingHandler{})
	select {
	case k := <-remote:
		if string(k) != string(ours.PubKey().Bytes()) {
			t.Errorf("the node saw key %X, want ours %X", k, ours.PubKey().Bytes())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake within 5 s")
	}
}

// lockedBuffer collects log lines from another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// makeStaleSocket leaves a unix socket file at path that nobody listens
// on, as a SIGKILLed node does.
func makeStaleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}
}

// TestServeRemovesStaleSocket: a node that stopped left its socket file
// (CometBFT does, even on a clean stop) and its next start, which valguard
// may not make (cosmovisor at an upgrade), could not listen there. Serve
// removes a socket whose dial is refused, and serves the node that then
// listens; it leaves a file that is not a socket, and a socket a node
// serves, where they are.
func TestServeRemovesStaleSocket(t *testing.T) {
	t.Run("stale socket", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "pv.sock")
		makeStaleSocket(t, sock)
		startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.Nop()}, &pingHandler{})
		gone := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !gone; time.Sleep(10 * time.Millisecond) {
			_, err := os.Lstat(sock)
			gone = errors.Is(err, fs.ErrNotExist)
		}
		if !gone {
			t.Fatal("the stale socket is still there after 5 s")
		}
		accepted := fakeNode(t, sock, func(net.Conn) {}) // fails if the path is taken
		for deadline := time.Now().Add(5 * time.Second); accepted.Load() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("Serve did not connect to the node listening again")
			}
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "pv.sock")
		if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		startServe(t, ConnConfig{Addr: "unix://" + path, Log: zerolog.Nop()}, &pingHandler{})
		time.Sleep(500 * time.Millisecond)
		if b, err := os.ReadFile(path); err != nil || string(b) != "keep" {
			t.Fatalf("a regular file at the socket path was touched: %q, %v", b, err)
		}
	})
	t.Run("served socket", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "pv.sock")
		accepted := fakeNode(t, sock, func(c net.Conn) { time.Sleep(50 * time.Millisecond) })
		startServe(t, ConnConfig{Addr: "unix://" + sock, Log: zerolog.Nop()}, &pingHandler{})
		time.Sleep(500 * time.Millisecond)
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket || accepted.Load() == 0 {
			t.Fatalf("served socket: %v, %v, %d connections", fi, err, accepted.Load())
		}
	})
}
