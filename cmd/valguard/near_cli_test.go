package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mr-tron/base58"
	"github.com/tidwall/gjson"
)

// writeNEARKey writes a NEAR key file (validator_key.json / node_key.json
// format) and returns its public key.
func writeNEARKey(t *testing.T, path, account string) string {
	t.Helper()
	pub, secret, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk := "ed25519:" + base58.Encode(pub)
	data, _ := json.Marshal(map[string]string{"account_id": account, "public_key": pk, "secret_key": "ed25519:" + base58.Encode(secret)})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return pk
}

// nearHome is a neard home with the realistic config.json fixture.
func nearHome(t *testing.T, dir string) string {
	t.Helper()
	home := filepath.Join(dir, "near")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("../../neard/testdata/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}

// TestKuutamodEnvironmentAndCredentials runs valguard with nothing but a
// kuutamod environment and systemd credentials: the node type becomes
// neard, every KUUTAMO_* name takes effect and is reported once.
func TestKuutamodEnvironmentAndCredentials(t *testing.T) {
	dir := t.TempDir()
	home := nearHome(t, dir)
	creds := filepath.Join(dir, "creds")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	writeNEARKey(t, filepath.Join(creds, "validator_key.json"), "pool.poolv1.near")
	writeNEARKey(t, filepath.Join(creds, "validator_node_key.json"), "node")
	writeNEARKey(t, filepath.Join(creds, "voter_node_key.json"), "node")
	kuutamo := map[string]string{
		"KUUTAMO_NEARD_HOME":             home,
		"KUUTAMO_CONSUL_URL":             "http://127.0.0.1:1",
		"KUUTAMO_NODE_ID":                "replica-k",
		"KUUTAMO_ACCOUNT_ID":             "pool.poolv1.near",
		"KUUTAMO_EXPORTER_ADDRESS":       "127.0.0.1:0",
		"KUUTAMO_VOTER_NETWORK_ADDR":     "0.0.0.0:25568",
		"KUUTAMO_VALIDATOR_NETWORK_ADDR": "0.0.0.0:25567",
		"KUUTAMO_NEARD_BOOTNODES":        "ed25519:abc@127.0.0.1:24567",
		"KUUTAMO_PUBLIC_ADDRESS":         "203.0.113.9",
	}
	cmd := exec.Command(valguardBin, "run", "--node-binary", "true", "--max-start-failures", "1", "--log-format", "json")
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+creds)
	for k, v := range kuutamo {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, _ := cmd.CombinedOutput()
	text := string(out)
	for name := range kuutamo {
		if n := strings.Count(text, "\"env\":\""+name+"\""); n != 1 {
			t.Errorf("%s reported %d times, want once:\n%s", name, n, text)
		}
	}
	start := event(t, text, "valguard starting")
	for key, want := range map[string]string{
		"node": "neard", "replica": "replica-k", "validator": "pool.poolv1.near",
		"validator_key": filepath.Join(creds, "validator_key.json"), "node_home": home,
	} {
		if got := gjson.Get(start, key).String(); got != want {
			t.Errorf("valguard starting: %s = %q, want %q", key, got, want)
		}
	}
	if got := gjson.Get(start, "stop_timeout").Float(); got != 60000 {
		t.Errorf("neard stop timeout %v ms, want 60000", got)
	}
	if got := gjson.Get(event(t, text, "node started"), "cmd").String(); !strings.Contains(got, "run --boot-nodes ed25519:abc@127.0.0.1:24567") {
		t.Errorf("node command %q does not pass the boot nodes", got)
	}
	link, err := os.Readlink(filepath.Join(home, "node_key.json"))
	if err != nil || link != filepath.Join(creds, "voter_node_key.json") {
		t.Errorf("node_key.json -> %q (%v), want the voter node key credential", link, err)
	}
	conf, _ := os.ReadFile(filepath.Join(home, "config.json"))
	if got := gjson.GetBytes(conf, "network.addr").String(); got != "0.0.0.0:25568" {
		t.Errorf("network.addr %q, want the KUUTAMO_VOTER_NETWORK_ADDR", got)
	}
	if _, err := os.Lstat(filepath.Join(home, "validator_key.json")); !os.IsNotExist(err) {
		t.Errorf("validator_key.json present on a voter: %v", err)
	}
}

// event is the first valguard log event with message msg.
func event(t *testing.T, log, msg string) string {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if gjson.Get(line, "message").String() == msg {
			return line
		}
	}
	t.Fatalf("no %q event in:\n%s", msg, log)
	return ""
}

func TestRunRefusesBadNEARInput(t *testing.T) {
	dir := t.TempDir()
	home := nearHome(t, dir)
	key := filepath.Join(dir, "validator_key.json")
	writeNEARKey(t, key, "pool.poolv1.near")
	vnode := filepath.Join(dir, "validator_node_key.json")
	writeNEARKey(t, vnode, "node")
	noAccount := filepath.Join(dir, "no_account.json")
	writeNEARKey(t, noAccount, "")
	base := []string{"run", "--metrics-addr", "", "--node-binary", "true", "--consul-url", "http://127.0.0.1:1", "--node", "neard", "--node-home", home}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"key without account", []string{"--validator-key", noAccount, "--validator-node-key", vnode}, "has no account_id"},
		{"same node keys", []string{"--validator-key", key, "--validator-node-key", vnode, "--voter-node-key", vnode}, "--voter-node-key: "},
		{"same addresses", []string{"--validator-key", key, "--validator-node-key", vnode, "--voter-network-addr", "0.0.0.0:24567"}, "--voter-network-addr: the validator and the voter network addresses are both"},
		{"no validator node key", []string{"--validator-key", key, "--promotion", "restart"}, "--validator-node-key: no validator node key"},
		{"bad promotion", []string{"--validator-key", key, "--validator-node-key", vnode, "--promotion", "warm"}, "--promotion: promotion \"warm\": want hot, restart or auto"},
		{"no config.json", []string{"--validator-key", key, "--validator-node-key", vnode, "--node-home", dir}, "--node-home: "},
		{"cometbft with a neard flag", []string{"--node", "cometbft", "--validator-key", key, "--boot-nodes", "x"}, "--boot-nodes is a neard setting"},
	}
	before, _ := os.ReadFile(filepath.Join(home, "config.json"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { refused(t, append(base, tc.args...), tc.want) })
	}
	if after, _ := os.ReadFile(filepath.Join(home, "config.json")); string(after) != string(before) {
		t.Fatal("config.json changed by a refused start")
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 1 {
		t.Fatalf("refused starts left files in the home: %v", entries)
	}
}
