package election

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/consul/api"
)

// Timing defaults and limits. Consul accepts session TTLs from 10 s to 24 h
// and lock-delays up to 60 s.
const (
	DefaultTTL         = 10 * time.Second
	MinTTL             = 10 * time.Second
	MaxTTL             = 24 * time.Hour
	MaxLockDelay       = 60 * time.Second
	DefaultCallTimeout = 2 * time.Second
	DefaultStopMargin  = 3 * time.Second
	// FencedLockDelay is the default lock-delay of a Fenced election: the
	// fence replaces it, and Consul keeps it as sent (the smallest value
	// the api sends that is not dropped).
	FencedLockDelay = time.Millisecond
)

// Config describes one validator as seen by one replica. Zero durations
// take the documented defaults; negative ones are errors.
type Config struct {
	// Client talks to the local Consul agent. Required.
	Client *api.Client

	// ValidatorID names the validator: the lock key is
	// valguard/<ValidatorID>/leader, the watermark key
	// valguard/<ValidatorID>/watermark. Required, no '/'.
	ValidatorID string
	// ReplicaID names this replica in the lock value and the session name.
	// Required.
	ReplicaID string
	// Hostname is shown in the lock value. Default: os.Hostname().
	Hostname string
	// PublicKey is the validator's public key in a printable form, such as
	// "ed25519:<base64>". It is written into the lock value, and Acquire
	// refuses (ErrForeignLock) a lock key whose value, held or free, names
	// a different non-empty public key: one lock is for one validator.
	// Optional, so that callers that do not know the key keep working;
	// such a caller is then refused any lock that names a key. Printable,
	// no spaces.
	PublicKey string
	// Label is the operator's name for the validator (its --validator-id),
	// shown in the lock value. Optional; printable.
	Label string

	// TTL of the Consul session. Default DefaultTTL; MinTTL to MaxTTL.
	TTL time.Duration
	// LockDelay is how long Consul refuses the lock after invalidating the
	// holder's session. Default: the TTL, capped at MaxLockDelay; with
	// Fenced, FencedLockDelay. It cannot be turned off: zero means the
	// default (the Consul api omits a zero lock-delay, and the server then
	// applies its own 15 s).
	LockDelay time.Duration
	// RenewInterval is the time between renews, counted from the send time
	// of the previous one. Default: TTL/3.
	RenewInterval time.Duration
	// CallTimeout bounds every Consul call (blocking queries: their wait
	// time plus this). Calls made while holding a lease are further bounded
	// by the time left to the local deadline. Default DefaultCallTimeout.
	CallTimeout time.Duration
	// StopMargin is the time the caller needs after Done to stop and reap
	// its node, safety margin included: the local deadline is that much
	// before the earliest server-side expiry. Default DefaultStopMargin.
	StopMargin time.Duration

	// Fenced is the signer mode: every signature this replica releases is
	// first committed by Session.Fence, a transaction that fails once the
	// session no longer holds the lock. Safety then rests on the fence, not
	// on the old leader stopping in time, so:
	//
	//   - Acquire skips the unclean-takeover wait (max(LockDelay, TTL), see
	//     the package doc) and does not call OnUncleanTakeover when the lock
	//     it took was held by a Fenced replica: a fence by an old leader
	//     that still runs fails at Consul. A lock a key-file replica held
	//     (a fleet migrating between modes) gets the wait like any unclean
	//     take: no fence stops that leader's node, only its own deadline.
	//     An absent lock key names no holder: Acquire then reads the
	//     watermark key (consistent read, bounded by CallTimeout) and skips
	//     the wait only when it is absent (a new validator) or
	//     WrittenFenced reports it written by a Fenced replica; a
	//     watermark a key-file replica wrote, or a failed read, gets the
	//     wait from the take (a key deleted under a key-file leader, which
	//     signs on until its next lock check plus StopMargin);
	//   - LockDelay defaults to FencedLockDelay;
	//   - a take refused inside the lock-delay is retried after
	//     min(LockDelay + 5 ms, 500 ms) rather than 500 ms.
	//
	// The watermark is then written only by Fence: a Publish or a final
	// write in Close moves the key's index, and the next Fence fails with
	// ErrWatermarkMoved. The signer raises a key-file leader's watermark
	// above the chain before it signs (S8; signer.Signer.Lead).
	Fenced bool
	// WrittenFenced, if set, reports whether a watermark value (as stored
	// in the watermark key) was written by a Fenced replica. Only a Fenced
	// election uses it, after taking an absent lock key (see Fenced). Nil:
	// every present watermark counts as not written by a Fenced replica,
	// so such a take waits. For the signer: signer.WrittenBySigner.
	WrittenFenced func(watermark []byte) bool

	// Now is the clock for deadlines; it must follow real time (timers run
	// on real durations computed from it). Default time.Now, whose
	// readings carry the monotonic clock.
	Now func() time.Time

	// OnRenew, if set, is called after each successful renew, from the
	// renew loop: it must return quickly. Meant for a systemd watchdog,
	// which must then be fed from nowhere else.
	OnRenew func()
	// TakeDelay, if set, is how long Acquire waits, the first time it sees
	// the lock key free after it was held (or at its start), before it
	// takes the key (if it is then still free): several standbys that see the key freed at once then
	// take it in the order of their delays, the shortest first. It must
	// return quickly; at most MaxTakeDelay is used. Meant for letting the
	// standby whose node is freshest win (the supervisor's TakeDelay).
	TakeDelay func() time.Duration
	// OnUncleanTakeover, if set, is called by Acquire when it took a lock
	// key that no clean release left behind (see the package doc), with the
	// reason and the time Acquire will now wait, holding the lock, before
	// it returns. It must return quickly. Meant for a log line.
	OnUncleanTakeover func(reason string, wait time.Duration)

	// CompareWatermarks, if set, orders two watermarks: negative when a is
	// below b, zero when equal, positive when above; an error when either
	// cannot be read. With it, Publish and Close never lower the published
	// watermark (ErrWatermarkLower) and write it with a check-and-set.
	// Nil: watermarks are opaque and every write replaces the stored one.
	CompareWatermarks func(a, b []byte) (int, error)

	// OnLateClose, if set, is called when a Close that Consul did not
	// answer has been retried to its end (see Session.Close): with the
	// number of attempts and the last error (nil: the lock was released
	// and the session destroyed late; else Consul expires the session by
	// itself). Meant for a log line.
	OnLateClose func(attempts int, err error)

	// OnConsulError, if set, is called with every failed Consul call (the
	// error is also returned or, in the renew loop, retried). Meant for a
	// metrics counter; it must return quickly.
	OnConsulError func(error)
}

