package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/cometbft"
	"github.com/valguard/valguard/internal/consultest"
)

// snapshot lists every file under dir with its mode and content, to show
// a refused start changed nothing on disk.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSignerModeRefusesBadInput: each bad signer-mode setting is refused at
// once with a message naming the fix, and the node home is unchanged.
func TestSignerModeRefusesBadInput(t *testing.T) {
	agent := consultest.Start(t)
	dir := t.TempDir()
	home, key := cometHome(t, dir)
	genesis := filepath.Join(home, "config", "genesis.json")
	if err := os.WriteFile(genesis, []byte(`{"chain_id":"test-chain"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(home, "config", "config.toml")
	base := []string{"run", "--metrics-addr", "", "--node-binary", "true", "--consul-url", "http://" + agent.Addr,
		"--node-home", home, "--validator-key", key}
	signer := append(append([]string{}, base...), "--sign-mode", "signer")
	cases := []struct {
		name  string
		args  []string
		setup func(t *testing.T) func()
		want  string
	}{
		{"neard has no signer mode", []string{"run", "--node", "neard", "--sign-mode", "signer", "--node-home", home}, nil,
			`--sign-mode "signer" is not supported with --node neard`},
		{"unknown sign mode", append(append([]string{}, base...), "--sign-mode", "remote"), nil, `--sign-mode "remote" is not supported`},
		{"signer flag in restart mode", append(append([]string{}, base...), "--signer-park-hold", "3s"), nil,
			"--signer-park-hold is a --sign-mode signer setting"},
		{"signers in restart mode", append(append([]string{}, base...), "--signers", "any"), nil,
			"--signers is a --sign-mode signer setting"},
		{"unknown signer policy", append(append([]string{}, signer...), "--signers", "all"), nil,
			`--signers "all": want leader`},
		{"deposition under --signers any", append(append([]string{}, signer...), "--signers", "any", "--signer-depose-after", "2s"), nil,
			"--signer-depose-after 2s with --signers any"},
		{"park hold not below the node's read timeout", append(append([]string{}, signer...), "--signer-park-hold", "5s"), nil,
			"--signer-park-hold 5s"},
		{"fence timeout not below the park hold", append(append([]string{}, signer...), "--signer-park-hold", "2s", "--fence-timeout", "2s"), nil,
			"--fence-timeout 2s"},
		{"config.toml points priv_validator_laddr elsewhere", signer, func(t *testing.T) func() {
			old, err := os.ReadFile(config)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(config, append([]byte("priv_validator_laddr = \"tcp://127.0.0.1:26659\"\n"), old...), 0o600); err != nil {
				t.Fatal(err)
			}
			return func() { _ = os.WriteFile(config, old, 0o600) }
		}, "priv_validator_laddr"},
		{"signer address served by another process", append(append([]string{}, signer...), "--signer-addr", "unix://"+filepath.Join(dir, "busy.sock")),
			func(t *testing.T) func() {
				ln, err := net.Listen("unix", filepath.Join(dir, "busy.sock"))
				if err != nil {
					t.Fatal(err)
				}
				return func() { ln.Close() }
			}, "another process serves"},
		{"a regular file at the socket path", append(append([]string{}, signer...), "--signer-addr", "unix://"+filepath.Join(dir, "file.sock")),
			func(t *testing.T) func() {
				p := filepath.Join(dir, "file.sock")
				if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				return func() { os.Remove(p) }
			}, "not a socket"},
		{"relative socket path", append(append([]string{}, signer...), "--signer-addr", "unix://privval.sock"), nil, "--signer-addr: "},
		{"watermark of another chain", signer, func(t *testing.T) func() {
			c := agent.Client(t)
			k, err := cometbft.LoadKey(key)
			if err != nil {
				t.Fatal(err)
			}
			wm := "valguard/" + k.Address + "/watermark"
			if _, err := c.KV().Put(&api.KVPair{Key: wm, Value: []byte(`{"chain_id":"other-chain","height":"7","round":0,"step":2}`)}, nil); err != nil {
				t.Fatal(err)
			}
			return func() { _, _ = c.KV().Delete(wm, nil) }
		}, `of chain "other-chain", but the node's genesis is of "test-chain"`},
	}
	before := snapshot(t, home)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup(t)()
			}
			refused(t, tc.args, tc.want)
		})
	}
	if after := snapshot(t, home); after != before {
		t.Fatalf("a refused start changed the node home:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
