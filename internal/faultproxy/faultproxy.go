// Package faultproxy is a TCP proxy for tests that injects network faults
// between a client and a server, in the spirit of etcd's pkg/proxy.
//
// Point the client at Addr() instead of the server. The mode can be
// switched at any time and applies at once to the connections already open
// and to new ones:
//
//   - Pass forwards bytes both ways (the start mode).
//   - Blackhole keeps accepting connections and reading from both sides but
//     forwards nothing: data is silently dropped, as on a network that loses
//     every packet, and the client's calls hang until their own timeouts.
//     Data dropped this way is gone for good, so a connection that lived
//     through a blackhole is usually unusable afterwards; clients are
//     expected to time out and reconnect.
//   - Delay(d) forwards each chunk read after holding it for d, in each
//     direction, keeping the order.
//
// Hand-written rather than github.com/Shopify/toxiproxy/v2 (v2.5.0): its
// blackhole (the timeout toxic) closes the open connections when it is
// removed, where Pass keeps them open; its latency has millisecond steps;
// and in process it is driven through its HTTP API server's types and
// JSON toxics, with dependencies a test proxy does not need.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type mode struct {
	blackhole bool
	delay     time.Duration
}

// Proxy is a fault-injecting TCP proxy in front of one target address.
type Proxy struct {
	target string
	ln     net.Listener
	mode   atomic.Pointer[mode]

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	// errs collects unexpected errors of the proxy's own goroutines; Close
	// reports them through t.
	errMu sync.Mutex
	errs  []error
}

// New starts a proxy on 127.0.0.1:0 that forwards to target (host:port) and
// registers its shutdown with t.Cleanup. Unexpected proxy errors (a failed
// dial of the target, for instance) are reported with t.Log at cleanup.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.mode.Store(&mode{})
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(func() {
		p.Close()
		for _, err := range p.Errors() {
			t.Logf("faultproxy %s -> %s: %v", p.Addr(), target, err)
		}
	})
	return p
}

// Addr is the host:port clients should connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pass forwards traffic unchanged.
func (p *Proxy) Pass() { p.mode.Store(&mode{}) }

// Blackhole drops all traffic in both directions while connections stay
// open and new ones are still accepted.
func (p *Proxy) Blackhole() { p.mode.Store(&mode{blackhole: true}) }

// Delay holds every chunk of data for d before forwarding it.
func (p *Proxy) Delay(d time.Duration) { p.mode.Store(&mode{delay: d}) }

// Errors returns the unexpected errors seen so far.
func (p *Proxy) Errors() []error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return append([]error(nil), p.errs...)
}

func (p *Proxy) report(err error) {
	p.errMu.Lock()
	p.errs = append(p.errs, err)
	p.errMu.Unlock()
}

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines to end. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close() // unblocks Accept; nothing to report on shutdown
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c for Close; it returns false when the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close() // may already be closed by the other direction
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.report(err)
			}
			return
		}
		if !p.track(in) {
			_ = in.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(in)
	}
}

func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer p.untrack(in)
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.report(err)
		return
	}
	if !p.track(out) {
		_ = out.Close()
		return
	}
	defer p.untrack(out)
	done := make(chan struct{}, 2)
	go func() { p.pump(out, in); done <- struct{}{} }()
	go func() { p.pump(in, out); done <- struct{}{} }()
	<-done // one side ended: closing both ends the other pump
	_ = in.Close()
	_ = out.Close()
	<-done
}

// pump copies src to dst chunk by chunk, applying the mode current at the
// time each chunk was read.
func (p *Proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			m := p.mode.Load()
			switch {
			case m.blackhole:
				// dropped
			default:
				if m.delay > 0 {
					time.Sleep(m.delay)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				// A reset by the peer is part of normal life for a proxy.
				var ne net.Error
				if !errors.As(err, &ne) {
					p.report(err)
				}
			}
			return
		}
	}
}
