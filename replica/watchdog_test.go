package replica

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valguard/valguard/internal/testnet"
)

func TestCheckWatchdog(t *testing.T) {
	ttl, renew, margin := 10*time.Second, 10*time.Second/3, 3*time.Second
	cases := []struct {
		name     string
		systemd  bool
		interval time.Duration
		want     string // "" = accepted
	}{
		{"not under systemd", false, 0, ""},
		{"under systemd without WatchdogSec", true, 0, "without a watchdog: set WatchdogSec="},
		{"WatchdogSec at the limit", true, ttl - margin - renew, "is too long"},
		{"WatchdogSec of a whole TTL", true, ttl, "is too long"},
		{"WatchdogSec below the limit", true, 3 * time.Second, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkWatchdog(tc.systemd, tc.interval, ttl, renew, margin)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// The watchdog is fed while the lease deadline is further away than its
// timeout, and starved once it is not, whatever the wall clock says.
func TestWatchdogFeedsOnlyAheadOfTheLeaseDeadline(t *testing.T) {
	sock := testnet.ListenNotify(t)
	var mu sync.Mutex
	deadline, held := time.Time{}, false
	setLease := func(d time.Time, h bool) { mu.Lock(); deadline, held = d, h; mu.Unlock() }
	lease := func() (time.Time, bool) { mu.Lock(); defer mu.Unlock(); return deadline, held }
	interval := 100 * time.Millisecond
	w := newWatchdog(zerolog.New(zerolog.NewTestWriter(t)), interval, lease)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !within(3*time.Second, cond) {
			t.Fatalf("not within 3s: %s", what)
		}
	}
	waitFor("READY=1", func() bool { return sock.Count("READY=1") == 1 })
	// No session: fed.
	waitFor("fed without a session", func() bool { return sock.Count("WATCHDOG=1") >= 2 })
	// A session whose deadline is far away: fed.
	setLease(time.Now().Add(time.Hour), true)
	n := sock.Count("WATCHDOG=1")
	waitFor("fed ahead of the deadline", func() bool { return sock.Count("WATCHDOG=1") >= n+2 })
	// The deadline comes closer than the watchdog timeout: starved, so
	// systemd would kill a frozen replica before its deadline.
	setLease(time.Now().Add(interval/2), true)
	time.Sleep(interval / 2) // a feed already in flight
	n = sock.Count("WATCHDOG=1")
	time.Sleep(3 * interval)
	if got := sock.Count("WATCHDOG=1"); got != n {
		t.Fatalf("fed %d times with the lease deadline closer than the watchdog timeout", got-n)
	}
	// A renew moves the deadline away again: fed again.
	setLease(time.Now().Add(time.Hour), true)
	waitFor("fed after a renew", func() bool { return sock.Count("WATCHDOG=1") > n })
	cancel()
	<-done
	if !within(3*time.Second, func() bool { return sock.Count("STOPPING=1") == 1 }) {
		t.Fatal("no STOPPING=1 within 3s")
	}
}

// within polls cond until it holds or d passes.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
