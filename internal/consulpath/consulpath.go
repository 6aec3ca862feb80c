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
// another lock, and two replicas on two clusters are two signers. So with
// several addresses:
//
//   - Verify, called before the first call, asks every address for its
//     Raft servers (/v1/status/peers, readable without a token); all that
//     answer must name the same servers, or it returns ErrOtherCluster
//     naming each group.
//   - An address is checked again before it carries a call whenever it
//     was not checked yet (it did not answer Verify), has failed since
//     (it could not be reached, dropped a call or answered 5xx), or calls
//     have just moved to it from another address: its Raft
//     servers must share a strict majority of its own list and of the
//     cluster's — as read again from an address checked before, when one
//     answers, else as last read — which allows the membership changes of
//     one cluster (a server replaced) and no other cluster, not even a
//     server wiped and started again alone. One that does not is not used
//     (ErrOtherCluster, OnReject); it is checked again the next time its
//     turn comes.
//
// A call cancelled by its caller (context.Canceled: a blocking query it
// no longer needs) says nothing of the address: calls stay where they are.
// A call whose caller's deadline passed is a call the address did not
// answer in time, and moves the next call on.
package consulpath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/hashicorp/consul/api"
)

// Transport is an http.RoundTripper over several Consul addresses.
type Transport struct {
	base   http.RoundTripper
	hosts  []string // host:port
	scheme string   // for Verify's reads: http (the default) or https

	mu  sync.Mutex
	cur int // the address to try first
	// OnSwitch, when set, is called (outside the lock) when calls move
	// from one address to another, with the reason.
	OnSwitch func(from, to, why string)
	// OnReject, when set, is called (outside the lock) when an address is
	// found to be of another cluster: once per address and Raft servers
	// it named.
	OnReject func(host string, err error)

	vmu      sync.Mutex     // serialises checks
	checked  map[int]bool   // addresses found to be of the cluster, not failed since
	reported map[int]string // the Raft servers each rejected address was reported with
	ref      []string       // the cluster's Raft servers, sorted, as last read
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
	return &Transport{base: base, hosts: append([]string(nil), hosts...),
		scheme: "http", checked: map[int]bool{}, reported: map[int]string{}}, nil
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
		if err := t.check(req.Context(), req.URL, idx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.hosts[idx], err))
			if cancelled(req) {
				return nil, errors.Join(errs...)
			}
			if notSent(err) || errors.Is(err, ErrOtherCluster) {
				continue
			}
			t.failed(idx)
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
				t.failed(idx)
				t.moveTo((idx+1)%len(t.hosts), start, resp.Status)
			} else {
				t.moveTo(idx, start, "")
			}
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.hosts[idx], err))
		if cancelled(req) {
			// The caller gave up (a blocking query it no longer needs):
			// nothing is known of the address; calls stay where they are.
			return nil, errors.Join(errs...)
		}
		t.failed(idx)
		if !notSent(err) || req.Context().Err() != nil {
			// Sent, or the caller's deadline passed: not again; the next
			// call starts at the next address.
			t.moveTo((idx+1)%len(t.hosts), start, err.Error())
			return nil, errors.Join(errs...)
		}
	}
	t.moveTo((start+1)%len(t.hosts), start, "no address could be reached")
	return nil, errors.Join(errs...)
}

// cancelled reports whether req's caller cancelled it (not a deadline).
func cancelled(req *http.Request) bool {
	return errors.Is(req.Context().Err(), context.Canceled)
}

// moveTo makes idx the first address, if the first one is still from (a
// concurrent call may have moved it already). The address calls move to
// is checked again before its next call: an address that carried no call
// for a while may have become another cluster's (a server wiped and
// started anew) without failing a call.
func (t *Transport) moveTo(idx, from int, why string) {
	t.mu.Lock()
	if t.cur != from || idx == from {
		t.mu.Unlock()
		return
	}
	t.cur = idx
	f := t.OnSwitch
	t.mu.Unlock()
	t.failed(idx)
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
	if cfg.Scheme != "" {
		t.scheme = cfg.Scheme
	}
	hc.Transport = t
	cfg.HttpClient, cfg.Address = hc, hosts[0]
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, t, nil
}
