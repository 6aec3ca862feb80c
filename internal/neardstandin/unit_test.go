package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mr-tron/base58"
)

func TestParseKey(t *testing.T) {
	good, err := newKeyFile("alice")
	if err != nil {
		t.Fatal(err)
	}
	other, err := newKeyFile("bob")
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	cases := []struct {
		name    string
		json    string
		account string // "" for an invalid key
	}{
		{"neard's format", `{"account_id":"alice","public_key":"` + good.PublicKey + `","secret_key":"` + good.SecretKey + `"}`, "alice"},
		{"legacy private_key", `{"account_id":"alice","public_key":"` + good.PublicKey + `","private_key":"` + good.SecretKey + `"}`, "alice"},
		{"mismatched halves", `{"account_id":"alice","public_key":"` + other.PublicKey + `","secret_key":"` + good.SecretKey + `"}`, ""},
		{"no account", `{"public_key":"` + good.PublicKey + `","secret_key":"` + good.SecretKey + `"}`, ""},
		{"no prefix", `{"account_id":"alice","public_key":"` + strings.TrimPrefix(good.PublicKey, "ed25519:") + `","secret_key":"` + good.SecretKey + `"}`, ""},
		{"secp256k1", `{"account_id":"alice","public_key":"secp256k1:` + strings.TrimPrefix(good.PublicKey, "ed25519:") + `","secret_key":"` + good.SecretKey + `"}`, ""},
		{"not base58", `{"account_id":"alice","public_key":"ed25519:0OIl","secret_key":"` + good.SecretKey + `"}`, ""},
		{"seed only", `{"account_id":"alice","public_key":"` + good.PublicKey + `","secret_key":"ed25519:` + base58.Encode(priv.Seed()) + `"}`, ""},
		{"no secret", `{"account_id":"alice","public_key":"` + good.PublicKey + `"}`, ""},
		{"not JSON", `account_id = alice`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := parseKey([]byte(tc.json))
			if tc.account == "" {
				if !errors.Is(err, errInvalidKey) {
					t.Errorf("got %+v, %v; want errInvalidKey", k, err)
				}
				return
			}
			if err != nil || k.AccountID != tc.account || k.PublicKey != good.PublicKey {
				t.Errorf("got %+v, %v", k, err)
			}
		})
	}
}

func TestReloadsKeyOnSIGHUP(t *testing.T) {
	cases := []struct {
		version string
		want    bool
	}{
		{"2.1.1", true}, {"2.1.0", true}, {"2.2.0-rc.1", true}, {"3.0", true},
		{"2.0.0", false}, {"1.40.0", false}, {"junk", false},
	}
	for _, tc := range cases {
		if got := reloadsKeyOnSIGHUP(tc.version); got != tc.want {
			t.Errorf("reloadsKeyOnSIGHUP(%q) = %v, want %v", tc.version, got, tc.want)
		}
	}
}

func TestReadKnobs(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	k, err := readKnobs(env())
	if err != nil || k.Version != "2.1.1" || k.BlockInterval != 500*time.Millisecond || k.Genesis != nil ||
		k.StartDelay != 0 || k.SyncDelay != 0 || k.ShutdownDelay != 0 || k.Journal != "" || k.IgnoreSIGHUP {
		t.Errorf("defaults: %+v, %v", k, err)
	}
	k, err = readKnobs(env("STANDIN_GENESIS", "1717590896123", "STANDIN_SIGHUP", "ignore", "STANDIN_SYNC_DELAY", "2s"))
	if err != nil || !k.Genesis.Equal(time.UnixMilli(1717590896123)) || !k.IgnoreSIGHUP || k.SyncDelay != 2*time.Second {
		t.Errorf("set: %+v, %v", k, err)
	}
	for _, bad := range [][]string{
		{"STANDIN_VERSION", "two"}, {"STANDIN_GENESIS", "2024-06-05"}, {"STANDIN_BLOCK_INTERVAL", "0s"},
		{"STANDIN_START_DELAY", "-1s"}, {"STANDIN_SHUTDOWN_DELAY", "soon"}, {"STANDIN_SIGHUP", "reload"},
	} {
		if _, err := readKnobs(env(bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: error %v, want one naming the variable", bad[0], bad[1], err)
		}
	}
}

func TestChainHead(t *testing.T) {
	g := time.UnixMilli(1_000_000)
	c := chain{genesis: g, interval: 500 * time.Millisecond}
	cases := []struct {
		at   time.Duration
		want int64
	}{
		{-time.Second, 0}, {0, 0}, {499 * time.Millisecond, 0}, {500 * time.Millisecond, 1}, {10*time.Second + 250*time.Millisecond, 20},
	}
	for _, tc := range cases {
		if got := c.head(g.Add(tc.at)); got != tc.want {
			t.Errorf("head(genesis%+v) = %d, want %d", tc.at, got, tc.want)
		}
	}
	if got := c.blockTime(20); !got.Equal(g.Add(10 * time.Second)) {
		t.Errorf("blockTime(20) = %v", got)
	}
	if b, err := base58.Decode(hashOf("block", 7)); err != nil || len(b) != 32 || hashOf("block", 7) == hashOf("state", 7) {
		t.Errorf("hashOf: want 32-byte base58 hashes that differ by kind: %v", err)
	}
}

func TestDefaultConfigIsValidJSON(t *testing.T) {
	var c map[string]any
	if err := json.Unmarshal([]byte(defaultConfig), &c); err != nil {
		t.Fatal(err)
	}
	if c["rpc"].(map[string]any)["addr"] != defaultRPCAddr || c["network"].(map[string]any)["addr"] != defaultNetworkAddr {
		t.Errorf("default addresses: %v %v", c["rpc"], c["network"])
	}
}
