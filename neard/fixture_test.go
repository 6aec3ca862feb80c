package neard

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mr-tron/base58"
	"github.com/rs/zerolog"
)

// writeKey writes a fresh NEAR key file for account at path.
func writeKey(t *testing.T, path, account string) Key {
	t.Helper()
	pub, secret, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := keyFile{AccountID: account, PublicKey: keyPrefix + base58.Encode(pub), SecretKey: keyPrefix + base58.Encode(secret)}
	writeJSON(t, path, k)
	return Key{Path: path, AccountID: account, PublicKey: k.PublicKey}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fixture is a neard home as `neard init` leaves it (config.json from
// testdata, a regular node_key.json) and, outside it, the three keys.
type fixture struct {
	home, keys         string
	validator          Key
	validatorNode      Key
	voterNode          Key
	initNodeKey        []byte // node_key.json as init wrote it
	originalConfigJSON []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{home: filepath.Join(dir, "home"), keys: filepath.Join(dir, "keys")}
	for _, d := range []string{f.home, f.keys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile("testdata/config.json")
	if err != nil {
		t.Fatal(err)
	}
	f.originalConfigJSON = cfg
	if err := os.WriteFile(filepath.Join(f.home, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	writeKey(t, filepath.Join(f.home, "node_key.json"), "node")
	if f.initNodeKey, err = os.ReadFile(filepath.Join(f.home, "node_key.json")); err != nil {
		t.Fatal(err)
	}
	f.validator = writeKey(t, filepath.Join(f.keys, "validator_key.json"), "pool.poolv1.near")
	f.validatorNode = writeKey(t, filepath.Join(f.keys, "validator_node_key.json"), "node")
	f.voterNode = writeKey(t, filepath.Join(f.keys, "voter_node_key.json"), "node")
	return f
}

// config is a Config for the fixture; the binary is any executable.
func (f *fixture) config(t *testing.T) Config {
	return Config{
		Home: f.home, Binary: "true",
		ValidatorKey: f.validator.Path, ValidatorNodeKey: f.validatorNode.Path, VoterNodeKey: f.voterNode.Path,
		Log: zerolog.New(zerolog.NewTestWriter(t)),
	}
}

func (f *fixture) path(name string) string { return filepath.Join(f.home, name) }

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}
