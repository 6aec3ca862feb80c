//go:build e2e

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// A cosmovisor-shaped node binary: it starts the daemon as its child,
// forwards TERM and INT to it and waits for it. %s is the daemon command.
const wrapperScript = `#!/bin/sh
%s "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM
trap 'kill -INT $child 2>/dev/null' INT
while kill -0 $child 2>/dev/null; do wait $child; done
`

// writeWrapper writes a wrapper around the CometBFT binary; with setsid
// the daemon runs in a session (and process group) of its own.
func writeWrapper(t *testing.T, cometbft string, setsid bool) string {
	t.Helper()
	daemon := cometbft
	if setsid {
		daemon = "setsid " + cometbft
	}
	path := filepath.Join(t.TempDir(), "nodewrap")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(wrapperScript, daemon)), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// children lists the child pids of pid, whichever of its threads started
// them (a Go wrapper such as cosmovisor starts the daemon from any).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// daemonOf waits for the wrapper's CometBFT child and returns its pid.
func daemonOf(t *testing.T, wrapper int) int {
	t.Helper()
	var daemon int
	ok := within(t.Context(), 10*time.Second, func() bool {
		for _, c := range children(wrapper) {
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); strings.Contains(string(cmd), "cometbft") {
				daemon = c
				return true
			}
		}
		return false
	})
	if !ok {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", wrapper))
		t.Fatalf("no cometbft child of wrapper %d (children %v, stat %q)", wrapper, children(wrapper), st)
	}
	return daemon
}

// processGroup is pid's process group, 0 if it is gone.
func processGroup(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}

// cgroupOf is the cgroup v2 path of pid ("" if none or gone).
func cgroupOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return p
		}
	}
	return ""
}

// TestWrapperKilledAloneEndToEnd: with a cosmovisor-shaped wrapper as the
// node binary, SIGKILL of the leader's wrapper alone leaves the real node,
// key loaded, running. The lock must not be released (the standby must
// not validate) until that node is dead too (S10, S3).
func TestWrapperKilledAloneEndToEnd(t *testing.T) { wrapperFailover(t, false) }

// TestSetsidWrapperKilledAloneEndToEnd: the same with a wrapper that starts
// the daemon in a session of its own, out of the node's process group.
func TestSetsidWrapperKilledAloneEndToEnd(t *testing.T) { wrapperFailover(t, true) }

// wrapperLeader starts a chain and two replicas whose node binary is a
// cosmovisor-shaped wrapper (its daemon in a session of its own with
// setsid), waits until a leads and signs and b votes, and returns the
// leader's wrapper and cometbft daemon; the test fails if a daemon
// outlives it.
func wrapperLeader(t *testing.T, setsid bool) (c *localChain, a, b *replica, wrapper, daemon int) {
	c = startChain(t, nil)
	if err := localnet.WaitHeight(t.Context(), c.rpc, 3); err != nil {
		t.Fatal(err)
	}
	wrap := writeWrapper(t, c.net.Binary, setsid)
	a, b = c.replica("a", 0, "--node-binary", wrap), c.replica("b", 1, "--node-binary", wrap)
	a.start()
	a.waitState("Validating", 90*time.Second)
	b.start()
	b.waitState("Voting", 90*time.Second)
	c.firstSignedAfter(c.height(), 60*time.Second)
	wrapper = a.nodePID()
	daemon = daemonOf(t, wrapper)
	mustNotOutlive(t, daemon)
	return c, a, b, wrapper, daemon
}

