package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/roster"
)

// staleAfter: a report older than this, from a replica whose session
// still holds its key, counts as not reporting (a hung valguard).
const staleAfter = 3 * roster.DefaultHeartbeat

// fleetFlags name the validator, as active-validator does.
func fleetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "the validator's id in Consul", EnvVars: env("validator-id")},
		&cli.PathFlag{Name: "validator-key", Usage: "derive the validator id from this key (CometBFT address or NEAR account_id)", EnvVars: env("validator-key")},
	}
}

// fleetCtx is what the operator commands work with: the validator's
// election (read only) and roster.
type fleetCtx struct {
	id  string
	el  *election.Election
	ro  *roster.Roster
	url string
}

// openFleet finds the validator's lock id as active-validator does and
// opens its election and roster.
func openFleet(c *cli.Context) (*fleetCtx, error) {
	printDeprecatedEnv(c)
	id := c.String("validator-id")
	if id == "" {
		var err error
		if id, err = validatorIDFromKey(c); err != nil {
			return nil, err
		}
	}
	client, err := consulClient(c)
	if err != nil {
		return nil, err
	}
	f := &fleetCtx{url: c.String("consul-url")}
	if c.IsSet("validator-id") {
		ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout"))
		defer cancel()
		if id, err = lockIDForLabel(ctx, client, id); err != nil {
			return nil, f.hint(err)
		}
	}
	f.id = id
	if f.el, err = election.New(election.Config{Client: client, ValidatorID: id, ReplicaID: "operator", CallTimeout: c.Duration("consul-timeout")}); err != nil {
		return nil, err
	}
	if f.ro, err = roster.New(roster.Config{Client: client, ValidatorID: id, CallTimeout: c.Duration("consul-timeout")}); err != nil {
		return nil, err
	}
	return f, nil
}

// hint adds the likely fix to a Consul error.
func (f *fleetCtx) hint(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var nerr net.Error
	var uerr *url.Error
	switch {
	case strings.Contains(msg, "403") || strings.Contains(msg, "ACL not found") || strings.Contains(msg, "Permission denied"):
		return fmt.Errorf("%w\nConsul refused the token: give --consul-token-file (or CONSUL_HTTP_TOKEN) a token that may read (for drain, undrain and handover also write) keys under valguard/", err)
	case errors.As(err, &nerr), errors.As(err, &uerr), strings.Contains(msg, "connection refused"):
		return fmt.Errorf("%w\nConsul does not answer at %s: check --consul-url (or CONSUL_HTTP_ADDR) and that the Consul agent runs", err, f.url)
	}
	return err
}

// view is one consistent look at the validator: the lock holder, every
// replica's report, the drain marks and the hand-over request.
type view struct {
	at       time.Time
	leader   *election.LeaderInfo
	entries  []roster.Entry
	drains   map[string]roster.Drain
	handover *roster.Handover
	hoIndex  uint64
	best     int64
}

func (f *fleetCtx) look(ctx context.Context) (*view, error) {
	v := &view{at: time.Now()}
	var err error
	if v.leader, err = f.el.Leader(ctx); err != nil {
		return nil, f.hint(fmt.Errorf("read %s: %w", f.el.LockKey(), err))
	}
	if v.entries, err = f.ro.Reports(ctx); err != nil {
		return nil, f.hint(err)
	}
	if v.drains, err = f.ro.Drains(ctx); err != nil {
		return nil, f.hint(err)
	}
	if v.handover, v.hoIndex, err = f.ro.Handover(ctx); err != nil {
		return nil, f.hint(err)
	}
	for _, e := range v.entries {
		if v.reporting(e) && e.Height > v.best {
			v.best = e.Height
		}
	}
	return v, nil
}

// leaderID is the lock holder's replica id; "" when none.
func (v *view) leaderID() string {
	if v.leader == nil {
		return ""
	}
	return v.leader.ReplicaID
}

// lockHolder names the replica whose session holds the lock key read as
// pair; "" when no session does. A held key whose value cannot be read
// names no known replica: an error, so that nothing is decided on it.
func lockHolder(pair *api.KVPair) (string, error) {
	info, err := election.HolderOf(pair)
	if err != nil {
		return "", fmt.Errorf("%w: the leader is unknown, nothing changed (valguard status)", err)
	}
	if info == nil {
		return "", nil
	}
	return info.ReplicaID, nil
}

// reporting: the replica's session holds its key and its last report is
// recent.
func (v *view) reporting(e roster.Entry) bool {
	return e.Alive && e.Unreadable == "" && v.at.Sub(e.Updated) < staleAfter
}

func (v *view) entry(replica string) (roster.Entry, bool) {
	i := slices.IndexFunc(v.entries, func(e roster.Entry) bool { return e.Replica == replica })
	if i < 0 {
		return roster.Entry{}, false
	}
	return v.entries[i], true
}

func (v *view) drained(replica string) bool {
	_, ok := v.drains[replica]
	return ok
}

func (v *view) lag(e roster.Entry) int64 { return max(v.best-e.Height, 0) }

// notStandby says why e is not a synced standby within maxLag blocks of
// the best replica; "" when it is one.
func (v *view) notStandby(e roster.Entry, maxLag int64) string {
	switch {
	case e.Unreadable != "":
		return "its report is unreadable: " + e.Unreadable
	case !e.Alive:
		return fmt.Sprintf("it stopped reporting (last report %s ago, state then %s): its valguard is not running", ago(v.at, e.Updated), e.State)
	case !v.reporting(e):
		return fmt.Sprintf("its last report is %s old: its valguard is hung or cut off from Consul", ago(v.at, e.Updated))
	case e.Replica == v.leaderID():
		return "it is the leader"
	case v.drained(e.Replica):
		return "it is drained (valguard undrain " + e.Replica + ")"
	case e.CatchingUp || !e.Synced:
		return fmt.Sprintf("its node is not synced (state %s, height %d, %d behind)", e.State, e.Height, v.lag(e))
	case v.lag(e) > maxLag:
		return fmt.Sprintf("it lags %d blocks behind the best replica (more than %d)", v.lag(e), maxLag)
	case e.State != "Voting":
		why := ""
		if e.Hold != "" {
			why = ": " + e.Hold
		}
		return fmt.Sprintf("it is %s, not Voting%s", e.State, why)
	}
	return ""
}

// standbys are the synced standbys within maxLag.
func (v *view) standbys(maxLag int64) []string {
	var out []string
	for _, e := range v.entries {
		if v.notStandby(e, maxLag) == "" {
			out = append(out, e.Replica)
		}
	}
	return out
}

// whyNone lists, for an error, why no replica is a synced standby.
func (v *view) whyNone(maxLag int64) string {
	var lines []string
	for _, e := range v.entries {
		if e.Replica == v.leaderID() {
			continue
		}
		lines = append(lines, fmt.Sprintf("  %s: %s", e.Replica, v.notStandby(e, maxLag)))
	}
	if len(lines) == 0 {
		return "  no other replica has ever reported"
	}
	return strings.Join(lines, "\n")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(100 * time.Millisecond).String()
}

// knownReplicas lists the replica ids for an error message.
func (v *view) knownReplicas() string {
	var ids []string
	for _, e := range v.entries {
		ids = append(ids, e.Replica)
	}
	if len(ids) == 0 {
		return "none has reported yet"
	}
	return strings.Join(ids, ", ")
}
