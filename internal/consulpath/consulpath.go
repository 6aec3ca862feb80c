// Package consulpath spreads a Consul client's calls over several Consul
// addresses (servers, or client agents), so that one address that stops
// answering does not cost the lease.
//
// A call goes to the address that answered last. When it cannot even
// connect there (a dial error: nothing was sent), it goes on to the next
// address at once. When it fails after it was sent (a timeout, a reset),
// its fate is unknown, so it is not sent again — the caller decides, as it
// does for any failed call — but the next call starts at the next
// address. A session renewal, a lock acquisition or a fence is therefore
// never sent twice by this package, and a renewal that failed on one
// server is retried by the election on another one.
//
// An answer of 5xx or 429 (an agent that lost its servers, a server
// without a leader, a rate limit) is returned as it is, and the next call
// starts at the next address too.
//
// Every Consul server of a datacenter serves the same sessions and keys
// (writes go through the Raft leader; valguard's sessions have no node
// checks), so any address of that datacenter will do — and an address of
// another cluster or datacenter must never be used: a lock there is
// another lock. So with several addresses, each one is checked before the
// first call it carries: its /v1/status/peers (the Raft servers, readable
// without a token) must share a server with the addresses already
// checked. An address that does not is never used (ErrOtherCluster).
package consulpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"

	"github.com/hashicorp/consul/api"
)

// Transport is an http.RoundTripper over several Consul addresses.
type Transport struct {
	base  http.RoundTripper
	hosts []string // host:port

	mu  sync.Mutex
	cur int // the address to try first
	// OnSwitch, when set, is called (outside the lock) when calls move
	// from one address to another, with the reason.
	OnSwitch func(from, to, why string)
	// OnReject, when set, is called once for an address found to be of
	// another cluster, with the reason.
	OnReject func(host string, err error)

	vmu      sync.Mutex      // serialises checks
	checked  map[int]bool    // addresses found to be of the cluster
	rejected map[int]error   // addresses found to be of another one
	peers    map[string]bool // the Raft servers the checked addresses named
}

// ErrOtherCluster: an address answered for another Consul cluster or
// datacenter than the addresses before it.
var ErrOtherCluster = errors.New("address of another Consul cluster or datacenter")

// New returns a Transport over hosts (host:port, at least one) through
// base.
func New(base http.RoundTripper, hosts []string) (*Transport, error) {
	if len(hosts) == 0 {
		return nil, errors.New("consulpath: no Consul address")
	}
	if base == nil {
		return nil, errors.New("consulpath: no base transport")
	}
	return &Transport{base: base, hosts: append([]string(nil), hosts...),
		checked: map[int]bool{}, rejected: map[int]error{}, peers: map[string]bool{}}, nil
}

// Current is the address calls go to first now.
func (t *Transport) Current() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hosts[t.cur]
}

// RoundTrip sends req to the current address, and to the next ones while
// a connection cannot be made.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	start := t.cur
	t.mu.Unlock()
	var errs []error
	sent := false
	for i := range t.hosts {
		idx := (start + i) % len(t.hosts)
		if err := t.check(req, idx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.hosts[idx], err))
			if notSent(err) || errors.Is(err, ErrOtherCluster) {
				continue
			}
			t.moveTo((idx+1)%len(t.hosts), start, err.Error())
			return nil, errors.Join(errs...)
		}
		if sent && req.Body != nil && req.GetBody == nil {
			break // the body was consumed by an earlier attempt
		}
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = t.hosts[idx], t.hosts[idx]
		if sent && req.Body != nil {
			body, err := req.GetBody()
			if err != nil {
				break
			}
			r.Body = body
		}
		sent = true
		resp, err := t.base.RoundTrip(r)
		if err == nil {
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
				t.moveTo((idx+1)%len(t.hosts), start, resp.Status)
			} else {
				t.moveTo(idx, start, "")
			}
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.hosts[idx], err))
		if !notSent(err) || req.Context().Err() != nil {
			// Sent, or the caller gave up: not again; the next call
			// starts at the next address.
			t.moveTo((idx+1)%len(t.hosts), start, err.Error())
			return nil, errors.Join(errs...)
		}
	}
	t.moveTo((start+1)%len(t.hosts), start, "no address could be reached")
	return nil, errors.Join(errs...)
}

// check makes sure, with several addresses, that address idx belongs to
// the cluster of the addresses checked before it (their Raft servers
// overlap); the first one checked sets the cluster. A dial error leaves
// it unchecked; ErrOtherCluster rejects it for good.
func (t *Transport) check(req *http.Request, idx int) error {
	if len(t.hosts) == 1 {
		return nil
	}
	t.vmu.Lock()
	defer t.vmu.Unlock()
	if t.checked[idx] {
		return nil
	}
	if err := t.rejected[idx]; err != nil {
		return err
	}
	u := *req.URL
	u.Host, u.Path, u.RawPath, u.RawQuery = t.hosts[idx], "/v1/status/peers", "", ""
	preq, err := http.NewRequestWithContext(req.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := t.base.RoundTrip(preq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var peers []string
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("check the address: /v1/status/peers answered %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&peers); err != nil || len(peers) == 0 {
		return fmt.Errorf("check the address: /v1/status/peers: no Raft servers named (%v)", err)
	}
	shared := len(t.peers) == 0
	for _, p := range peers {
		shared = shared || t.peers[p]
	}
	if !shared {
		known := make([]string, 0, len(t.peers))
		for p := range t.peers {
			known = append(known, p)
		}
		sort.Strings(known)
		err := fmt.Errorf("%w: its Raft servers %v share none with %v, those of the addresses before it; "+
			"give --consul-url only agents and servers of one datacenter", ErrOtherCluster, peers, known)
		t.rejected[idx] = err
		if t.OnReject != nil {
			t.OnReject(t.hosts[idx], err)
		}
		return err
	}
	for _, p := range peers {
		t.peers[p] = true
	}
	t.checked[idx] = true
	return nil
}

// moveTo makes idx the first address, if the first one is still from (a
// concurrent call may have moved it already).
func (t *Transport) moveTo(idx, from int, why string) {
	t.mu.Lock()
	if t.cur != from || idx == from {
		t.mu.Unlock()
		return
	}
	t.cur = idx
	f := t.OnSwitch
	t.mu.Unlock()
	if f != nil {
		if why == "" {
			why = "it answered"
		}
		f(t.hosts[from], t.hosts[idx], why)
	}
}

// notSent reports whether err came before anything of the request was
// written: the connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// NewClient is api.NewClient(cfg) with its calls spread over hosts
// (host:port, at least one) by a Transport, which it also returns. cfg's
// Address is set to the first host; its Transport and TLSConfig are used
// for every host.
func NewClient(cfg *api.Config, hosts []string) (*api.Client, *Transport, error) {
	base := cfg.Transport
	if base == nil {
		base = api.DefaultNonPooledConfig().Transport
	}
	hc, err := api.NewHttpClient(base, cfg.TLSConfig)
	if err != nil {
		return nil, nil, err
	}
	t, err := New(hc.Transport, hosts)
	if err != nil {
		return nil, nil, err
	}
	hc.Transport = t
	cfg.HttpClient, cfg.Address = hc, hosts[0]
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, t, nil
}
