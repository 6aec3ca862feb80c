//go:build e2e

package signer

// Conformance of Serve, and of the behaviour of CometBFT v0.38 privval the
// signer mode relies on (docs/signer-mode.md §1), against a real
// single-validator node (testNode): the node listens, Serve dials, a
// FilePV-backed handler signs. Each test states its figures with t.Logf.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"github.com/rs/zerolog"
	"github.com/valguard/valguard/internal/testnet"
)

func pingReply() privvalproto.Message {
	return privvalproto.Message{Sum: &privvalproto.Message_PingResponse{PingResponse: &privvalproto.PingResponse{}}}
}

func refusedVote(why string) privvalproto.Message {
	return privvalproto.Message{Sum: &privvalproto.Message_SignedVoteResponse{SignedVoteResponse: &privvalproto.SignedVoteResponse{
		Error: &privvalproto.RemoteSignerError{Description: why}}}}
}

// serveNode starts Serve for n with h until the test ends.
func serveNode(t *testing.T, n *testNode, h Handler, key ...ed25519.PrivKey) (stop context.CancelFunc, done <-chan error) {
	t.Helper()
	cfg := ConnConfig{Addr: n.Laddr, Log: zerolog.Nop()}
	if len(key) > 0 {
		cfg.ConnKey = key[0]
	}
	return startServe(t, cfg, h)
}

// TestConformancePubKey: with Serve dialing, the node gets its public key
// within its 3 s accept window and keeps running; with nothing dialing it
// exits after 3 s.
func TestConformancePubKey(t *testing.T) {
	t.Run("served", func(t *testing.T) {
		n := newTestNode(t, unixLaddr)
		h := newPVHandler(n)
		serveNode(t, n, h)
		start := time.Now()
		p := n.Start()
		got := h.waitFor(t, start, 10*time.Second, "public key request", isPubKey)
		took := got.At.Sub(start)
		t.Logf("public key served %v after the node's start", took.Round(time.Millisecond))
		if took > 3*time.Second {
			t.Errorf("public key served %v after start, want under 3 s", took)
		}
		n.WaitHeight(2, 30*time.Second)
		if p.Exited() {
			t.Fatal("node exited")
		}
	})
	t.Run("nothing dials", func(t *testing.T) {
		n := newTestNode(t, unixLaddr)
		start := time.Now()
		p := n.Start()
		select {
		case <-p.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("node still running 20 s after start with no signer")
		}
		took := time.Since(start)
		err := p.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("node exit %v, want exit status 1", err)
		}
		log := tail(p.LogPath, 5)
		t.Logf("node exited after %v with %v; log tail:\n%s", took.Round(time.Millisecond), err, log)
		if !strings.Contains(log, "can't get pubkey") || !strings.Contains(log, "endpoint connection timed out") {
			t.Errorf("log does not say can't get pubkey: endpoint connection timed out")
		}
		if took < 2500*time.Millisecond {
			t.Errorf("node exited after %v, want the 3 s accept window first", took)
		}
	})
}

