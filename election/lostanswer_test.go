package election_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

// What takeLoser does with the next take of the lock key.
const (
	passTake    int32 = iota // forward it and its answer
	holdAnswer               // forward it, keep its answer until the client gives up
	resetAnswer              // forward it, then reset the connection instead of answering
	dropTake                 // reset the connection without forwarding it
)

// takeLoser is an HTTP proxy in front of a Consul agent that forwards
// every request, but can lose the next take of a lock (PUT
// /v1/kv/<key>?acquire=<session>) in one of the ways above. Consul's
// answer to a take it forwarded and then lost goes to applied.
type takeLoser struct {
	target  *url.URL
	rp      *httputil.ReverseProxy
	mode    atomic.Int32
	takes   atomic.Int32
	applied chan string
}

// newTakeLoser starts a takeLoser in front of the agent at addr and
// returns it with its own address.
func newTakeLoser(t *testing.T, addr string) (*takeLoser, string) {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: addr}
	l := &takeLoser{target: target, rp: httputil.NewSingleHostReverseProxy(target), applied: make(chan string, 4)}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return l, strings.TrimPrefix(srv.URL, "http://")
}

func (l *takeLoser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || !r.URL.Query().Has("acquire") {
		l.rp.ServeHTTP(w, r)
		return
	}
	l.takes.Add(1)
	mode := l.mode.Swap(passTake)
	if mode == passTake {
		l.rp.ServeHTTP(w, r)
		return
	}
	if mode != dropTake {
		body, _ := io.ReadAll(r.Body)
		out, err := http.NewRequestWithContext(context.Background(), http.MethodPut, l.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		answer := "no answer: "
		if resp, err := http.DefaultClient.Do(out); err != nil {
			answer += err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answer = strings.TrimSpace(string(b))
		}
		l.applied <- answer
	}
	if mode == holdAnswer {
		<-r.Context().Done() // the client gave up and closed the connection
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not an orderly close
	}
	_ = conn.Close()
}

// Item 6 of "Fail closed everywhere": a take whose answer was lost is
// recognised by a consistent read of the lock key right away, not a TTL
// later. Consul applies the take, the proxy loses its answer (withheld
// until the call times out, or the connection reset), and Acquire must
// return well within one TTL, holding the lock, with no unclean-takeover
// wait after a clean start (an absent key in signer mode, a fresh
// clean-release marker in the restart mode). A take that never reached
// Consul is retried, never assumed.
func TestLostTakeAnswerIsReadBack(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	const callTimeout = time.Second
	cases := []struct {
		name   string
		fenced bool
		mode   int32
		// released: the key starts free with a fresh clean-release
		// marker; else it is absent.
		released bool
		within   time.Duration
	}{
		{"signer mode, answer withheld", true, holdAnswer, false, callTimeout + 2*time.Second},
		{"signer mode, connection reset after the take", true, resetAnswer, false, 2 * time.Second},
		{"restart mode, answer withheld after a clean release", false, holdAnswer, true, callTimeout + 2*time.Second},
		{"signer mode, take never reached Consul", true, dropTake, false, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			loser, addr := newTakeLoser(t, agent.Addr)
			client := consultest.NewClient(t, addr)
			v := validatorID(t)
			r := newReplica(t, client, v, "b", func(c *election.Config) {
				c.CallTimeout = callTimeout
				if tc.fenced {
					c.Fenced, c.LockDelay = true, 0
				}
			})
			if tc.released {
				value, _ := json.Marshal(election.LeaderInfo{ReplicaID: "a", Hostname: "host-a", Since: time.Now().Add(-time.Minute), Released: true, ReleasedAt: time.Now()})
				if _, err := agent.Client(t).KV().Put(&api.KVPair{Key: r.e.LockKey(), Value: value}, nil); err != nil {
					t.Fatalf("write a released lock key: %v", err)
				}
			}
			s := r.session(t)
			loser.mode.Store(tc.mode)
			start := time.Now()
			res := waitResult(t, acquireAsync(context.Background(), s), tc.within,
				"take whose answer was lost (on the code before the fix it is recognised only after the unclean-takeover wait, one TTL)")
			took := res.at.Sub(start)
			t.Logf("Acquire returned %v after %s (%d takes sent)", res.err, took.Round(time.Millisecond), loser.takes.Load())
			if res.err != nil {
				t.Fatalf("Acquire: %v", res.err)
			}
			if tc.mode != dropTake {
				select {
				case answer := <-loser.applied:
					if answer != "true" {
						t.Fatalf("Consul answered the lost take %q, want true: the test proves nothing", answer)
					}
				default:
					t.Fatal("the take was not forwarded to Consul")
				}
				if n := loser.takes.Load(); n != 1 {
					t.Errorf("%d takes sent, want 1: the lost one was applied and must be read back, not retried", n)
				}
			} else if n := loser.takes.Load(); n < 2 {
				t.Errorf("%d takes sent: a take that never reached Consul must be retried, not assumed", n)
			}
			pair, info := lockPair(t, agent.Client(t), r.e)
			if pair == nil || pair.Session != s.ID() || info.ReplicaID != "b" {
				t.Fatalf("lock key %+v (%+v), want held by b's session %s", pair, info, s.ID())
			}
			if !s.Leader() {
				t.Error("Leader() = false after Acquire returned nil")
			}
			if n := r.unclean.Load(); n != 0 {
				_, why := r.lastUnclean()
				t.Errorf("OnUncleanTakeover called %d times (%s): the take replaced a clean key", n, why)
			}
		})
	}
}
