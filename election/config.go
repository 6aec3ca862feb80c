package election

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

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

	// TTL of the Consul session. Default DefaultTTL; MinTTL to MaxTTL.
	TTL time.Duration
	// LockDelay is how long Consul refuses the lock after invalidating the
	// holder's session. Default: the TTL, capped at MaxLockDelay. It cannot
	// be turned off: zero means the default.
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

	// Now is the clock for deadlines; it must follow real time (timers run
	// on real durations computed from it). Default time.Now, whose
	// readings carry the monotonic clock.
	Now func() time.Time

	// OnRenew, if set, is called after each successful renew, from the
	// renew loop: it must return quickly. Meant for a systemd watchdog,
	// which must then be fed from nowhere else.
	OnRenew func()
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
	if cfg.LockDelay == 0 {
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
