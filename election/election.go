package election

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consulkey"
)

// Election is one replica's handle on the election of one validator. It is
// safe for concurrent use.
type Election struct {
	cfg          Config
	lockKey      string
	watermarkKey string

	// freeSeen and freeSince: the unclean free lock key a leaderless grant
	// last saw ("absent" or its ModifyIndex), and since when
	// (awaitCleanLock).
	freeMu    sync.Mutex
	freeSeen  string
	freeSince time.Time
}

// LeaderInfo is what the lock key holds, encoded as JSON
// {"replica":..,"hostname":..,"since":RFC 3339 with nanoseconds,
// "public_key":..,"label":..}; after a clean release also
// "released":true,"released_at":RFC 3339 (the clean-release marker).
type LeaderInfo struct {
	ReplicaID string    `json:"replica"`
	Hostname  string    `json:"hostname"`
	Since     time.Time `json:"since"`
	// PublicKey and Label are Config.PublicKey and Config.Label of the
	// replica that wrote the value (omitted when empty).
	PublicKey string `json:"public_key,omitempty"`
	Label     string `json:"label,omitempty"`
	// Released and ReleasedAt are the clean-release marker, written by
	// Session.Close in the transaction that releases the lock: the writer
	// had stopped its node (S3) and no wait was pending. ReleasedAt is the
	// writer's wall clock.
	Released   bool      `json:"released,omitempty"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
	// Fenced: the writer ran with Config.Fenced (the signer mode), so its
	// node could sign only through a fence that fails once the lock moved.
	Fenced bool `json:"fenced,omitempty"`
	// Session is the Consul session holding the lock (not in the JSON).
	Session string `json:"-"`
}

// New checks cfg, fills in its defaults and returns the Election. Unsafe
// timing (S6) is refused with an error wrapping ErrUnsafeTiming that names
// the numbers.
func New(cfg Config) (*Election, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	keys := consulkey.Validator(cfg.ValidatorID)
	return &Election{cfg: cfg, lockKey: keys.Leader(), watermarkKey: keys.Watermark()}, nil
}

// Config returns the configuration in force, defaults filled in.
func (e *Election) Config() Config { return e.cfg }

// LockKey is the Consul key whose holder is the leader.
func (e *Election) LockKey() string { return e.lockKey }

// WatermarkKey is the Consul key the leader publishes its watermark to.
func (e *Election) WatermarkKey() string { return e.watermarkKey }

func (e *Election) now() time.Time { return e.cfg.Now() }

// consulError reports a failed Consul call to the OnConsulError hook,
// unless one of the callers' contexts ended: then the call was abandoned,
// not failed by Consul.
func (e *Election) consulError(err error, callers ...context.Context) {
	for _, ctx := range callers {
		if ctx.Err() != nil {
			return
		}
	}
	if e.cfg.OnConsulError != nil {
		e.cfg.OnConsulError(err)
	}
}

// Leader reads the lock key with a consistent read and returns who holds
// it, or nil, nil when no session does. The answer may be outdated as soon
// as it is returned; it decides nothing for this replica.
func (e *Election) Leader(ctx context.Context) (*LeaderInfo, error) {
	pair, err := e.readLock(ctx)
	if err != nil {
		return nil, err
	}
	return HolderOf(pair)
}

// readLock is a consistent read of the lock key, bounded by CallTimeout;
// errors are reported to OnConsulError.
func (e *Election) readLock(ctx context.Context) (*api.KVPair, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	pair, err := e.get(cctx, e.lockKey)
	if err != nil {
		e.consulError(err, ctx)
	}
	return pair, err
}

// HolderOf is who holds the lock key read as pair: its LeaderInfo with the
// holding session; nil when no session holds it. A held key whose value
// cannot be read is an error.
func HolderOf(pair *api.KVPair) (*LeaderInfo, error) {
	if pair == nil || pair.Session == "" {
		return nil, nil
	}
	var info LeaderInfo
	if err := json.Unmarshal(pair.Value, &info); err != nil {
		return nil, fmt.Errorf("lock key %s held by session %s has an unreadable value %q: %w",
			pair.Key, pair.Session, pair.Value, err)
	}
	info.Session = pair.Session
	return &info, nil
}

// Watermark reads the watermark key with a consistent read; nil, nil when
// the key does not exist.
func (e *Election) Watermark(ctx context.Context) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	pair, err := e.get(cctx, e.watermarkKey)
	if err != nil {
		e.consulError(err, ctx)
		return nil, err
	}
	if pair == nil {
		return nil, nil
	}
	if pair.Value == nil {
		return []byte{}, nil
	}
	return pair.Value, nil
}

// get is a consistent, non-blocking read of key. The caller reports
// errors.
func (e *Election) get(ctx context.Context, key string) (*api.KVPair, error) {
	q := &api.QueryOptions{RequireConsistent: true}
	pair, _, err := e.cfg.Client.KV().Get(key, q.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return pair, nil
}

// NewSession creates a TTL-only Consul session (no health checks, behavior
// "release", the configured lock-delay) and starts its renew loop. The
// local lease deadline starts from the moment the create request was
// sent. ctx bounds only the creation; the session lives until Close or
// Done. A create whose answer is lost may leave a session on the server,
// which expires on its own after its TTL.
func (e *Election) NewSession(ctx context.Context) (*Session, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	sent := e.now()
	// Behavior release, not delete: an invalidation leaves the key
	// (unmarked, free), so an absent key means someone deleted it.
	entry := &api.SessionEntry{
		Name:      consulkey.Validator(e.cfg.ValidatorID).ElectionSession(e.cfg.ReplicaID),
		TTL:       e.cfg.TTL.String(),
		Behavior:  api.SessionBehaviorRelease,
		LockDelay: e.cfg.LockDelay, // never zero: the api would omit it and Consul default to 15s
	}
	id, _, err := e.cfg.Client.Session().CreateNoChecks(entry, (&api.WriteOptions{}).WithContext(cctx))
	if err != nil {
		err = fmt.Errorf("create consul session: %w", err)
		e.consulError(err, ctx)
		return nil, err
	}
	return startSession(e, id, sent), nil
}
