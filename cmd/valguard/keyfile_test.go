package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A validator key or Consul token that others can read is refused, naming
// the chmod that fixes it; one in $CREDENTIALS_DIRECTORY is not judged.
func TestLooseSecretsAreRefused(t *testing.T) {
	dir := t.TempDir()
	home, key := cometHome(t, dir)
	token := filepath.Join(dir, "consul-token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--metrics-addr", "", "--node-binary", "true", "--consul-url", "http://127.0.0.1:1", "--node-home", home}

	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	refused(t, append(base, "--validator-key", key), "run `chmod 600 "+key+"`")
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	refused(t, append(base, "--validator-key", key, "--consul-token-file", token), "run `chmod 600 "+token+"`")

	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode changed: %v %v", fi.Mode(), err)
	}
}
