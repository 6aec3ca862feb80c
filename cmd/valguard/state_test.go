package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/valguard/valguard/internal/consultest"
)

// valguardOut runs valguard and returns its combined output and error.
func valguardOut(args ...string) (string, error) {
	cmd := exec.Command(valguardBin, args...)
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// filePVState writes a real FilePV state file that signed a prevote at
// height h of chain, and returns its path.
func filePVState(t *testing.T, dir, chain string, h int64) string {
	t.Helper()
	keyPath, statePath := filepath.Join(dir, "key.json"), filepath.Join(dir, "state.json")
	pv := privval.NewFilePV(ed25519.GenPrivKey(), keyPath, statePath)
	v := &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: h, Round: 0}
	if err := pv.SignVote(chain, v); err != nil {
		t.Fatal(err)
	}
	return statePath
}

// TestStateImportAndShow imports sign states into a real Consul: a FilePV
// state is taken as is (sign bytes included), a lower one, a malformed
// one and one of another chain are refused with the watermark unchanged,
// and a tmkms state needs a chain id.
func TestStateImportAndShow(t *testing.T) {
	agent := consultest.Start(t)
	dir := t.TempDir()
	consul := []string{"--consul-url", "http://" + agent.Addr, "--validator-id", "0A0B"}
	show := func() map[string]any {
		t.Helper()
		out, err := valguardOut(append([]string{"state", "show", "--json"}, consul...)...)
		if err != nil {
			t.Fatalf("state show: %v\n%s", err, out)
		}
		var v struct {
			Watermark map[string]any `json:"watermark"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("state show --json: %v\n%s", err, out)
		}
		return v.Watermark
	}
	if w := show(); w != nil {
		t.Fatalf("empty consul shows %v", w)
	}
	imp := func(file string, extra ...string) (string, error) {
		return valguardOut(append(append([]string{"state", "import"}, append(consul, extra...)...), file)...)
	}

	// No chain id anywhere.
	sub := func(name string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	f10 := filePVState(t, sub("h10"), "test-chain", 10)
	if out, err := imp(f10); err == nil || !strings.Contains(out, "set --chain-id") {
		t.Fatalf("import without a chain id: %v\n%s", err, out)
	}
	if out, err := imp(f10, "--chain-id", "test-chain"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	w := show()
	if w["height"] != float64(10) || w["step"] != float64(2) || w["chain_id"] != "test-chain" || w["signed"] != true || w["sign_bytes_sha256"] == "" {
		t.Fatalf("after import: %v", w)
	}

	refusals := []struct {
		name, want string
		file       func() string
		extra      []string
	}{
		{"lower", "would lower the watermark", func() string { return filePVState(t, sub("h5"), "test-chain", 5) }, nil},
		{"another chain", "differs from the stored watermark", func() string { return filePVState(t, sub("other"), "test-chain", 20) }, []string{"--chain-id", "other-chain"}},
		{"malformed", "give a priv_validator_state.json or a tmkms state file", func() string {
			p := filepath.Join(dir, "bad.json")
			if err := os.WriteFile(p, []byte(`{"height":"x"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, nil},
		{"missing", "state file", func() string { return filepath.Join(dir, "none.json") }, nil},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			out, err := imp(tc.file(), tc.extra...)
			if err == nil || !strings.Contains(out, tc.want) || strings.Contains(out, "panic") {
				t.Fatalf("import %s: %v\n%s", tc.name, err, out)
			}
			if w := show(); w["height"] != float64(10) {
				t.Fatalf("a refused import changed the watermark: %v", w)
			}
		})
	}

	// A tmkms state file above it: no sign bytes, the stored chain id.
	tm := filepath.Join(dir, "tmkms.json")
	if err := os.WriteFile(tm, []byte(`{"height":"12","round":"0","step":1,"block_id":null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := imp(tm); err != nil {
		t.Fatalf("tmkms import: %v\n%s", err, out)
	}
	if w := show(); w["height"] != float64(12) || w["step"] != float64(2) || w["signed"] != false || w["chain_id"] != "test-chain" {
		t.Fatalf("after the tmkms import: %v", w)
	}
}