// watchDeath polls pid every millisecond until ctx ends and stores when it
// was first seen dead (Unix nanoseconds; 0 while it lives).
func watchDeath(ctx context.Context, pid int) *atomic.Int64 {
	var diedAt atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if !alive(pid) {
				diedAt.Store(time.Now().UnixNano())
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return &diedAt
}

// mustNotOutlive fails the test if cometbft daemon d still runs at its end,
// and kills it.
func mustNotOutlive(t *testing.T, d int) {
	t.Cleanup(func() {
		if alive(d) {
			t.Errorf("cometbft %d outlived the test", d)
			_ = syscall.Kill(d, syscall.SIGKILL)
		}
	})
}

func wrapperFailover(t *testing.T, setsid bool) {
	c, a, b, wrapper, daemon := wrapperLeader(t, setsid)
	ctx := t.Context()
	t.Logf("leader: wrapper %d, cometbft %d in cgroup %q", wrapper, daemon, cgroupOf(daemon))
	if pgrp := processGroup(daemon); setsid && pgrp != daemon || !setsid && pgrp != wrapper {
		t.Fatalf("cometbft %d in process group %d (setsid %v, wrapper %d)", daemon, pgrp, setsid, wrapper)
	}

	diedAt := watchDeath(ctx, daemon)
	hKill, killedAt := c.height(), time.Now()
	if err := syscall.Kill(wrapper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The standby must not validate while the daemon lives.
	var validatingAt time.Time
	ok := within(ctx, 60*time.Second, func() bool {
		if b.state() != "Validating" {
			return false
		}
		validatingAt = time.Now()
		if alive(daemon) {
			t.Fatalf("standby Validating while the killed leader's cometbft %d still runs", daemon)
		}
		return true
	})
	if !ok {
		t.Fatalf("standby not Validating within 60s (state %q); leader log tail:\n%s", b.state(), tailFile(a.logPath, 30))
	}
	died := diedAt.Load()
	if died == 0 || time.Unix(0, died).After(validatingAt) {
		t.Fatalf("cometbft %d died at %v, after the standby was seen Validating at %v", daemon, died, validatingAt)
	}
	// Only a signature above the height in progress when the standby took
	// over is its own (the old daemon may have signed hKill+1 first).
	signed := c.firstSignedAfter(c.height()+1, 60*time.Second)
	t.Logf("wrapper SIGKILL → cometbft dead %s → standby seen Validating %s → first signature (height %d, killed at %d) %s",
		time.Unix(0, died).Sub(killedAt).Round(time.Millisecond), validatingAt.Sub(killedAt).Round(time.Millisecond),
		signed, hKill, time.Since(killedAt).Round(time.Millisecond))

	// The old leader comes back as a voter, its node under a new wrapper.
	a.waitState("Voting", 90*time.Second)
	if c.keyLinked(0) {
		t.Fatal("replica a has the validator key linked while voting")
	}
	if err := localnet.WaitHeight(ctx, c.rpc, c.height()+3); err != nil {
		t.Fatal(err)
	}
	c.noDoubleSign(10)

	// Both stop cleanly, the standby first (so that no promotion races the
	// look-up of its node): SIGTERM reaches each daemon through its
	// wrapper, and no daemon survives its valguard.
	stopWithDaemons(t, 30*time.Second, a, b)
}

// stopWithDaemons stops each replica in turn with SIGTERM, waiting up to
// wait for it to exit, and fails the test if the daemon its wrapper ran
// outlives it.
func stopWithDaemons(t *testing.T, wait time.Duration, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		d := daemonOf(t, r.nodePID())
		mustNotOutlive(t, d)
		r.signal(syscall.SIGTERM)
		r.waitExit(wait)
		if alive(d) {
			t.Fatalf("replica %s exited with its daemon %d still running", r.id, d)
		}
	}
}

// TestValguardKilledWrapperEndToEnd: SIGKILL of the leader's valguard
// itself, with a cosmovisor-shaped wrapper as the node binary. Pdeathsig
// kills the wrapper only; the guard of the node's cgroup must kill its
// cometbft within a moment, long before the standby can take the lock
// (after the session TTL), so that two nodes never sign (S9).
func TestValguardKilledWrapperEndToEnd(t *testing.T) {
	c, a, b, wrapper, daemon := wrapperLeader(t, false)
	ctx := t.Context()
	cg := cgroupOf(daemon)
	t.Logf("leader: wrapper %d, cometbft %d in cgroup %q", wrapper, daemon, cg)
	if !strings.Contains(cg, "/valguard-") {
		_ = syscall.Kill(daemon, syscall.SIGKILL)
		t.Skipf("the node is not in a cgroup of its own (%q): the process-group containment has no guard", cg)
	}

	diedAt := watchDeath(ctx, daemon)
	hKill, killedAt := c.height(), time.Now()
	a.signal(syscall.SIGKILL)
	a.waitExit(5 * time.Second)
	if !within(ctx, 2*time.Second, func() bool { return diedAt.Load() != 0 }) {
		t.Fatalf("cometbft %d still runs %s after its valguard was SIGKILLed", daemon, time.Since(killedAt))
	}
	died := time.Unix(0, diedAt.Load())
	if b.state() == "Validating" {
		t.Fatal("the standby took over before the test could look")
	}
	b.waitState("Validating", 60*time.Second)
	validatingAt := time.Now()
	signed := c.firstSignedAfter(c.height()+1, 60*time.Second)
	t.Logf("valguard SIGKILL → cometbft dead %s → standby seen Validating %s → first signature (height %d, killed at %d) %s",
		died.Sub(killedAt).Round(time.Millisecond), validatingAt.Sub(killedAt).Round(time.Millisecond),
		signed, hKill, time.Since(killedAt).Round(time.Millisecond))
	if err := localnet.WaitHeight(ctx, c.rpc, c.height()+3); err != nil {
		t.Fatal(err)
	}
	c.noDoubleSign(10)

	d := daemonOf(t, b.nodePID())
	mustNotOutlive(t, d)
	b.signal(syscall.SIGTERM)
	b.waitExit(30 * time.Second)
	if alive(d) {
		t.Fatalf("replica b exited with its cometbft %d still running", d)
	}
}
