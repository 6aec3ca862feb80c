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

// server is an agent of the cluster whose Raft servers are peers: it
// answers /v1/status/peers, counts the other requests it answered and
// echoes their body, or answers status when it is not 0.
func server(t *testing.T, peers string, status ...int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status/peers" {
			_, _ = w.Write([]byte(peers))
			return
		}
		n.Add(1)
		if len(status) > 0 {
			w.WriteHeader(status[0])
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

const cluster = `["10.0.0.1:8300","10.0.0.2:8300","10.0.0.3:8300"]`

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
	tr.OnReject = func(host string, err error) { switches = append(switches, "rejected "+host) }
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
	s, n := server(t, cluster)
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
	s, n := server(t, cluster)
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

// TestOtherClusterNeverUsed: an address whose Raft servers share none
// with the first address's is rejected before it carries any call, and
// stays rejected; an agent of the same cluster whose peer list changed
// since (one server replaced) is accepted.
func TestOtherClusterNeverUsed(t *testing.T) {
	a, na := server(t, cluster)
	other, nOther := server(t, `["10.9.0.1:8300"]`)
	same, nSame := server(t, `["10.0.0.3:8300","10.0.0.4:8300"]`)
	c, tr, events := client(t, a.Listener.Addr().String(), other.Listener.Addr().String(), same.Listener.Addr().String())
	if got, err := put(t, c, 2*time.Second, "one"); err != nil || got != "one" || na.Load() != 1 {
		t.Fatalf("first call: %q, %v", got, err)
	}
	a.Close() // the first address dies: calls go on, past the other cluster
	for i := range 3 {
		if got, err := put(t, c, 2*time.Second, "two"); err != nil || got != "two" {
			t.Fatalf("call %d after the first address died: %q, %v", i, got, err)
		}
	}
	if nOther.Load() != 0 || nSame.Load() != 3 || tr.Current() != same.Listener.Addr().String() {
		t.Fatalf("other cluster answered %d calls, same cluster %d; current %s; events %v", nOther.Load(), nSame.Load(), tr.Current(), *events)
	}
	if !strings.Contains(strings.Join(*events, " "), "rejected "+other.Listener.Addr().String()) {
		t.Fatalf("no rejection reported: %v", *events)
	}
}

// TestServerErrorMovesNextCall: a 5xx answer is returned as it is (the
// call is not sent again) and the next call goes to the next address.
func TestServerErrorMovesNextCall(t *testing.T) {
	sick, nSick := server(t, cluster, http.StatusInternalServerError)
	good, nGood := server(t, cluster)
	c, tr, _ := client(t, sick.Listener.Addr().String(), good.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://consul/v1/session/renew/x", strings.NewReader("x"))
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("first call: %v, %v; want the 500 returned", resp, err)
	}
	resp.Body.Close()
	if nSick.Load() != 1 || nGood.Load() != 0 || tr.Current() != good.Listener.Addr().String() {
		t.Fatalf("sick answered %d, good %d, current %s", nSick.Load(), nGood.Load(), tr.Current())
	}
	if got, err := put(t, c, 2*time.Second, "y"); err != nil || got != "y" || nGood.Load() != 1 {
		t.Fatalf("next call: %q, %v", got, err)
	}
}
