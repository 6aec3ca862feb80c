package consulpath

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrOtherCluster: an address answered for another Consul cluster or
// datacenter than the addresses before it.
var ErrOtherCluster = errors.New("address of another Consul cluster or datacenter")

// failed marks address idx as to be checked again before its next call.
func (t *Transport) failed(idx int) {
	if len(t.hosts) == 1 {
		return
	}
	t.vmu.Lock()
	delete(t.checked, idx)
	t.vmu.Unlock()
}

// Verify asks every address for its Raft servers and returns an error
// wrapping ErrOtherCluster, naming each group, when the addresses that
// answer do not all name the same ones. A disagreement is read again up to
// twice, half a second apart (a cluster whose membership is changing
// settles), within ctx. Addresses that do not answer are left to be
// checked before their first call. With one address it does nothing.
func (t *Transport) Verify(ctx context.Context) error {
	if len(t.hosts) == 1 {
		return nil
	}
	var groups map[string][]int
	for round := 0; ; round++ {
		sets := make([][]string, len(t.hosts))
		var wg sync.WaitGroup
		for i := range t.hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := &url.URL{Scheme: t.scheme, Host: t.hosts[i]}
				if peers, err := t.peersOf(ctx, u, i); err == nil {
					sets[i] = peers
				}
			}()
		}
		wg.Wait()
		groups = map[string][]int{}
		for i, p := range sets {
			if p != nil {
				k := strings.Join(p, ",")
				groups[k] = append(groups[k], i)
			}
		}
		if len(groups) <= 1 {
			t.vmu.Lock()
			defer t.vmu.Unlock()
			for k, idx := range groups {
				t.ref = strings.Split(k, ",")
				for _, i := range idx {
					t.checked[i] = true
				}
			}
			return nil
		}
		if round == 2 || sleepCtx(ctx, 500*time.Millisecond) != nil {
			break
		}
	}
	var parts []string
	for k, idx := range groups {
		hosts := make([]string, len(idx))
		for j, i := range idx {
			hosts[j] = t.hosts[i]
		}
		parts = append(parts, fmt.Sprintf("%s name the Raft servers [%s]", strings.Join(hosts, ","), strings.ReplaceAll(k, ",", " ")))
	}
	sort.Strings(parts)
	return fmt.Errorf("%w: the addresses are of %d clusters: %s; give --consul-url only agents and servers of one datacenter, "+
		"whose /v1/status/peers all name the same servers", ErrOtherCluster, len(groups), strings.Join(parts, "; "))
}

// peersOf reads /v1/status/peers of address idx, sorted. base gives the
// scheme.
func (t *Transport) peersOf(ctx context.Context, base *url.URL, idx int) ([]string, error) {
	u := *base
	u.Host, u.Path, u.RawPath, u.RawQuery, u.User = t.hosts[idx], "/v1/status/peers", "", "", nil
	preq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.base.RoundTrip(preq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("check the address: /v1/status/peers answered %s", resp.Status)
	}
	var peers []string
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&peers); err != nil || len(peers) == 0 {
		return nil, fmt.Errorf("check the address: /v1/status/peers: no Raft servers named (%v)", err)
	}
	sort.Strings(peers)
	return slices.Compact(peers), nil
}

// check makes sure, with several addresses, that address idx belongs to
// the cluster: unless it was checked and has not failed since, it must
// name the same Raft servers as the cluster (read again from an address
// checked before when one answers, else as last read; the first address
// read sets them when Verify was not called). An error that is not
// ErrOtherCluster means the address could not be asked.
func (t *Transport) check(ctx context.Context, base *url.URL, idx int) error {
	if len(t.hosts) == 1 {
		return nil
	}
	t.vmu.Lock()
	report, err := t.checkLocked(ctx, base, idx)
	f := t.OnReject
	t.vmu.Unlock()
	if report && f != nil {
		f(t.hosts[idx], err)
	}
	return err
}

// checkLocked is check under vmu; report: a rejection not reported yet.
func (t *Transport) checkLocked(ctx context.Context, base *url.URL, idx int) (report bool, err error) {
	if t.checked[idx] {
		return false, nil
	}
	peers, err := t.peersOf(ctx, base, idx)
	if err != nil {
		return false, err
	}
	if t.ref == nil || sameCluster(peers, t.ref) {
		t.ref, t.checked[idx] = peers, true
		return false, nil
	}
	for j := range t.hosts {
		if j == idx || !t.checked[j] {
			continue
		}
		if ref, err := t.peersOf(ctx, base, j); err == nil {
			t.ref = ref
			break
		}
	}
	if sameCluster(peers, t.ref) {
		t.ref, t.checked[idx] = peers, true
		return false, nil
	}
	err = fmt.Errorf("%w: it names the Raft servers %v, the cluster of the other addresses %v; "+
		"give --consul-url only agents and servers of one datacenter", ErrOtherCluster, peers, t.ref)
	k := strings.Join(peers, ",")
	report = t.reported[idx] != k
	t.reported[idx] = k
	return report, err
}

// sameCluster reports whether two lists of Raft servers are of one
// cluster whose membership may have changed between the two reads: they
// share a strict majority of each. Two clusters cannot (a server is in one
// cluster), and a server wiped and started again as a cluster of its own
// names itself alone, a minority of the servers it left.
func sameCluster(a, b []string) bool {
	shared := 0
	for _, p := range a {
		if slices.Contains(b, p) {
			shared++
		}
	}
	return 2*shared > len(a) && 2*shared > len(b)
}

// sleepCtx waits d or until ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
