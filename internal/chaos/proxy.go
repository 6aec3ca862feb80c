package chaos

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Path faults a Proxy applies. The kernel here has no netem qdisc, so
// latency and loss act in user space, on the TCP payload: a lost segment
// costs TCP a retransmission, so Loss holds a chunk for a retransmission
// timeout (200 ms, doubled per further loss) instead of dropping bytes
// from the stream.
type pathMode struct {
	blackhole bool          // forward nothing either way
	oneWay    bool          // forward client→server only: requests apply, answers are lost
	delay     time.Duration // added to every chunk, each direction
	loss      float64       // probability a chunk is "lost" (see above)
}

// Proxy forwards TCP connections from its address to the first of its
// targets that accepts, as a local Consul client agent forwards to any
// server: the drills put one in front of each replica's Consul path.
// Modes apply at once to open connections and new ones (internal/faultproxy
// does the same for tests on 127.0.0.1; this one listens on a bridge
// address and falls back across servers).
type Proxy struct {
	ln      net.Listener
	targets []string
	mode    atomic.Pointer[pathMode]
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closed  bool
	wg      sync.WaitGroup
}

// NewProxy listens on addr (host:0 picks a port).
func NewProxy(addr string, targets []string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, targets: targets, conns: map[net.Conn]bool{}}
	p.mode.Store(&pathMode{})
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pass forwards unchanged.
func (p *Proxy) Pass() { p.mode.Store(&pathMode{}) }

// Blackhole drops everything, both ways; connections stay open.
func (p *Proxy) Blackhole() { p.mode.Store(&pathMode{blackhole: true}) }

// OneWay forwards requests but drops every answer.
func (p *Proxy) OneWay() { p.mode.Store(&pathMode{oneWay: true}) }

// Degrade adds delay to every chunk and treats a share loss of the chunks
// as lost segments.
func (p *Proxy) Degrade(delay time.Duration, loss float64) {
	p.mode.Store(&pathMode{delay: delay, loss: loss})
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.closed {
		c.Close()
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in, true) {
			return
		}
		p.wg.Add(1)
		go p.serve(in)
	}
}

func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer func() { p.track(in, false); in.Close() }()
	var out net.Conn
	for _, t := range p.targets {
		c, err := net.DialTimeout("tcp", t, time.Second)
		if err == nil {
			out = c
			break
		}
	}
	if out == nil || !p.track(out, true) {
		return
	}
	defer func() { p.track(out, false); out.Close() }()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(out, in, false); out.Close() }()
	go func() { defer wg.Done(); p.pump(in, out, true); in.Close() }()
	wg.Wait()
}

// pump copies src to dst chunk by chunk under the mode current when each
// chunk was read; answer says the chunk travels server→client. Delays are
// pipelined, as on a network: each chunk is due its delay after it was
// read, not after the chunk before it was written.
func (p *Proxy) pump(dst, src net.Conn, answer bool) {
	type chunk struct {
		data []byte
		due  time.Time
	}
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(c.data); err != nil {
				src.Close()
				for range q { // drain
				}
				return
			}
		}
	}()
	defer func() { close(q); <-done }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			m := p.mode.Load()
			if m.blackhole || (m.oneWay && answer) {
				if err != nil {
					return
				}
				continue
			}
			d := m.delay
			for rto := 200 * time.Millisecond; m.loss > 0 && rand.Float64() < m.loss; rto *= 2 {
				d += rto
			}
			q <- chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(d)}
		}
		if err != nil {
			return
		}
	}
}
