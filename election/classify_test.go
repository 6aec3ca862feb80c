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

// The unclean-takeover wait runs from the first sighting of the key free in
// one unchanged state; any other state in between starts it anew.
func TestFreeSighting(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	free := func(index uint64) *api.KVPair { return &api.KVPair{Key: "k", ModifyIndex: index} }
	held := func(index uint64) *api.KVPair { return &api.KVPair{Key: "k", ModifyIndex: index, Session: "s"} }
	type read struct {
		pair  *api.KVPair
		at    int
		index uint64 // the read's index (X-Consul-Index)
	}
	cases := []struct {
		name  string
		reads []read
		since int
	}{
		{"absent throughout", []read{{nil, 1, 5}, {nil, 4, 5}, {nil, 9, 5}}, 1},
		{"absent, created and deleted unseen in between", []read{{nil, 1, 5}, {nil, 4, 9}}, 4},
		{"free with one index throughout", []read{{free(7), 2, 7}, {free(7), 5, 7}}, 2},
		{"held in between", []read{{nil, 1, 5}, {held(8), 3, 8}, {nil, 6, 9}}, 6},
		{"free with another index", []read{{free(7), 1, 7}, {free(9), 4, 9}}, 4},
		{"absent, then free", []read{{nil, 1, 5}, {free(9), 5, 9}}, 5},
		{"free, then absent", []read{{free(9), 1, 9}, {nil, 5, 10}}, 5},
		{"free, held, free with the same index", []read{{free(7), 1, 7}, {held(8), 2, 8}, {free(7), 3, 8}}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f freeSighting
			for _, r := range tc.reads {
				f.saw(r.pair, r.index, at(r.at))
			}
			if !f.since.Equal(at(tc.since)) {
				t.Fatalf("since = %s, want %s", f.since.Sub(t0), at(tc.since).Sub(t0))
			}
		})
	}
}
