// Package testnet holds small networking aids for tests: free ports and a
// systemd notify socket.
package testnet

import (
	"net"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on 127.0.0.1:0, reads the port the kernel chose and closes the
// listener. The same port number is also free for UDP at that moment.
// Within one test binary a port is never handed out twice, so
// parallel tests of one package do not collide with each other.
//
// Not guaranteed: another process may take the port (TCP or UDP) between
// FreePort and its use. Callers that start a
// server on the port should retry with fresh ports when the start fails.
func FreePort(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			t.Fatalf("pick free port: close listener: %v", err)
		}
		if handed[port] {
			continue
		}
		// Gossip protocols use the same port number for UDP: skip ports
		// whose UDP side is taken.
		pc, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue
		}
		if err := pc.Close(); err != nil {
			t.Fatalf("pick free port: close udp socket: %v", err)
		}
		handed[port] = true
		return port
	}
	t.Fatal("pick free port: no unused port after 100 tries")
	return 0
}
