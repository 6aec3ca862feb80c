// Package freeport hands out loopback TCP ports for the local networks the
// demo, the drills and the tests start: ports no other process using this
// package holds, outside the kernel's ephemeral range.
//
// A port picked by listening on 127.0.0.1:0 and closing the listener is
// free only for a moment: until the node that is to listen on it starts
// (a minute later in some tests), the kernel may hand the same number to
// another process's :0 listener. Two such localnets running side by side
// (test packages run in parallel) then meet on one port. Take avoids both
// ways in: it picks from below the ephemeral range (the kernel hands
// those out for neither :0 nor outgoing connections), and it holds an
// advisory lock on a file named after the port until the process exits,
// which another process's Take respects. The lock files stay (empty, one
// per port ever handed out); removing one would race with its next user.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gofrs/flock"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
	// held keeps the lock files open (and so locked) for the life of the
	// process.
	held []*flock.Flock
)

// Dir is where the lock files live, one per port handed out: a directory
// of the user's own under the temporary directory (another user's
// processes are kept apart by the bind check alone).
func Dir() string {
	return filepath.Join(os.TempDir(), "valguard-ports-"+strconv.Itoa(os.Getuid()))
}

// skip are well-known ports inside the range a developer's own node may
// want: CometBFT's defaults.
var skip = map[int]bool{26656: true, 26657: true, 26658: true, 26660: true}

// ownDir creates Dir (0700) or checks that the one there is a directory,
// not a link, and this user's.
func ownDir() error {
	dir := Dir()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s is not a directory of this user's: remove it", dir)
	}
	return nil
}

// Take returns a loopback TCP port that is free now (for TCP and UDP,
// as gossip protocols use both), that no other process's Take holds, and
// that this process has not been handed before.
func Take() (int, error) {
	lo, hi := portRange()
	return takeIn(lo, hi)
}

func takeIn(lo, hi int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	if err := ownDir(); err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	for i := range n {
		port := lo + (start+i)%n
		if handed[port] || skip[port] {
			continue
		}
		f, ok := lock(port)
		if !ok {
			continue
		}
		if !bindable(port) {
			f.Unlock()
			continue
		}
		handed[port] = true
		held = append(held, f)
		return port, nil
	}
	return 0, fmt.Errorf("free port: none of %d..%d is free (lock files in %s)", lo, hi, Dir())
}

// lock takes the port's lock file (gofrs/flock, as internal/homelock
// does), or reports false if another process (or another Take of this
// one) holds it.
func lock(port int) (*flock.Flock, bool) {
	fl := flock.New(filepath.Join(Dir(), strconv.Itoa(port)),
		flock.SetFlag(os.O_RDONLY|os.O_CREATE|syscall.O_NOFOLLOW), flock.SetPermissions(0o600))
	if ok, err := fl.TryLock(); err != nil || !ok {
		return nil, false
	}
	return fl, true
}

// bindable reports whether nothing listens on the port (TCP) or has it
// bound (UDP) on the loopback address.
func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// portRange is the span Take picks from: below the kernel's ephemeral
// range when there is room, else above it, else everything above 10000
// (the lock files still keep this package's users apart).
func portRange() (lo, hi int) {
	elo, ehi, err := ephemeral()
	if err != nil {
		elo, ehi = 32768, 60999 // Linux's default
	}
	const floor, enough = 10000, 4096
	switch {
	case elo-1-floor >= enough:
		return floor, elo - 1
	case 65535-ehi-1 >= enough:
		return ehi + 1, 65535
	default:
		return floor, 65535
	}
}

func ephemeral() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, errors.New("ip_local_port_range: want two numbers")
	}
	if lo, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, err
	}
	if hi, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, err
	}
	return lo, hi, nil
}
