package election

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func testClient(t *testing.T) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: "127.0.0.1:1", Scheme: "http"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	client := testClient(t)
	base := func() Config {
		return Config{Client: client, ValidatorID: "val1", ReplicaID: "a", Hostname: "host-a"}
	}
	tests := []struct {
		name     string
		edit     func(*Config)
		unsafe   bool     // error must wrap ErrUnsafeTiming
		contains []string // error text must contain each, empty = no error
	}{
		{name: "defaults are safe", edit: func(*Config) {}},
		{name: "explicit safe timing", edit: func(c *Config) {
			c.TTL, c.LockDelay, c.RenewInterval, c.CallTimeout, c.StopMargin = 30*time.Second, 30*time.Second, 10*time.Second, 3*time.Second, 10*time.Second
		}},
		{name: "ttl below consul minimum", edit: func(c *Config) { c.TTL = 5 * time.Second },
			unsafe: true, contains: []string{"5s", "10s"}},
		{name: "ttl above consul maximum", edit: func(c *Config) { c.TTL = 25 * time.Hour },
			unsafe: true, contains: []string{"25h"}},
		{name: "lock delay above 60s", edit: func(c *Config) { c.TTL, c.LockDelay = 2*time.Minute, 61*time.Second },
			unsafe: true, contains: []string{"lock delay 1m1s"}},
		{name: "negative lock delay", edit: func(c *Config) { c.LockDelay = -time.Second },
			contains: []string{"LockDelay", "negative"}},
		{name: "renew + call timeout + stop margin above ttl", edit: func(c *Config) {
			c.RenewInterval, c.CallTimeout, c.StopMargin = 3300*time.Millisecond, 2*time.Second, 6*time.Second
		}, unsafe: true, contains: []string{
			"(S6)", "renew interval 3.3s", "call timeout 2s", "stop margin 6s", "= 11.3s", "session TTL 10s",
		}},
		{name: "sum equal to ttl is refused", edit: func(c *Config) {
			c.RenewInterval, c.CallTimeout, c.StopMargin = 5*time.Second, 2*time.Second, 3*time.Second
		}, unsafe: true, contains: []string{"= 10s", "below the session TTL 10s"}},
		{name: "default renew interval with a large stop margin", edit: func(c *Config) { c.StopMargin = 5 * time.Second },
			unsafe: true, contains: []string{"renew interval 3.333s", "= 10.333s"}},
		{name: "empty validator", edit: func(c *Config) { c.ValidatorID = "" }, contains: []string{"ValidatorID"}},
		{name: "validator with slash", edit: func(c *Config) { c.ValidatorID = "a/b" }, contains: []string{"ValidatorID", "'/'"}},
		{name: "empty replica", edit: func(c *Config) { c.ReplicaID = "" }, contains: []string{"ReplicaID"}},
		{name: "public key and label", edit: func(c *Config) { c.PublicKey, c.Label = "ed25519:q83v+w==", "val-1" }},
		{name: "public key with a space", edit: func(c *Config) { c.PublicKey = "ed25519: q83v" }, contains: []string{"PublicKey", "space"}},
		{name: "label with a newline", edit: func(c *Config) { c.Label = "val\n1" }, contains: []string{"Label", "unprintable"}},
		{name: "no client", edit: func(c *Config) { c.Client = nil }, contains: []string{"Client"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			e, err := New(cfg)
			if len(tc.contains) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if e == nil {
					t.Fatal("New returned nil Election and nil error")
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted the config, want an error containing %q", tc.contains)
			}
			if got := errors.Is(err, ErrUnsafeTiming); got != tc.unsafe {
				t.Errorf("errors.Is(err, ErrUnsafeTiming) = %v, want %v (err: %v)", got, tc.unsafe, err)
			}
			for _, want := range tc.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	t.Parallel()
	e, err := New(Config{Client: testClient(t), ValidatorID: "val1", ReplicaID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.Config()
	if cfg.TTL != DefaultTTL || cfg.LockDelay != DefaultTTL || cfg.RenewInterval != DefaultTTL/3 ||
		cfg.CallTimeout != DefaultCallTimeout || cfg.StopMargin != DefaultStopMargin {
		t.Errorf("defaults: TTL %s, LockDelay %s, RenewInterval %s, CallTimeout %s, StopMargin %s",
			cfg.TTL, cfg.LockDelay, cfg.RenewInterval, cfg.CallTimeout, cfg.StopMargin)
	}
	if cfg.Hostname == "" || cfg.Now == nil {
		t.Errorf("Hostname %q, Now set %v: want both filled in", cfg.Hostname, cfg.Now != nil)
	}
	if e.LockKey() != "valguard/val1/leader" || e.WatermarkKey() != "valguard/val1/watermark" {
		t.Errorf("keys %q, %q", e.LockKey(), e.WatermarkKey())
	}

	long, err := New(Config{Client: testClient(t), ValidatorID: "val1", ReplicaID: "a", TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := long.Config().LockDelay; got != MaxLockDelay {
		t.Errorf("default lock delay for a 5m TTL = %s, want the %s cap", got, MaxLockDelay)
	}
}
