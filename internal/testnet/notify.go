package testnet

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// Notify listens where $NOTIFY_SOCKET points, for the rest of the test,
// and records what is sent to it, as systemd would receive it.
type Notify struct {
	mu  sync.Mutex
	got []string
}

// ListenNotify makes a notify socket in the test's temporary directory
// and sets $NOTIFY_SOCKET to it (so that a process the test starts
// inherits it).
func ListenNotify(t *testing.T) *Notify {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	n := &Notify{}
	go func() {
		buf := make([]byte, 256)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.got = append(n.got, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// Count is how many messages equal to msg were received.
func (n *Notify) Count(msg string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.got {
		if m == msg {
			c++
		}
	}
	return c
}
