package cometbft

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/setting"
)

// TestKeyID: the cometbft kind takes any file for a key (it is the
// fallback of chain.KeyID) and derives the key's address, or says why the
// file is not a key.
func TestKeyID(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "priv_validator_key.json")
	writeKey(t, key)
	k, err := LoadKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok, err := keyID(key, nil); err != nil || !ok || id != k.Address {
		t.Fatalf("keyID = %q, %v, %v; want %q", id, ok, err, k.Address)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := keyID(garbage, nil); !ok || err == nil || !strings.Contains(err.Error(), "is not a CometBFT priv_validator_key.json") {
		t.Fatalf("keyID(garbage): %v, %v", ok, err)
	}
	var se *setting.Error
	if _, _, err := keyID(filepath.Join(dir, "nope.json"), nil); !errors.As(err, &se) || se.Name != "ValidatorKey" {
		t.Fatalf("keyID(missing file): %v; want a setting.Error about ValidatorKey", err)
	}
}
