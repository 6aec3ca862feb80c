package neard

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mr-tron/base58"

	"github.com/valguard/valguard/internal/setting"
)

// valguardFlag matches a valguard flag name: the adapter names settings,
// the command adds flags.
var valguardFlag = regexp.MustCompile(`--(node-|validator-|voter-|public-address|promotion|boot-nodes)`)

func TestBadInput(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, f *fixture, c *Config)
		want  string // part of the error
	}{
		{"validator key without account_id", func(t *testing.T, f *fixture, c *Config) {
			writeKey(t, c.ValidatorKey, "")
		}, "has no account_id"},
		{"validator key with a secp256k1 key", func(t *testing.T, f *fixture, c *Config) {
			writeJSON(t, c.ValidatorKey, keyFile{AccountID: "a.near", PublicKey: "secp256k1:abc", SecretKey: "secp256k1:abc"})
		}, "want an ed25519 key"},
		{"validator key not base58", func(t *testing.T, f *fixture, c *Config) {
			writeJSON(t, c.ValidatorKey, keyFile{AccountID: "a.near", PublicKey: "ed25519:0OIl", SecretKey: "ed25519:0OIl"})
		}, "not base58"},
		{"validator key too short", func(t *testing.T, f *fixture, c *Config) {
			writeJSON(t, c.ValidatorKey, keyFile{AccountID: "a.near", PublicKey: "ed25519:3x2dUQ", SecretKey: "ed25519:3x2dUQ"})
		}, "want 32"},
		{"validator key halves of two keys", func(t *testing.T, f *fixture, c *Config) {
			a := writeKey(t, filepath.Join(f.keys, "a.json"), "a.near")
			var kf keyFile
			data, _ := os.ReadFile(c.ValidatorKey)
			mustUnmarshal(t, data, &kf)
			kf.PublicKey = a.PublicKey
			writeJSON(t, c.ValidatorKey, kf)
		}, "does not belong to secret_key"},
		{"validator key secret seed of another key", func(t *testing.T, f *fixture, c *Config) {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			forged := append(append([]byte{}, other[:32]...), pub...)
			writeJSON(t, c.ValidatorKey, keyFile{AccountID: "a.near", PublicKey: keyPrefix + base58.Encode(pub), SecretKey: keyPrefix + base58.Encode(forged)})
		}, "does not belong to secret_key"},
		{"validator key not JSON", func(t *testing.T, f *fixture, c *Config) {
			if err := os.WriteFile(c.ValidatorKey, []byte("-----BEGIN"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a NEAR key file"},
		{"validator key missing", func(t *testing.T, f *fixture, c *Config) {
			c.ValidatorKey = filepath.Join(f.keys, "nope.json")
		}, "no such file"},
		{"no validator key", func(t *testing.T, f *fixture, c *Config) { c.ValidatorKey = "" }, "ValidatorKey: no validator key"},
		{"validator key inside the home", func(t *testing.T, f *fixture, c *Config) {
			data, _ := os.ReadFile(c.ValidatorKey)
			c.ValidatorKey = f.path("validator_key.json")
			if err := os.WriteFile(c.ValidatorKey, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "move the key out of the node home"},
		{"same node key file for both roles", func(t *testing.T, f *fixture, c *Config) {
			c.VoterNodeKey = c.ValidatorNodeKey
		}, "are the same key"},
		{"same node key in two files", func(t *testing.T, f *fixture, c *Config) {
			data, _ := os.ReadFile(c.ValidatorNodeKey)
			if err := os.WriteFile(c.VoterNodeKey, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "are the same key"},
		{"node key at node_key.json", func(t *testing.T, f *fixture, c *Config) {
			c.VoterNodeKey = f.path("node_key.json")
		}, "move it out of the node home"},
		{"no validator node key for restart", func(t *testing.T, f *fixture, c *Config) {
			c.ValidatorNodeKey = ""
			c.Promotion = PromotionRestart
		}, "ValidatorNodeKey: no validator node key"},
		{"home without config.json", func(t *testing.T, f *fixture, c *Config) {
			if err := os.Remove(f.path("config.json")); err != nil {
				t.Fatal(err)
			}
		}, "must be an initialised neard home"},
		{"config.json not JSON", func(t *testing.T, f *fixture, c *Config) {
			if err := os.WriteFile(f.path("config.json"), []byte("{network"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is not valid JSON"},
		{"identical addresses", func(t *testing.T, f *fixture, c *Config) {
			c.VoterAddr, c.ValidatorAddr = "0.0.0.0:24567", "0.0.0.0:24567"
		}, "the voter needs its own port"},
		{"address without port", func(t *testing.T, f *fixture, c *Config) { c.VoterAddr = "0.0.0.0" }, "want host:port"},
		{"public address a name", func(t *testing.T, f *fixture, c *Config) {
			c.PublicAddresses = []string{"validator.example.org"}
		}, "want an IP address"},
		{"public address without validator node key", func(t *testing.T, f *fixture, c *Config) {
			c.PublicAddresses, c.ValidatorNodeKey, c.Promotion = []string{"203.0.113.7"}, "", PromotionHot
		}, "PublicAddresses: a public address needs the validator node key"},
		{"unknown promotion", func(t *testing.T, f *fixture, c *Config) { c.Promotion = "warm" }, "Promotion: promotion \"warm\": want hot, restart or auto"},
		{"no neard binary", func(t *testing.T, f *fixture, c *Config) { c.Binary = "/nonexistent/neard" }, "Binary: neard binary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.config(t)
			tc.setup(t, f, &c)
			before := listHome(t, f.home)
			_, err := New(c)
			got := fmt.Sprint(err)
			// A "Field: message" want also asks that the error names the
			// setting it is about (and no flag: the command adds those).
			var se *setting.Error
			if errors.As(err, &se) {
				got = se.Name + ": " + got
			}
			if err == nil || !strings.Contains(got, tc.want) || valguardFlag.MatchString(got) {
				t.Fatalf("New = %v (setting %q), want an error containing %q and no flag name", err, got, tc.want)
			}
			if after := listHome(t, f.home); after != before {
				t.Fatalf("the node home changed on refusal:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestHotPromotionNeedsNoValidatorNodeKey(t *testing.T) {
	f := newFixture(t)
	c := f.config(t)
	c.ValidatorNodeKey, c.Promotion = "", PromotionHot
	if _, err := New(c); err != nil {
		t.Fatal(err)
	}
}

// listHome names every entry of the home with its size: a change shows.
func listHome(t *testing.T, home string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(home, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + ":" + fi.Mode().String() + ";")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
