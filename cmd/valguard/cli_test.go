package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"

	"github.com/valguard/valguard/internal/consultest"
)

// TestRunRefusesBadInput runs the binary with bad settings: each is refused
// at once with a message naming the fix, and nothing on disk changes.
func TestRunRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	home, key := cometHome(t, dir)
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--metrics-addr", "", "--node-binary", "true", "--consul-url", "http://127.0.0.1:1"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown node", []string{"--node", "solana", "--node-home", home, "--validator-key", key}, "unknown node type"},
		{"ttl below consul's minimum", []string{"--node-home", home, "--validator-key", key, "--session-ttl", "5s"}, "TTL"},
		{"unsafe timing", []string{"--node-home", home, "--validator-key", key, "--kill-timeout", "8s"}, "unsafe timing"},
		{"missing key", []string{"--node-home", home, "--validator-key", filepath.Join(dir, "nope.json")}, "--validator-key: validator key"},
		{"not a cometbft key", []string{"--node-home", home, "--validator-key", garbage}, "is not a CometBFT priv_validator_key.json"},
		{"no config.toml", []string{"--node-home", dir, "--validator-key", key}, "has no config/config.toml"},
		{"no key at all", []string{"--node-home", home}, "no validator key"},
		{"negative max lag", []string{"--node-home", home, "--validator-key", key, "--max-lag", "-1"}, "--max-lag -1: want 0"},
		{"bad log format", []string{"--node-home", home, "--validator-key", key, "--log-format", "xml"}, "--log-format"},
		{"bad consul url", []string{"--node-home", home, "--validator-key", key, "--consul-url", "ftp://x"}, "--consul-url"},
		{"validator id of another key", []string{"--node-home", home, "--validator-key", key, "--validator-id", "0A1B2C"}, "--validator-id \"0A1B2C\" does not name the validator key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { refused(t, append(base, tc.args...), tc.want) })
	}
	if b, _ := os.ReadFile(key); string(b) != string(data) {
		t.Fatal("validator key changed")
	}
	if _, err := os.Stat(filepath.Join(home, "valguard")); !os.IsNotExist(err) {
		t.Fatalf("a refused start left %s/valguard behind (%v)", home, err)
	}
}

// A second valguard on a node home already supervised is refused, naming
// the first one; the first one is not disturbed.
func TestSecondValguardOnAHomeIsRefused(t *testing.T) {
	dir := t.TempDir()
	home, key := cometHome(t, dir)
	args := []string{"run", "--metrics-addr", "", "--node-binary", "sleep", "--node-args", "600",
		"--consul-url", "http://127.0.0.1:1", "--node-home", home, "--validator-key", key}
	first := exec.Command(valguardBin, args...)
	first.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	lock := filepath.Join(home, "valguard", "lock")
	end := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(lock); strings.HasPrefix(string(b), strconv.Itoa(first.Process.Pid)+"\n") {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the first valguard did not take the home lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	refused(t, args, fmt.Sprintf("another valguard already supervises this node home (lock %s held by pid %d", lock, first.Process.Pid))
	if err := first.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the first valguard died: %v", err)
	}
}

func TestActiveValidatorWithoutLeaderExitsOne(t *testing.T) {
	agent := consultest.Start(t).Addr
	cmd := exec.Command(valguardBin, "active-validator", "--validator-id", "NOBODY", "--consul-url", "http://"+agent)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1:\n%s", err, out)
	}
	if !strings.Contains(string(out), "no active validator") {
		t.Fatalf("output:\n%s", out)
	}
}

// cometHome writes a minimal CometBFT home and a validator key (mode 0600)
// under dir, enough for valguard to get past its flag checks.
func cometHome(t *testing.T, dir string) (home, key string) {
	t.Helper()
	home = filepath.Join(dir, "home")
	for _, sub := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(home, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "config", "config.toml"), []byte("[rpc]\nladdr = \"tcp://127.0.0.1:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, "priv_validator_key.json")
	data, err := cmtjson.Marshal(privval.GenFilePV("", "").Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return home, key
}

// refused runs valguard with args and asserts that it exits non-zero with
// a message containing want, and without a panic.
func refused(t *testing.T, args []string, want string) {
	t.Helper()
	cmd := exec.Command(valguardBin, args...)
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("valguard accepted it:\n%s", out)
	}
	if !strings.Contains(string(out), want) || strings.Contains(string(out), "panic") {
		t.Fatalf("output does not say %q (or panics):\n%s", want, out)
	}
}
