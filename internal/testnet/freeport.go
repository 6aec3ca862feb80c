// Package testnet holds small networking aids for tests: free ports and a
// systemd notify socket.
package testnet

import (
	"testing"

	"github.com/valguard/valguard/internal/freeport"
)

// FreePort returns a loopback TCP port (free for UDP too) that no other
// process using internal/freeport holds and that this test binary has not
// been handed before (freeport.Take), so parallel tests and parallel test
// packages do not meet on one port.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Take()
	if err != nil {
		t.Fatalf("pick free port: %v", err)
	}
	return p
}