// TestConformanceBlocks: blocks are produced through the socket, and each
// commit carries the validator's signature; the node's home has no key of
// the validator.
func TestConformanceBlocks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		laddr func(string) string
	}{
		{"unix", unixLaddr},
		{"tcp", func(string) string { return fmt.Sprintf("tcp://127.0.0.1:%d", testnet.FreePort(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNode(t, tc.laddr)
			h := newPVHandler(n)
			serveNode(t, n, h, ed25519.GenPrivKey())
			start := time.Now()
			n.Start()
			const top = 6
			at := n.WaitHeight(top, 40*time.Second)
			for height := int64(1); height < top; height++ {
				if !n.SignedAt(height) {
					t.Errorf("commit of height %d lacks the validator's signature", height)
				}
			}
			signs := h.seen(func(r seenReq) bool { return r.Kind == "vote" || r.Kind == "proposal" })
			t.Logf("%s: height %d after %v, %d sign requests answered", tc.name, top, at.Sub(start).Round(time.Millisecond), len(signs))
			if len(signs) < 3*(top-1) {
				t.Errorf("%d sign requests for %d heights, want at least 3 per height (proposal, prevote, precommit)", len(signs), top-1)
			}
			if home, err := os.ReadFile(n.Home + "/config/priv_validator_key.json"); err == nil &&
				strings.Contains(string(home), n.Address) {
				t.Error("the node's home holds the validator's key")
			}
		})
	}
}

// TestConformanceRefusalNotRetried: a prevote refused with a
// RemoteSignerError is never asked for again; the single validator's
// chain halts at that height.
func TestConformanceRefusalNotRetried(t *testing.T) {
	n := newTestNode(t, unixLaddr)
	h := newPVHandler(n)
	var target string
	h.setHook(func(_ context.Context, r seenReq) (privvalproto.Message, bool) {
		if r.Kind == "vote" && r.Step == 2 && r.H >= 3 && (target == "" || target == r.hrs()) {
			target = r.hrs()
			return refusedVote("refused by the conformance test"), true
		}
		return privvalproto.Message{}, false
	})
	serveNode(t, n, h)
	n.Start()
	first := h.waitFor(t, time.Now().Add(-time.Hour), 30*time.Second, "prevote at height 3", func(r seenReq) bool {
		return r.Kind == "vote" && r.Step == 2 && r.H >= 3
	})
	time.Sleep(10 * time.Second)
	same := h.seen(func(r seenReq) bool { return r.hrs() == first.hrs() && r.Kind == "vote" })
	after := h.seen(func(r seenReq) bool { return r.At.After(first.At) && r.Kind != "ping" })
	height := n.Height()
	t.Logf("refused prevote %s: %d request(s) for it in %v; %d other sign requests after it; height %d",
		first.hrs(), len(same), time.Since(first.At).Round(time.Millisecond), len(after), height)
	if len(same) != 1 {
		t.Errorf("%d requests for the refused prevote %s, want 1 (no retry)", len(same), first.hrs())
	}
	if height >= first.H {
		t.Errorf("height %d, want the chain halted below %d", height, first.H)
	}
	if log := tail(n.Dir+"/node1.log", 400); !strings.Contains(log, "failed signing vote") {
		t.Error(`node log lacks "failed signing vote"`)
	}
}

// TestConformanceParkResent: a prevote parked (held ~4 s, then answered
// with a PingResponse) is sent again about every 4.1 s, and the chain
// moves right after it is signed.
func TestConformanceParkResent(t *testing.T) {
	const hold, parks = 4 * time.Second, 3
	n := newTestNode(t, unixLaddr)
	h := newPVHandler(n)
	var target string
	parked := 0
	signedAt := make(chan seenReq, 1)
	h.setHook(func(ctx context.Context, r seenReq) (privvalproto.Message, bool) {
		if r.Kind != "vote" || r.Step != 2 || r.H < 3 || (target != "" && target != r.hrs()) {
			return privvalproto.Message{}, false
		}
		target = r.hrs()
		if parked < parks {
			parked++
			select {
			case <-time.After(hold):
			case <-ctx.Done():
			}
			return pingReply(), true
		}
		r.At = time.Now()
		signedAt <- r
		return privvalproto.Message{}, false // sign it
	})
	serveNode(t, n, h)
	n.Start()
	var last seenReq
	select {
	case last = <-signedAt:
	case <-time.After(60 * time.Second):
		t.Fatal("parked prevote not re-sent until signed within 60 s")
	}
	signed := last.At
	// The height the prevote was for; its reply is recorded by then.
	next := n.WaitHeight(last.H, 10*time.Second)
	tr := h.seen(func(r seenReq) bool { return r.Kind == "vote" && r.hrs() == target })
	var gaps []time.Duration
	for i := 1; i < len(tr); i++ {
		gaps = append(gaps, tr[i].At.Sub(tr[i-1].At).Round(time.Millisecond))
	}
	t.Logf("prevote %s: %d requests, gaps between arrivals %v; height %d %v after it was signed",
		target, len(tr), gaps, last.H, next.Sub(signed).Round(time.Millisecond))
	if len(tr) != parks+1 {
		t.Errorf("%d requests, want %d (%d parks, then the signature)", len(tr), parks+1, parks)
	}
	for _, g := range gaps {
		if g < hold || g > hold+time.Second {
			t.Errorf("re-sent after %v, want hold %v plus the node's 100 ms retry (under %v)", g, hold, hold+time.Second)
		}
	}
	if d := next.Sub(signed); d > 3*time.Second {
		t.Errorf("height %d %v after the signature, want under 3 s", last.H, d)
	}
}

// TestConformanceNodeRestart: the node is stopped (SIGTERM, then SIGKILL)
// and started again while Serve keeps running; Serve reconnects by
// itself, the node starts and signs on, and while the node is down Serve
// burns little CPU.
func TestConformanceNodeRestart(t *testing.T) {
	n := newTestNode(t, unixLaddr)
	h := newPVHandler(n)
	serveNode(t, n, h)
	p := n.Start()
	n.WaitHeight(3, 30*time.Second)
	for _, kill := range []bool{false, true} {
		before := n.Height()
		how := "SIGTERM"
		if kill {
			how = "SIGKILL"
		}
		stopAt := time.Now()
		if kill {
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
		} else if err := p.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		stopped := time.Since(stopAt)
		_, statErr := os.Stat(n.SocketPath())
		left := statErr == nil
		t.Logf("%s: node gone after %v; socket file left behind: %v", how, stopped.Round(time.Millisecond), left)
		// v0.38.26 never closes its privval listener (Node.OnStop does
		// not stop the socket client), so even a clean exit leaves the
		// socket file, and the next start fails on it unless it is
		// removed first (TestConformanceStaleSocket): Serve does, at its
		// first refused dial (removeStaleSocket).
		if !left {
			t.Errorf("%s: no socket file left behind; CometBFT now cleans up (update docs/signer-mode.md)", how)
		}

		// Down: Serve redials every 100 ms without spinning.
		cpu0, t0 := cpuTime(t), time.Now()
		time.Sleep(3 * time.Second)
		cpu, el := cpuTime(t)-cpu0, time.Since(t0)
		t.Logf("%s: node down, test process CPU %v in %v (%.1f%%)", how, cpu, el.Round(time.Millisecond), 100*cpu.Seconds()/el.Seconds())
		if cpu > el/10 {
			t.Errorf("CPU %v in %v with the node down, want under 10%%", cpu, el)
		}

		if _, err := os.Lstat(n.SocketPath()); left && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: the socket file the node left is still there after 3 s of Serve redialing (%v)", how, err)
		}
		start := time.Now()
		p = n.Start()
		got := h.waitFor(t, start, 10*time.Second, "public key request after restart", isPubKey)
		took := got.At.Sub(start)
		at := n.WaitHeight(before+3, 30*time.Second)
		t.Logf("%s: restarted node got its public key %v after start (Serve not restarted); height %d → %d in %v",
			how, took.Round(time.Millisecond), before, before+3, at.Sub(start).Round(time.Millisecond))
		if took > 3*time.Second {
			t.Errorf("%s: public key %v after restart, want under 3 s", how, took)
		}
		if p.Exited() {
			t.Fatalf("%s: restarted node exited", how)
		}
	}
}

