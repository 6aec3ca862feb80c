package cometbft

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// home makes a node home as `cometbft init` lays it out: config.toml, a
// generated (non-validator) key as a regular file, a zero state; and a
// validator key outside it.
func home(t *testing.T, config string) (home, validatorKey string) {
	t.Helper()
	return homeIn(t, t.TempDir(), config)
}

// homeIn is home in dir (dir/home, dir/secrets).
func homeIn(t *testing.T, dir, config string) (home, validatorKey string) {
	t.Helper()
	home = filepath.Join(dir, "home")
	for _, d := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if config == "" {
		config = freeAddrsConfig(t)
	}
	write(t, filepath.Join(home, "config", "config.toml"), config)
	writeKey(t, filepath.Join(home, "config", "priv_validator_key.json"))
	write(t, filepath.Join(home, "data", "priv_validator_state.json"), `{"height":"0","round":0,"step":0}`)
	validatorKey = filepath.Join(dir, "secrets", "priv_validator_key.json")
	if err := os.MkdirAll(filepath.Dir(validatorKey), 0o700); err != nil {
		t.Fatal(err)
	}
	writeKey(t, validatorKey)
	return home, validatorKey
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string) {
	t.Helper()
	data, err := cmtjson.MarshalIndent(privval.GenFilePV("", "").Key, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(data))
}

