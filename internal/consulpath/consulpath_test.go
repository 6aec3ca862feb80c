package consulpath

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server counts the requests it answered and echoes their body.
func server(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr accepts connections and never answers (a path that drops
// what it is sent).
func silentAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().String()
}

func client(t *testing.T, hosts ...string) (*http.Client, *Transport, *[]string) {
	tr, err := New(&http.Transport{DisableKeepAlives: true}, hosts)
	if err != nil {
		t.Fatal(err)
	}
	var switches []string
	tr.OnSwitch = func(from, to, why string) { switches = append(switches, from+"→"+to) }
	return &http.Client{Transport: tr}, tr, &switches
}

func put(t *testing.T, c *http.Client, timeout time.Duration, body string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://consul/v1/session/renew/x", strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestUnreachableAddressSkipped: a call that cannot connect to the first
// address is sent, body and all, to the next one, which calls then go to
// first.
func TestUnreachableAddressSkipped(t *testing.T) {
	s, n := server(t)
	dead := deadAddr(t)
	c, tr, switches := client(t, dead, s.Listener.Addr().String())
	got, err := put(t, c, 2*time.Second, "renew")
	if err != nil || got != "renew" {
		t.Fatalf("put: %q, %v; want the body echoed by the second address", got, err)
	}
	if n.Load() != 1 || tr.Current() != s.Listener.Addr().String() || len(*switches) != 1 {
		t.Fatalf("answered %d, current %s, switches %v", n.Load(), tr.Current(), *switches)
	}
}

// TestSentCallNotRepeated: a call that was sent and got no answer is not
// sent again elsewhere (its fate is unknown); the next call goes to the
// next address.
func TestSentCallNotRepeated(t *testing.T) {
	s, n := server(t)
	c, tr, _ := client(t, silentAddr(t), s.Listener.Addr().String())
	if _, err := put(t, c, 300*time.Millisecond, "fence"); err == nil {
		t.Fatal("a call to a silent address succeeded")
	}
	if n.Load() != 0 {
		t.Fatalf("a sent call was repeated on the next address (%d answered)", n.Load())
	}
	if tr.Current() != s.Listener.Addr().String() {
		t.Fatalf("current %s after a call that timed out, want the next address", tr.Current())
	}
	if got, err := put(t, c, 2*time.Second, "renew"); err != nil || got != "renew" || n.Load() != 1 {
		t.Fatalf("next call: %q, %v (answered %d)", got, err, n.Load())
	}
}

// TestNoAddressReachable: every address refusing is one error naming
// each.
func TestNoAddressReachable(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	c, _, _ := client(t, a, b)
	_, err := put(t, c, 2*time.Second, "x")
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("error %v, want both addresses named", err)
	}
}
