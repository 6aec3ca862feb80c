package election_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consulpath"
	"github.com/valguard/valguard/internal/consultest"
)

// TestRenewalMovesToAnotherServer: a leader given the addresses of three
// Consul servers keeps its lease when the server it talks to dies: its
// renewals go on through another server. With that one address alone the
// lease would end within the TTL.
func TestRenewalMovesToAnotherServer(t *testing.T) {
	t.Parallel()
	c := consultest.StartCluster(t, 3)
	lead, err := c.Leader(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	first := (lead + 1) % 3 // a follower: its death costs no Raft election
	hosts := []string{c.Servers[first].Addr, c.Servers[(first+1)%3].Addr, c.Servers[(first+2)%3].Addr}
	client, path, err := consulpath.NewClient(api.DefaultNonPooledConfig(), hosts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var switched []string
	path.OnSwitch = func(from, to, why string) {
		mu.Lock()
		switched = append(switched, from+"→"+to+": "+why)
		mu.Unlock()
	}
	switches := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(switched, "; ")
	}
	r := newReplica(t, client, validatorID(t), "a")
	s := r.session(t)
	mustAcquire(t, s, firstAcquire)
	if err := c.Servers[first].Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	hold := 2*ttl + 2*time.Second
	select {
	case <-s.Done():
		t.Fatalf("lease lost %s after the server died: %v (switches %s)", time.Since(killed).Round(time.Millisecond), s.Err(), switches())
	case <-time.After(hold):
	}
	if !s.Leader() || path.Current() == hosts[0] {
		t.Fatalf("after %s: leader %v, calls going to %s (switches %s)", hold, s.Leader(), path.Current(), switches())
	}
	if info := leader(t, r.e); info == nil || info.Session != s.ID() {
		t.Fatalf("lock holder %+v, want this session", info)
	}
	t.Logf("lease held %s past the death of %s; switches: %s", hold, hosts[0], switches())
}
