package roster

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consulkey"
)

// Defaults.
const (
	DefaultCallTimeout = 2 * time.Second
	// DefaultTTL is the report session's TTL: a dead replica is shown as
	// no longer reporting within 2×TTL (Consul's bound).
	DefaultTTL = 10 * time.Second
	// DefaultHeartbeat is the longest time between two reports.
	DefaultHeartbeat = 5 * time.Second
	// reportLockDelay is the report session's lock-delay: a replica that
	// restarts after a crash re-takes its own key at once.
	reportLockDelay = time.Millisecond
)

// ErrNotDrained: undrain of a replica that is not drained.
var ErrNotDrained = errors.New("replica is not drained")

// ErrLeading: the replica to drain holds the lock (SetDrainUnlessLeading).
var ErrLeading = errors.New("the replica holds the lock")

// ErrRequestChanged: the hand-over request changed under a
// check-and-set (another operator, or its window ended).
var ErrRequestChanged = errors.New("the hand-over request changed meanwhile")

// Config names one validator's roster as seen by one client.
type Config struct {
	// Client talks to Consul. Required.
	Client *api.Client
	// ValidatorID is the lock id: the keys are under valguard/<id>/.
	// Required, no '/'.
	ValidatorID string
	// ReplicaID is this replica (empty for a command-line reader).
	ReplicaID string
	// CallTimeout bounds every Consul call (a blocking query: its wait
	// plus this). Default DefaultCallTimeout.
	CallTimeout time.Duration
	// TTL of the report session; default DefaultTTL, at least 10 s.
	TTL time.Duration
	// Heartbeat is the longest time between two reports; default
	// DefaultHeartbeat, below the TTL.
	Heartbeat time.Duration
	// Now is the wall clock; default time.Now.
	Now func() time.Time
	// Instance names this run's place, e.g. host name and node home; it
	// goes into the report session's name. A session of the same name
	// that still holds the report key belongs to an earlier run of this
	// replica in the same place — dead, when the caller holds that place
	// exclusively (valguard's home lock) — and is destroyed, so a
	// restarted replica reports at once instead of after the old
	// session's expiry. Empty: such a session is waited out.
	Instance string
}

// Roster is one validator's roster. Safe for concurrent use.
type Roster struct {
	cfg  Config
	keys consulkey.Validator
}

// New checks cfg and fills in its defaults.
func New(cfg Config) (*Roster, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("roster config: Client is required")
	case cfg.ValidatorID == "" || strings.Contains(cfg.ValidatorID, "/"):
		return nil, fmt.Errorf("roster config: ValidatorID %q must be set and have no '/'", cfg.ValidatorID)
	case strings.Contains(cfg.ReplicaID, "/"):
		return nil, fmt.Errorf("roster config: ReplicaID %q must not contain '/'", cfg.ReplicaID)
	case cfg.CallTimeout < 0 || cfg.TTL < 0 || cfg.Heartbeat < 0:
		return nil, errors.New("roster config: durations must not be negative")
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.TTL < 10*time.Second {
		return nil, fmt.Errorf("roster config: TTL %s is below the 10s Consul accepts", cfg.TTL)
	}
	if cfg.Heartbeat >= cfg.TTL {
		return nil, fmt.Errorf("roster config: Heartbeat %s must be below the TTL %s", cfg.Heartbeat, cfg.TTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Roster{cfg: cfg, keys: consulkey.Validator(cfg.ValidatorID)}, nil
}

// ReportKey is the key of replica's report.
func (r *Roster) ReportKey(replica string) string { return r.keys.Report(replica) }

// DrainKey is the key that marks replica drained.
func (r *Roster) DrainKey(replica string) string { return r.keys.Drain(replica) }

// HandoverKey is the key of the hand-over request.
func (r *Roster) HandoverKey() string { return r.keys.Handover() }

// ControlPrefix is the prefix of the operator's requests (drain marks,
// hand-over request), which every replica must be able to read.
func (r *Roster) ControlPrefix() string { return r.controlPrefix() }

func (r *Roster) controlPrefix() string { return r.keys.Control() }
func (r *Roster) reportPrefix() string  { return r.keys.Reports() }

func (r *Roster) now() time.Time { return r.cfg.Now() }

// ErrNoReadAccess: Consul refused to let this token read the operator's
// requests. A replica that cannot read them stays out of the election
// (fail-closed): a drain mark it cannot see must not be ignored.
var ErrNoReadAccess = errors.New("the Consul token may not read the operator's requests")

// errFiltered: a list Consul answered with keys left out by the token's
// ACLs (X-Consul-Results-Filtered-By-ACLs). Without
// acl.enable_key_list_policy Consul filters a list rather than refusing
// it, so a token that may not read a drain mark gets an answer without
// it: a refusal all the same, never "not drained".
var errFiltered = errors.New("403 (Permission denied: Consul left out keys this token may not read)")

// list lists prefix with q. A list Consul answered with keys left out by
// the token's ACLs is errFiltered: every list of the roster decides on
// what it does not see (a drain mark, a replica's report).
func (r *Roster) list(prefix string, q *api.QueryOptions) (api.KVPairs, *api.QueryMeta, error) {
	pairs, meta, err := r.cfg.Client.KV().List(prefix, q)
	if err == nil && meta.ResultsFilteredByACLs {
		err = errFiltered
	}
	return pairs, meta, err
}

// explain adds, to a refused read of control/, the key and the fix.
func (r *Roster) explain(err error) error {
	if !permissionDenied(err) {
		return err
	}
	if strings.Contains(err.Error(), "ACL not found") {
		return fmt.Errorf("%w: %w; this replica stays out of the election until it can read them: "+
			"the Consul token is unknown to Consul (mistyped, deleted or expired): give a valid one with --consul-token-file", ErrNoReadAccess, err)
	}
	return fmt.Errorf("%w: %w; this replica stays out of the election until it can read them: "+
		"grant its token read on key prefix %q (Consul policy: key_prefix %q { policy = \"write\" }, "+
		"which valguard run needs for its lock, reports and watermark anyway)", ErrNoReadAccess, err, r.controlPrefix(), r.keys.Prefix())
}

// permissionDenied reports whether err is Consul refusing the token.
func permissionDenied(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "403") || strings.Contains(msg, "Permission denied") || strings.Contains(msg, "ACL not found")
}
