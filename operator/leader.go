package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jonboulle/clockwork"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consulkey"
)

// LockReader reads a validator's lock holder; *election.Election is one.
type LockReader interface {
	// LockKey names the lock key, for messages.
	LockKey() string
	// Leader is the lock holder; nil when none.
	Leader(ctx context.Context) (*election.LeaderInfo, error)
}

// ShowLeader prints which replica holds validator id's lock to out (one
// line, or JSON), its age as clock tells it (nil: the real clock), and reports
// whether one does.
func ShowLeader(ctx context.Context, lock LockReader, id string, out io.Writer, clock clockwork.Clock, asJSON bool) (bool, error) {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	l, err := lock.Leader(ctx)
	if err != nil {
		return false, fmt.Errorf("read %s from Consul: %w", lock.LockKey(), err)
	}
	switch {
	case asJSON:
		v := map[string]any{"validator": id, "leader": nil}
		if l != nil {
			v["leader"] = map[string]any{"replica": l.ReplicaID, "hostname": l.Hostname, "since": l.Since, "session": l.Session}
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(out, string(b))
	case l != nil:
		fmt.Fprintf(out, "%s: replica %s on %s, since %s (%s ago)\n", id, l.ReplicaID, l.Hostname,
			l.Since.Format(time.RFC3339), clock.Now().Sub(l.Since).Round(time.Second))
	default:
		fmt.Fprintf(out, "%s: no active validator\n", id)
	}
	return l != nil, nil
}

// LockIDForLabel maps --validator-id to a lock id: the id itself when
// valguard/<id>/leader exists, else the lock whose value carries id as its
// label (a NEAR account_id, a CometBFT address in another case), else id.
func LockIDForLabel(ctx context.Context, client *api.Client, id string) (string, error) {
	q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	if pair, _, err := client.KV().Get(consulkey.Validator(id).Leader(), q); err != nil {
		return "", fmt.Errorf("read %s from Consul: %w", consulkey.Validator(id).Leader(), err)
	} else if pair != nil {
		return id, nil
	}
	pairs, _, err := client.KV().List(consulkey.Root(), q)
	if err != nil {
		return "", fmt.Errorf("list %s in Consul: %w", consulkey.Root(), err)
	}
	for _, p := range pairs {
		v, ok := consulkey.LeaderOf(p.Key)
		if !ok {
			continue
		}
		var info election.LeaderInfo
		if json.Unmarshal(p.Value, &info) == nil && strings.EqualFold(info.Label, id) {
			return string(v), nil
		}
	}
	return id, nil
}