func newNode(t *testing.T, home, key string) *Node {
	t.Helper()
	n, err := New(Config{Home: home, ValidatorKey: key, Binary: "true", Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewRefusesBadInput(t *testing.T) {
	h, key := home(t, "")
	remote, _ := home(t, "priv_validator_laddr = \"tcp://127.0.0.1:1234\"\n")
	notKey := filepath.Join(t.TempDir(), "not-a-key.json")
	write(t, notKey, `{"hello":"world"}`)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no config.toml", Config{Home: t.TempDir(), ValidatorKey: key, Binary: "true"}, "has no config/config.toml"},
		{"remote signer", Config{Home: remote, ValidatorKey: key, Binary: "true"}, "priv_validator_laddr"},
		{"missing key", Config{Home: h, ValidatorKey: "/nonexistent/key.json", Binary: "true"}, "no such file: check the path"},
		{"not a cometbft key", Config{Home: h, ValidatorKey: notKey, Binary: "true"}, "is not a CometBFT priv_validator_key.json"},
		{"key is the node's own key path", Config{Home: h, ValidatorKey: filepath.Join(h, "config", "priv_validator_key.json"), Binary: "true"}, "move the validator key out of the node home"},
		{"no key", Config{Home: h, Binary: "true"}, "no validator key"},
		{"unknown binary", Config{Home: h, ValidatorKey: key, Binary: "no-such-node-binary"}, "give the daemon's path or name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPrepareVoterOnFreshHome(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	link := filepath.Join(h, "config", "priv_validator_key.json")
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := keylink.Verify(link, n.p.voterKey); !ok {
		t.Fatal("key path does not link to the voter key")
	}
	// The generated key of `cometbft init` was moved aside, not deleted.
	moved, _ := filepath.Glob(link + ".valguard-moved-*")
	if len(moved) != 1 {
		t.Fatalf("moved-aside files %v, want 1", moved)
	}
	if a, err := keyAddress(mustRead(t, n.p.voterKey)); err != nil || a == n.Address() {
		t.Fatalf("voter key address %q (%v) must be a valid key other than the validator's", a, err)
	}
	// A second start keeps the same voter key.
	before := mustRead(t, n.p.voterKey)
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if string(mustRead(t, n.p.voterKey)) != string(before) {
		t.Fatal("voter key regenerated")
	}
}

func TestValidatorKeyAsRegularFileIsRefused(t *testing.T) {
	h, key := home(t, "")
	link := filepath.Join(h, "config", "priv_validator_key.json")
	write(t, link, string(mustRead(t, key)))
	n := newNode(t, h, key)
	err := n.Prepare(context.Background(), supervisor.RoleVoter, nil)
	if !errors.Is(err, keylink.ErrValidatorKeyFile) {
		t.Fatalf("Prepare = %v, want ErrValidatorKeyFile", err)
	}
	if string(mustRead(t, link)) != string(mustRead(t, key)) {
		t.Fatal("the key file in the node home was changed")
	}
}

func TestPrepareValidatorRaisesSignState(t *testing.T) {
	cases := []struct {
		name      string
		seen      int64
		last      SignState // the validator state this replica kept
		onDisk    string    // the state file found in the node home
		watermark string
		want      SignState
	}{
		{"fresh state: next height blocked", 100, SignState{}, `{"height":"0","round":0,"step":0}`, "",
			SignState{101, math.MaxInt32, 3}},
		{"published watermark above", 100, SignState{}, "", `{"height":"150","round":2,"step":2}`,
			SignState{150, 2, 2}},
		{"own last state above", 100, SignState{160, 0, 3}, "", `{"height":"150","round":2,"step":2}`,
			SignState{160, 0, 3}},
		{"state file left by a crashed validator", 100, SignState{}, `{"height":"170","round":1,"step":1,"signature":"AA=="}`, "",
			SignState{170, 1, 1}},
		{"stale state file is not used as is", 100, SignState{}, `{"height":"20","round":0,"step":3}`, "",
			SignState{101, math.MaxInt32, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, key := home(t, "")
			n := newNode(t, h, key)
			if err := os.MkdirAll(n.p.own, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := writeState(n.p.vstate, tc.last); err != nil {
				t.Fatal(err)
			}
			if tc.onDisk != "" {
				write(t, n.p.state, tc.onDisk)
			}
			n.seen.Store(tc.seen)
			var wm []byte
			if tc.watermark != "" {
				wm = []byte(tc.watermark)
			}
			if err := n.Prepare(context.Background(), supervisor.RoleValidator, wm); err != nil {
				t.Fatal(err)
			}
			got, err := readState(n.p.state)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("state file %+v, want %+v", got, tc.want)
			}
			if kept, _ := readState(n.p.vstate); kept != tc.want {
				t.Fatalf("kept state %+v, want %+v (persisted before the key is linked)", kept, tc.want)
			}
			if ok, _ := keylink.Verify(n.p.key, key); !ok {
				t.Fatal("validator key not linked")
			}
			// The watermark is the state file, in the same format.
			b, err := n.Watermark()
			if err != nil {
				t.Fatal(err)
			}
			var back SignState
			if err := json.Unmarshal(b, &back); err != nil || back != tc.want {
				t.Fatalf("watermark %s (%v), want %+v", b, err, tc.want)
			}
		})
	}
}

func TestPrepareValidatorNeedsAnObservedHeight(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, nil); err == nil {
		t.Fatal("validator prepared without any observed height")
	}
	if ok, _ := keylink.Verify(n.p.key, key); ok {
		t.Fatal("validator key linked after a refused prepare")
	}
}

func TestVoterAfterValidatorKeepsItsState(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	n.seen.Store(10)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	write(t, n.p.state, `{"height":"42","round":0,"step":3}`) // the node signed on
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := keylink.Verify(n.p.key, key); ok {
		t.Fatal("validator key still linked in the voter role")
	}
	if st, _ := readState(n.p.state); st != (SignState{}) {
		t.Fatalf("voter state %+v, want zero", st)
	}
	if kept, _ := readState(n.p.vstate); kept != (SignState{42, 0, 3}) {
		t.Fatalf("kept validator state %+v, want height 42", kept)
	}
}

func TestCommandDisablesDoubleSignCheck(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	cmd, err := n.Command(supervisor.RoleValidator)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(cmd.Args, " "), "start --home "+h+" --consensus.double_sign_check_height 0") {
		t.Fatalf("command %v", cmd.Args)
	}
}

func TestRPCURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://0.0.0.0:26657":   "http://127.0.0.1:26657",
		"tcp://127.0.0.1:36657": "http://127.0.0.1:36657",
		"":                      "http://127.0.0.1:26657",
	} {
		if got, err := rpcURL(in); err != nil || got != want {
			t.Errorf("rpcURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := rpcURL("unix:///tmp/rpc.sock"); err == nil {
		t.Error("unix socket accepted")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
