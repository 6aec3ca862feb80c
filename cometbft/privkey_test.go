package cometbft

import (
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/crypto/secp256k1"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"

	"github.com/valguard/valguard/supervisor"
)

func TestPrivKey(t *testing.T) {
	h, key := homeIn(t, shortDir(t), "")
	n := signerNode(t, h, key, "")
	priv, err := n.PrivKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := priv.(ed25519.PrivKey); !ok || priv.PubKey().Address().String() != n.Address() {
		t.Fatalf("PrivKey = %T with address %s, want the ed25519 key of %s", priv, priv.PubKey().Address(), n.Address())
	}
	want := privval.LoadFilePVEmptyState(key, "").Key.PrivKey
	if !priv.Equals(want) {
		t.Fatal("PrivKey is not the key in the file")
	}
	// The key signs what its public key verifies.
	sig, err := priv.Sign([]byte("msg"))
	if err != nil || !priv.PubKey().VerifySignature([]byte("msg"), sig) {
		t.Fatalf("signature does not verify (%v)", err)
	}

	good := string(mustRead(t, key))
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal([]byte(good), &k); err != nil {
		t.Fatal(err)
	}
	edBytes := []byte(k.PrivKey.(ed25519.PrivKey))
	privB64 := base64.StdEncoding.EncodeToString(edBytes)
	secp := secp256k1.GenPrivKey()
	secpFile, err := cmtjson.MarshalIndent(privval.FilePVKey{Address: secp.PubKey().Address(), PubKey: secp.PubKey(), PrivKey: secp}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	swapped := append(append([]byte{}, edBytes[:32]...), ed25519.GenPrivKey()[32:]...)
	cases := []struct {
		name    string
		content func(t *testing.T) string
		want    string
	}{
		{"another key than at start-up", func(t *testing.T) string {
			other := shortDir(t) + "/k.json"
			writeKey(t, other)
			return string(mustRead(t, other))
		}, "changed since valguard started"},
		{"secp256k1", func(*testing.T) string { return string(secpFile) }, "is a secp256k1 key: the signer mode signs with ed25519 keys only"},
		{"truncated ed25519 bytes", func(*testing.T) string {
			return strings.Replace(good, privB64, base64.StdEncoding.EncodeToString(edBytes[:20]), 1)
		}, "malformed ed25519 priv_key: 20 bytes"},
		{"public half not the seed's", func(*testing.T) string {
			return strings.Replace(good, privB64, base64.StdEncoding.EncodeToString(swapped), 1)
		}, "its public half is not the one its seed derives"},
		{"pub_key of another key", func(*testing.T) string {
			own := base64.StdEncoding.EncodeToString(k.PubKey.Bytes())
			other := base64.StdEncoding.EncodeToString(ed25519.GenPrivKey().PubKey().Bytes())
			if !strings.Contains(good, own) {
				t.Fatal("the key file does not hold its public key in base64")
			}
			return strings.Replace(good, own, other, 1)
		}, "its pub_key does not match its priv_key"},
		{"not JSON", func(*testing.T) string { return "{" }, "is not a CometBFT priv_validator_key.json"},
		{"no priv_key", func(*testing.T) string { return `{"address":"","pub_key":null}` }, "no priv_key"},
		{"missing file", nil, "valguard must be able to read it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.content == nil {
				n.cfg.ValidatorKey = key + ".missing"
				defer func() { n.cfg.ValidatorKey = key }()
			} else {
				write(t, key, tc.content(t))
				defer write(t, key, good)
			}
			got, err := n.PrivKey()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PrivKey = %v, %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
}

// A malformed ed25519 key makes CometBFT's PubKey panic; the adapter
// reports it instead, at New and wherever it reads a key file.
func TestMalformedKeyIsAnErrorNotAPanic(t *testing.T) {
	h, key := homeIn(t, shortDir(t), "")
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal(mustRead(t, key), &k); err != nil {
		t.Fatal(err)
	}
	ed := []byte(k.PrivKey.(ed25519.PrivKey))
	zeroPub := append(append([]byte{}, ed[:32]...), make([]byte, 32)...)
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{"short": {ed[:31], "malformed ed25519 priv_key: 31 bytes, want 64"}, "zero public half": {zeroPub, "malformed ed25519 priv_key: its public half"}} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(string(mustRead(t, key)), base64.StdEncoding.EncodeToString(ed), base64.StdEncoding.EncodeToString(tc.b), 1)
			path := shortDir(t) + "/k.json"
			write(t, path, bad)
			if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKey = %v, want an error containing %q", err, tc.want)
			}
			// In the node home (where holds reads it) it is a foreign file.
			n := newNode(t, h, key)
			_ = os.Remove(n.p.key) // a link to the voter key after the first run
			write(t, n.p.key, bad)
			if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
				t.Fatalf("Prepare with a malformed key file in the home: %v", err)
			}
		})
	}
}
