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
// Every Consul server of a datacenter serves the same sessions and keys
// (writes go through the Raft leader; valguard's sessions have no node
// checks), so any address will do.
package consulpath

import (
	"errors"
	"fmt"
	"net"
	"net/http"
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
}

// New returns a Transport over hosts (host:port, at least one) through
// base.
func New(base http.RoundTripper, hosts []string) (*Transport, error) {
	if len(hosts) == 0 {
		return nil, errors.New("consulpath: no Consul address")
	}
	if base == nil {
		return nil, errors.New("consulpath: no base transport")
	}
	return &Transport{base: base, hosts: append([]string(nil), hosts...)}, nil
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
	for i := range t.hosts {
		idx := (start + i) % len(t.hosts)
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = t.hosts[idx], t.hosts[idx]
		if i > 0 && req.Body != nil {
			if req.GetBody == nil {
				break // the body cannot be sent again
			}
			body, err := req.GetBody()
			if err != nil {
				break
			}
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		if err == nil {
			t.moveTo(idx, start, "")
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
