package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// neard runs the stand-in to completion and returns its exit status,
// stdout and stderr.
func neard(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(neardBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// initHome runs `neard --home DIR init` with args and returns DIR.
func initHome(t *testing.T, args ...string) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "near")
	code, _, stderr := neard(t, nil, append([]string{"--home", home, "init"}, args...)...)
	if code != 0 {
		t.Fatalf("init exited %d: %s", code, stderr)
	}
	return home
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	bad := func(t *testing.T, home string) {
		k, err := newKeyFile("mallory")
		if err != nil {
			t.Fatal(err)
		}
		other, err := newKeyFile("mallory")
		if err != nil {
			t.Fatal(err)
		}
		k.PublicKey = other.PublicKey
		if err := k.write(filepath.Join(home, "validator_key.json")); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, home string)
		env   []string
		args  []string
		code  int
		want  []string
	}{
		{"no config.json", func(t *testing.T, home string) { rm(t, home, "config.json") }, nil, nil, 1, []string{"config.json"}},
		{"no node key", func(t *testing.T, home string) { rm(t, home, "node_key.json") }, nil, nil, 1, []string{"node key", "node_key.json"}},
		{"invalid validator key", bad, nil, nil, 1, []string{"validator key", "does not match"}},
		{"bad knob", nil, []string{"STANDIN_BLOCK_INTERVAL=fast"}, nil, 1, []string{"STANDIN_BLOCK_INTERVAL"}},
		{"bad flag", nil, nil, []string{"--bogus"}, 2, []string{"bogus"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := initHome(t)
			setAddrs(t, home)
			if tc.setup != nil {
				tc.setup(t, home)
			}
			code, _, stderr := neard(t, tc.env, append([]string{"--home", home, "run"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func rm(t *testing.T, home, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(home, name)); err != nil {
		t.Fatal(err)
	}
}

func TestVersionAndInit(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "2.0.0"} {
		want := "neard (release 2.1.1) (build 2.1.1) (rustc 1.79.0) (protocol 70) (db 40)\n"
		var env []string
		if v != "" {
			env = []string{"STANDIN_VERSION=" + v}
			want = strings.ReplaceAll(want, "2.1.1", v)
		}
		if code, out, _ := neard(t, env, "--version"); code != 0 || out != want {
			t.Errorf("--version: %d %q, want %q", code, out, want)
		}
	}

	home := initHome(t, "--chain-id", "c1")
	if _, err := os.Stat(filepath.Join(home, "validator_key.json")); !os.IsNotExist(err) {
		t.Errorf("validator_key.json without --account-id: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(home, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"genesis_file", "validator_key_file", "node_key_file", "rpc", "telemetry",
		"network", "consensus", "tracked_shards", "archive", "log_summary_style", "store", "state_sync_enabled"} {
		if _, ok := cfg[k]; !ok {
			t.Errorf("config.json lacks %s", k)
		}
	}
	if !bytes.Contains(b, []byte(`"addr": "0.0.0.0:3030"`)) || !bytes.Contains(b, []byte(`"addr": "0.0.0.0:24567"`)) {
		t.Errorf("config.json lacks neard's default addresses:\n%s", b)
	}
	if k, err := readKey(filepath.Join(home, "node_key.json")); err != nil || k.AccountID != "node" {
		t.Errorf("node_key.json: %+v %v", k, err)
	}
	if code, _, stderr := neard(t, nil, "--home="+home, "init"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("second init: exit %d, %s", code, stderr)
	}

	home = initHome(t, "--chain-id", "c2", "--account-id", "alice")
	k, err := readKey(filepath.Join(home, "validator_key.json"))
	if err != nil || k.AccountID != "alice" {
		t.Errorf("validator_key.json: %+v %v", k, err)
	}
	g, err := readGenesis(filepath.Join(home, "genesis.json"))
	if err != nil || g.ChainID != "c2" || len(g.Validators) != 1 || g.Validators[0].PublicKey != k.PublicKey {
		t.Errorf("genesis.json: %+v %v", g, err)
	}
}