// TestConformanceServeRestart: Serve is stopped and started again (at
// once, after 1 s, after 2 s) while the node runs; the node takes the new
// connection and signs on, without a restart and without losing a step.
func TestConformanceServeRestart(t *testing.T) {
	n := newTestNode(t, unixLaddr)
	h := newPVHandler(n)
	stop, done := serveNode(t, n, h)
	p := n.Start()
	n.WaitHeight(3, 30*time.Second)
	for i := range 3 {
		stopAt := time.Now()
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve still running 5 s after cancel")
		}
		returned := time.Since(stopAt)
		before := n.Height()
		down := time.Duration(i) * time.Second // 0, 1 s, 2 s without a signer
		time.Sleep(down)
		restart := time.Now()
		stop, done = serveNode(t, n, h)
		got := h.waitFor(t, restart, 15*time.Second, "request on the new connection", func(seenReq) bool { return true })
		at := n.WaitHeight(before+2, 30*time.Second)
		took := got.At.Sub(restart)
		t.Logf("Serve restart %d (down %v): returned %v after cancel; first request (%s) on the new connection %v after it started; height %d → %d after %v",
			i+1, down, returned, got.Kind, took.Round(10*time.Microsecond), before, before+2, at.Sub(restart).Round(time.Millisecond))
		if took > 8*time.Second {
			t.Errorf("first request %v after Serve restarted, want under 8 s (one ping interval plus the node's 5 s timeout)", took)
		}
		if p.Exited() {
			t.Fatal("node exited")
		}
	}
	if log := tail(p.LogPath, 2000); strings.Contains(log, "failed signing vote") {
		t.Error(`node log has "failed signing vote": a step was lost across a Serve restart`)
	}
}

// TestConformanceStaleSocket: a socket file left at the path (as every
// stopped node leaves it) when the node starts. With nothing removing it
// the node cannot listen and exits; with Serve dialing, Serve removes it
// (its dial is refused) and the node starts and is served.
func TestConformanceStaleSocket(t *testing.T) {
	t.Run("no signer", func(t *testing.T) {
		n := newTestNode(t, unixLaddr)
		makeStaleSocket(t, n.SocketPath())
		start := time.Now()
		p := n.Start()
		select {
		case <-p.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("node with a stale socket file still running after 20 s")
		}
		err := p.Wait()
		log := tail(p.LogPath, 3)
		t.Logf("stale socket file: node exited after %v with %v; log tail:\n%s", time.Since(start).Round(time.Millisecond), err, log)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("node exit %v, want exit status 1", err)
		}
		if !strings.Contains(log, "address already in use") {
			t.Error(`log does not say "address already in use"`)
		}
	})
	t.Run("served", func(t *testing.T) {
		n := newTestNode(t, unixLaddr)
		makeStaleSocket(t, n.SocketPath())
		h := newPVHandler(n)
		serveNode(t, n, h)
		removed := time.Now()
		for {
			if _, err := os.Lstat(n.SocketPath()); errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Since(removed) > 5*time.Second {
				t.Fatal("Serve left the stale socket file for 5 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		p := n.Start()
		got := h.waitFor(t, start, 10*time.Second, "public key request", isPubKey)
		n.WaitHeight(3, 30*time.Second)
		t.Logf("stale socket removed by Serve %v after it started; the node then got its public key %v after start",
			start.Sub(removed).Round(time.Millisecond), got.At.Sub(start).Round(time.Millisecond))
		if p.Exited() {
			t.Fatal("node exited")
		}
	})
}
