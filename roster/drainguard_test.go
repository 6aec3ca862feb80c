package roster

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consultest"
)

// TestSetDrainUnlessLeading: the drain mark is written only while the
// replica does not hold the lock, checked in the same transaction: a
// lock taken by the replica between the read and the write (here from
// inside holder, which runs between the two) is seen, and nothing is
// written.
func TestSetDrainUnlessLeading(t *testing.T) {
	agent := consultest.Start(t)
	client := agent.Client(t)
	session := func() string {
		id, _, err := client.Session().CreateNoChecks(&api.SessionEntry{TTL: "60s", Behavior: api.SessionBehaviorRelease, LockDelay: time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	take := func(key, replica, value string) {
		t.Helper()
		if value == "" {
			value = fmt.Sprintf(`{"replica":%q}`, replica)
		}
		if ok, _, err := client.KV().Acquire(&api.KVPair{Key: key, Value: []byte(value), Session: session()}, nil); err != nil || !ok {
			t.Fatalf("take %s for %s: %v %v", key, replica, ok, err)
		}
	}
	holderOf := func(pair *api.KVPair) (string, error) {
		if pair == nil || pair.Session == "" {
			return "", nil
		}
		var v struct {
			Replica string `json:"replica"`
		}
		if err := json.Unmarshal(pair.Value, &v); err != nil {
			return "", fmt.Errorf("unreadable lock value %q", pair.Value)
		}
		return v.Replica, nil
	}
	cases := []struct {
		name   string
		before func(lock string) // sets up the lock key
		during func(lock string) // runs once, between the read and the write
		marked bool
		err    error // nil: no error; errAny: any other error
	}{
		{"lock absent", func(string) {}, nil, true, nil},
		{"another replica leads", func(l string) { take(l, "a", "") }, nil, true, nil},
		{"the replica leads", func(l string) { take(l, "b", "") }, nil, false, ErrLeading},
		{"the replica takes the lock during the write", func(string) {}, func(l string) { take(l, "b", "") }, false, ErrLeading},
		{"the lock moves to another replica during the write", func(string) {}, func(l string) { take(l, "a", "") }, true, nil},
		{"unreadable lock value", func(l string) { take(l, "", "garbage") }, nil, false, errAny},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Config{Client: client, ValidatorID: fmt.Sprintf("guard%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			lock := r.keys.Leader()
			tc.before(lock)
			during := tc.during
			holder := func(pair *api.KVPair) (string, error) {
				who, err := holderOf(pair)
				if during != nil {
					during(lock)
					during = nil
				}
				return who, err
			}
			err = r.SetDrainUnlessLeading(t.Context(), "b", Drain{Reason: "test"}, lock, holder)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("SetDrainUnlessLeading: %v", err)
			case tc.err == errAny && err == nil:
				t.Fatal("SetDrainUnlessLeading succeeded, want an error")
			case tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Fatalf("SetDrainUnlessLeading: %v, want %v", err, tc.err)
			}
			drains, err := r.Drains(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := drains["b"]; ok != tc.marked {
				t.Fatalf("b drained: %v, want %v (error %v)", ok, tc.marked, err)
			}
		})
	}
}

// errAny stands for any error in a table.
var errAny = errors.New("any error")
