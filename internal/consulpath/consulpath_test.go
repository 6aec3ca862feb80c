package consulpath

import (
	"context"
	"errors"
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
// since (one server of three replaced) is accepted.
func TestOtherClusterNeverUsed(t *testing.T) {
	a, na := server(t, cluster)
	other, nOther := server(t, `["10.9.0.1:8300"]`)
	same, nSame := server(t, `["10.0.0.1:8300","10.0.0.2:8300","10.0.0.4:8300"]`)
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

// agent is a settable test agent: the Raft servers it names, and a number
// of calls to answer 503 (a server without a leader) before it answers
// again; n counts the calls it served (503s included).
type agent struct {
	*httptest.Server
	peers atomic.Value // string
	sick  atomic.Int32
	n     atomic.Int32
}

func newAgent(t *testing.T, peers string) *agent {
	a := &agent{}
	a.peers.Store(peers)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status/peers" {
			_, _ = w.Write([]byte(a.peers.Load().(string)))
			return
		}
		a.n.Add(1)
		if a.sick.Load() > 0 {
			a.sick.Add(-1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *agent) addr() string { return a.Listener.Addr().String() }

// call makes one call and returns its status ("" on a transport error).
func call(t *testing.T, c *http.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://consul/v1/kv/x", strings.NewReader("x"))
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Status
}

const otherCluster = `["10.9.0.1:8300","10.9.0.2:8300","10.9.0.3:8300"]`

// TestVerifyRefusesTwoClusters: with an address that does not answer, one
// of another cluster and two of the right one (in that order: the order
// in which the first answer used to define the cluster), Verify refuses
// and names both groups of servers.
func TestVerifyRefusesTwoClusters(t *testing.T) {
	other, a, b := newAgent(t, otherCluster), newAgent(t, cluster), newAgent(t, cluster)
	_, tr, _ := client(t, deadAddr(t), other.addr(), a.addr(), b.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := tr.Verify(ctx)
	if !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("Verify: %v; want ErrOtherCluster", err)
	}
	for _, want := range []string{other.addr() + " name the Raft servers [10.9.0.1:8300", a.addr() + "," + b.addr() + " name the Raft servers [10.0.0.1:8300"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Verify error %q does not say %q", err, want)
		}
	}
}

// TestVerifyAcceptsOneCluster: addresses that do not answer are no
// disagreement, and those that answered carry calls without another
// check.
func TestVerifyAcceptsOneCluster(t *testing.T) {
	a, b := newAgent(t, cluster), newAgent(t, `["10.0.0.3:8300","10.0.0.2:8300","10.0.0.1:8300"]`)
	c, tr, _ := client(t, deadAddr(t), a.addr(), b.addr())
	if err := tr.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := call(t, c); got != "200 OK" || a.n.Load() != 1 {
		t.Fatalf("call: %q, a served %d", got, a.n.Load())
	}
}

// TestAddressBackWithOtherServersNeverUsed: an address of the cluster that
// failed and came back as an agent of another cluster is never used again,
// and reported once, while its former cluster's address serves the calls.
func TestAddressBackWithOtherServersNeverUsed(t *testing.T) {
	x, a := newAgent(t, cluster), newAgent(t, cluster)
	c, tr, events := client(t, x.addr(), a.addr())
	if err := tr.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := call(t, c); got != "200 OK" || x.n.Load() != 1 {
		t.Fatalf("first call: %q, x served %d", got, x.n.Load())
	}
	// x fails, and from then on answers for another cluster.
	x.sick.Store(1)
	if got := call(t, c); got != "503 Service Unavailable" {
		t.Fatalf("second call: %q; want x's 503", got)
	}
	x.peers.Store(otherCluster)
	served := x.n.Load()
	for i := range 4 {
		a.sick.Store(1) // each call on a fails once, moving the next one to x
		got := call(t, c)
		if got == "" {
			t.Fatalf("call %d failed", i)
		}
	}
	if x.n.Load() != served {
		t.Fatalf("x, now of another cluster, served %d calls", x.n.Load()-served)
	}
	rejections := 0
	for _, e := range *events {
		if e == "rejected "+x.addr() {
			rejections++
		}
	}
	if rejections != 1 {
		t.Fatalf("x reported %d times, want once: %v", rejections, *events)
	}
}

// TestMembershipChangeAccepted: the servers of one cluster change (one of
// three replaced) while every address has failed since it was checked:
// the addresses are still used.
func TestMembershipChangeAccepted(t *testing.T) {
	a, b := newAgent(t, cluster), newAgent(t, cluster)
	c, tr, _ := client(t, a.addr(), b.addr())
	if err := tr.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	a.sick.Store(1)
	b.sick.Store(1)
	call(t, c)
	call(t, c)
	changed := `["10.0.0.1:8300","10.0.0.2:8300","10.0.0.7:8300"]`
	a.peers.Store(changed)
	b.peers.Store(changed)
	for i := range 3 {
		if got := call(t, c); got != "200 OK" {
			t.Fatalf("call %d after the change: %q", i, got)
		}
	}
}

// TestSameCluster: the majority rule that tells one cluster whose
// membership changed from another cluster.
func TestSameCluster(t *testing.T) {
	abc := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name  string
		peers []string
		want  bool
	}{
		{"same", abc, true},
		{"one replaced", []string{"a", "b", "d"}, true},
		{"one removed", []string{"a", "b"}, true},
		{"one added", []string{"a", "b", "c", "d"}, true},
		{"wiped server alone", []string{"a"}, false},
		{"two replaced", []string{"a", "d", "e"}, false},
		{"other cluster", []string{"x", "y", "z"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameCluster(tc.peers, abc); got != tc.want {
				t.Fatalf("sameCluster(%v, %v) = %v", tc.peers, abc, got)
			}
		})
	}
}

// TestCancelledCallKeepsTheAddress: a call its caller cancels (a blocking
// query it no longer needs) does not move the calls to the next address.
func TestCancelledCallKeepsTheAddress(t *testing.T) {
	hold := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status/peers" {
			_, _ = w.Write([]byte(cluster))
			return
		}
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hold) })
	b := newAgent(t, cluster)
	c, tr, events := client(t, slow.Listener.Addr().String(), b.addr())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://consul/v1/kv/x?index=7&wait=60s", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the blocking query is waiting
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	if tr.Current() != slow.Listener.Addr().String() || len(*events) != 0 {
		t.Fatalf("a cancelled call moved the calls: current %s, events %v", tr.Current(), *events)
	}
}

// TestIdleAddressCheckedWhenCallsMoveToIt: an address that passed Verify
// and then carried no call becomes another cluster's (a server wiped and
// started anew) without failing anything; when calls move to it, it is
// checked again and not used.
func TestIdleAddressCheckedWhenCallsMoveToIt(t *testing.T) {
	a, x := newAgent(t, cluster), newAgent(t, cluster)
	c, tr, events := client(t, a.addr(), x.addr())
	if err := tr.Verify(context.Background()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := call(t, c); got != "200 OK" || a.n.Load() != 1 {
		t.Fatalf("first call: %q", got)
	}
	x.peers.Store(otherCluster) // idle: it never failed a call
	for i := range 3 {
		a.sick.Store(1) // a call on a fails once, moving the next one to x
		if got := call(t, c); got == "" {
			t.Fatalf("call %d failed", i)
		}
	}
	if x.n.Load() != 0 {
		t.Fatalf("x, now of another cluster, served %d calls", x.n.Load())
	}
	if !strings.Contains(strings.Join(*events, " "), "rejected "+x.addr()) {
		t.Fatalf("x not reported: %v", *events)
	}
}
