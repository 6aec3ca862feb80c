package election

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestUncleanReason(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	ttl := 10 * time.Second
	value := func(info LeaderInfo) *api.KVPair {
		b, err := json.Marshal(info)
		if err != nil {
			t.Fatal(err)
		}
		return &api.KVPair{Key: "k", Value: b}
	}
	released := func(at time.Time) *api.KVPair {
		return value(LeaderInfo{ReplicaID: "a", Since: now.Add(-time.Hour), Released: true, ReleasedAt: at})
	}
	for _, tc := range []struct {
		name  string
		seen  *api.KVPair
		clean bool
		want  string // in the reason
	}{
		{"absent", nil, false, "absent"},
		{"unreadable", &api.KVPair{Key: "k", Value: []byte("not json")}, false, "unreadable"},
		{"no marker (invalidated)", value(LeaderInfo{ReplicaID: "a", Since: now}), false, "no clean-release marker"},
		{"fresh marker", released(now.Add(-2 * time.Second)), true, ""},
		{"marker just now", released(now), true, ""},
		{"marker a TTL old", released(now.Add(-ttl)), true, ""},
		{"stale marker", released(now.Add(-ttl - time.Millisecond)), false, "more than the TTL"},
		{"marker from a snapshot", released(now.Add(-time.Hour)), false, "1h0m0s old"},
		{"marker within clock skew", released(now.Add(MaxClockSkew)), true, ""},
		{"marker in the future", released(now.Add(MaxClockSkew + time.Millisecond)), false, "in the future"},
		{"released without a time", value(LeaderInfo{ReplicaID: "a", Released: true}), false, "more than the TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := uncleanReason(tc.seen, now, ttl)
			if (got == "") != tc.clean {
				t.Fatalf("uncleanReason = %q, want clean %v", got, tc.clean)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("reason %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestReleaseValueMarker(t *testing.T) {
	t.Parallel()
	var errs atomic.Int32
	e := unreachableElection(t, &errs)
	e.cfg.PublicKey, e.cfg.Label = "ed25519:AAAA", "val"
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	e.cfg.Now = func() time.Time { return at }
	s := &Session{e: e}
	orig, _ := json.Marshal(e.info(at.Add(-time.Minute)))
	for _, clean := range []bool{true, false} {
		var info LeaderInfo
		if err := json.Unmarshal(s.releaseValue(orig, clean), &info); err != nil {
			t.Fatal(err)
		}
		if info.Released != clean || (clean && !info.ReleasedAt.Equal(at)) || (!clean && !info.ReleasedAt.IsZero()) {
			t.Errorf("clean %v: released %v at %s", clean, info.Released, info.ReleasedAt)
		}
		if info.ReplicaID != "a" || info.PublicKey != "ed25519:AAAA" || info.Label != "val" || !info.Since.Equal(at.Add(-time.Minute)) {
			t.Errorf("clean %v: value %+v lost the holder's fields", clean, info)
		}
	}
}
