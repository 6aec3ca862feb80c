package neard

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// linkTarget is where the symlink at path points, "" when path is not a
// symlink or absent.
func linkTarget(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is a %s, want a symlink or nothing", path, fi.Mode().Type())
	}
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

func readConfigJSON(t *testing.T, f *fixture) []byte {
	t.Helper()
	data, err := os.ReadFile(f.path("config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// assertOnlyNetworkChanged checks that config.json equals the original
// byte for byte once network.addr and network.public_addrs are set back.
func assertOnlyNetworkChanged(t *testing.T, f *fixture) {
	t.Helper()
	got := readConfigJSON(t, f)
	orig := gjson.GetBytes(f.originalConfigJSON, "network")
	back, err := sjson.SetBytes(got, "network.addr", orig.Get("addr").String())
	if err != nil {
		t.Fatal(err)
	}
	if back, err = sjson.SetRawBytes(back, "network.public_addrs", []byte(orig.Get("public_addrs").Raw)); err != nil {
		t.Fatal(err)
	}
	if string(back) != string(f.originalConfigJSON) {
		t.Fatalf("config.json changed beyond network.addr/public_addrs:\n%s", got)
	}
}

func TestRolesRoundTrip(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(t)
	cfg.PublicAddresses = []string{"203.0.113.7", "[2001:db8::1]:24600"}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if err := n.Prepare(ctx, supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if got := linkTarget(t, f.path("validator_key.json")); got != "" {
		t.Fatalf("voter: validator_key.json -> %s", got)
	}
	if got := linkTarget(t, f.path("node_key.json")); got != f.voterNode.Path {
		t.Fatalf("voter: node_key.json -> %q, want %s", got, f.voterNode.Path)
	}
	conf := readConfigJSON(t, f)
	if got := gjson.GetBytes(conf, "network.addr").String(); got != DefaultVoterAddr {
		t.Fatalf("voter network.addr = %s", got)
	}
	if got := gjson.GetBytes(conf, "network.public_addrs").Raw; got != "[]" {
		t.Fatalf("voter network.public_addrs = %s", got)
	}
	assertOnlyNetworkChanged(t, f)
	// neard init's node_key.json was moved aside, never deleted.
	aside, _ := filepath.Glob(f.path("node_key.json.valguard-moved-*"))
	if len(aside) != 1 {
		t.Fatalf("init's node_key.json moved aside: %v", aside)
	}
	if data, _ := os.ReadFile(aside[0]); string(data) != string(f.initNodeKey) {
		t.Fatal("moved-aside node_key.json lost its content")
	}

	if err := n.Prepare(ctx, supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	if got := linkTarget(t, f.path("validator_key.json")); got != f.validator.Path {
		t.Fatalf("validator: validator_key.json -> %q", got)
	}
	if got := linkTarget(t, f.path("node_key.json")); got != f.validatorNode.Path {
		t.Fatalf("validator: node_key.json -> %q", got)
	}
	conf = readConfigJSON(t, f)
	if got := gjson.GetBytes(conf, "network.addr").String(); got != DefaultValidatorAddr {
		t.Fatalf("validator network.addr = %s", got)
	}
	var public []string
	for _, v := range gjson.GetBytes(conf, "network.public_addrs").Array() {
		public = append(public, v.String())
	}
	want := []string{f.validatorNode.PublicKey + "@203.0.113.7:24567", f.validatorNode.PublicKey + "@[2001:db8::1]:24600"}
	if !slices.Equal(public, want) {
		t.Fatalf("validator public_addrs = %v, want %v", public, want)
	}
	assertOnlyNetworkChanged(t, f)

	if err := n.Prepare(ctx, supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if got := linkTarget(t, f.path("validator_key.json")); got != "" {
		t.Fatalf("voter again: validator_key.json -> %s", got)
	}
	if got := gjson.GetBytes(readConfigJSON(t, f), "network.public_addrs").Raw; got != "[]" {
		t.Fatalf("voter again: public_addrs = %s", got)
	}
	for _, k := range []Key{f.validator, f.validatorNode, f.voterNode} {
		if _, err := LoadNodeKey(k.Path); err != nil {
			t.Fatalf("key %s damaged: %v", k.Path, err)
		}
	}
}

func TestPublicAddrsLeftAloneWithoutPublicAddress(t *testing.T) {
	f := newFixture(t)
	conf, _ := sjson.SetBytes(f.originalConfigJSON, "network.public_addrs", []string{"ed25519:operator@198.51.100.1:24567"})
	f.originalConfigJSON = conf
	if err := os.WriteFile(f.path("config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []supervisor.Role{supervisor.RoleVoter, supervisor.RoleValidator} {
		if err := n.Prepare(context.Background(), r, nil); err != nil {
			t.Fatal(err)
		}
		if got := gjson.GetBytes(readConfigJSON(t, f), "network.public_addrs.0").String(); got != "ed25519:operator@198.51.100.1:24567" {
			t.Fatalf("%s: operator's public_addrs replaced: %q", r, got)
		}
	}
}

func TestVoterNodeKeyCreatedOnce(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(t)
	cfg.VoterNodeKey = ""
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(f.home, "valguard", "voter_node_key.json")
	k, err := LoadNodeKey(created)
	if err != nil {
		t.Fatalf("voter node key not created: %v", err)
	}
	if got := linkTarget(t, f.path("node_key.json")); got != created {
		t.Fatalf("node_key.json -> %q, want %s", got, created)
	}
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if again, _ := LoadNodeKey(created); again.PublicKey != k.PublicKey {
		t.Fatal("voter node key regenerated on the second start")
	}
}

func TestValidatorKeyAsRegularFileIsRefused(t *testing.T) {
	f := newFixture(t)
	data, _ := os.ReadFile(f.validator.Path)
	if err := os.WriteFile(f.path("validator_key.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Prepare(context.Background(), supervisor.RoleVoter, nil)
	if !errors.Is(err, keylink.ErrValidatorKeyFile) {
		t.Fatalf("Prepare(voter) = %v, want ErrValidatorKeyFile", err)
	}
	if got, _ := os.ReadFile(f.path("validator_key.json")); string(got) != string(data) {
		t.Fatal("the validator key file was changed")
	}
}

func TestCustomKeyFileNames(t *testing.T) {
	f := newFixture(t)
	conf, _ := sjson.SetBytes(f.originalConfigJSON, "validator_key_file", "keys/vk.json")
	conf, _ = sjson.SetBytes(conf, "node_key_file", "keys/nk.json")
	if err := os.WriteFile(f.path("config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.path("keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	if got := linkTarget(t, f.path("keys/vk.json")); got != f.validator.Path {
		t.Fatalf("validator_key_file link -> %q", got)
	}
	if got := linkTarget(t, f.path("keys/nk.json")); got != f.validatorNode.Path {
		t.Fatalf("node_key_file link -> %q", got)
	}
}

func TestCommand(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(t)
	cfg.BootNodes = "ed25519:abc@127.0.0.1:24567"
	cfg.Args = []string{"--min-peers", "1"}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := n.Command(supervisor.RoleValidator)
	got := strings.Join(cmd.Args[1:], " ")
	want := "--home " + f.home + " run --boot-nodes ed25519:abc@127.0.0.1:24567 --min-peers 1"
	if got != want {
		t.Fatalf("command %q, want %q", got, want)
	}
}

func TestConfigChangedUnderValguardIsRefused(t *testing.T) {
	f := newFixture(t)
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := sjson.SetBytes(f.originalConfigJSON, "validator_key_file", "elsewhere.json")
	if err := os.WriteFile(f.path("config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	err = n.Prepare(context.Background(), supervisor.RoleVoter, nil)
	if err == nil || !strings.Contains(err.Error(), "restart valguard") {
		t.Fatalf("Prepare after validator_key_file changed = %v", err)
	}
}

func TestLinkedConfigStaysALink(t *testing.T) {
	f := newFixture(t)
	real := filepath.Join(f.keys, "config.json")
	if err := os.Rename(f.path("config.json"), real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, f.path("config.json")); err != nil {
		t.Fatal(err)
	}
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if got := linkTarget(t, f.path("config.json")); got != real {
		t.Fatalf("config.json -> %q, want the link kept", got)
	}
	data, _ := os.ReadFile(real)
	if got := gjson.GetBytes(data, "network.addr").String(); got != DefaultVoterAddr {
		t.Fatalf("linked config.json network.addr = %q", got)
	}
}
