package neard

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKeyID: the neard kind claims the key files that name an account_id,
// and derives the lock id from the public key (LockID).
func TestKeyID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "validator_key.json")
	k := writeKey(t, path, "pool.poolv1.near")
	want, err := LockID(k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if id, ok, err := keyID(path, read(path)); err != nil || !ok || id != want {
		t.Fatalf("keyID = %q, %v, %v; want %q", id, ok, err, want)
	}
	for _, tc := range []struct {
		name, content string
		claimed       bool
	}{
		{name: "not JSON", content: "not json"},
		{name: "no account_id (a CometBFT key)", content: `{"address": "AB", "priv_key": {}}`},
		{name: "an account_id and no key", content: `{"account_id": "pool.near"}`, claimed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "key.json")
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, ok, err := keyID(p, read(p))
			if ok != tc.claimed || (err != nil) != tc.claimed {
				t.Fatalf("keyID: claimed %v, err %v; want claimed %v (and an error when claimed)", ok, err, tc.claimed)
			}
		})
	}
}