// withDefaults returns cfg with defaults filled in, or the first reason it
// is not usable. Timing errors wrap ErrUnsafeTiming.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Client == nil {
		return cfg, errors.New("election config: Client is required")
	}
	if cfg.ValidatorID == "" {
		return cfg, errors.New("election config: ValidatorID is required")
	}
	if strings.Contains(cfg.ValidatorID, "/") {
		return cfg, fmt.Errorf("election config: ValidatorID %q must not contain '/'", cfg.ValidatorID)
	}
	if cfg.ReplicaID == "" {
		return cfg, errors.New("election config: ReplicaID is required")
	}
	for _, f := range []struct{ name, v string }{{"PublicKey", cfg.PublicKey}, {"Label", cfg.Label}} {
		if i := strings.IndexFunc(f.v, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }); i >= 0 {
			return cfg, fmt.Errorf("election config: %s %q has a space or an unprintable character at byte %d", f.name, f.v, i)
		}
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("election config: Hostname not set and unknown: %w", err)
		}
		cfg.Hostname = h
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"TTL", cfg.TTL}, {"LockDelay", cfg.LockDelay}, {"RenewInterval", cfg.RenewInterval},
		{"CallTimeout", cfg.CallTimeout}, {"StopMargin", cfg.StopMargin},
	} {
		if d.v < 0 {
			return cfg, fmt.Errorf("election config: %s %s is negative", d.name, d.v)
		}
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < MinTTL || cfg.TTL > MaxTTL {
		return cfg, fmt.Errorf("%w: session TTL %s is outside what Consul accepts (%s to %s)",
			ErrUnsafeTiming, cfg.TTL, MinTTL, MaxTTL)
	}
	switch {
	case cfg.LockDelay == 0 && cfg.Fenced:
		cfg.LockDelay = FencedLockDelay
	case cfg.LockDelay == 0:
		cfg.LockDelay = min(cfg.TTL, MaxLockDelay)
	}
	if cfg.LockDelay > MaxLockDelay {
		return cfg, fmt.Errorf("%w: lock delay %s is above the %s Consul accepts",
			ErrUnsafeTiming, cfg.LockDelay, MaxLockDelay)
	}
	if cfg.RenewInterval == 0 {
		cfg.RenewInterval = cfg.TTL / 3
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.StopMargin == 0 {
		cfg.StopMargin = DefaultStopMargin
	}
	if sum := cfg.RenewInterval + cfg.CallTimeout + cfg.StopMargin; sum >= cfg.TTL {
		return cfg, fmt.Errorf("%w (S6): renew interval %s + consul call timeout %s + node stop margin %s = %s "+
			"must be below the session TTL %s: raise the session TTL or lower the renew interval, "+
			"the call timeout or the stop margin",
			ErrUnsafeTiming, ms(cfg.RenewInterval), ms(cfg.CallTimeout), ms(cfg.StopMargin), ms(sum), ms(cfg.TTL))
	}
	return cfg, nil
}

// ms formats d rounded to the millisecond, so that TTL/3 reads 3.333s.
func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
