package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mr-tron/base58"
)

const ed25519Prefix = "ed25519:"

// errInvalidKey marks a key file that exists but holds no valid key.
var errInvalidKey = errors.New("invalid key file")

// keyFile is neard's key file: validator_key.json and node_key.json.
type keyFile struct {
	AccountID string `json:"account_id"`
	PublicKey string `json:"public_key"`
	SecretKey string `json:"secret_key"`
}

// key is a validated key file.
type key struct {
	AccountID string
	PublicKey string // "ed25519:<base58>"
}

// newKeyFile generates a fresh ed25519 key for account.
func newKeyFile(account string) (keyFile, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return keyFile{}, err
	}
	return keyFile{
		AccountID: account,
		PublicKey: ed25519Prefix + base58.Encode(pub),
		SecretKey: ed25519Prefix + base58.Encode(priv),
	}, nil
}

// write writes the key file as neard does (pretty JSON), mode 0600.
func (k keyFile) write(path string) error {
	b, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// readKey reads and validates a key file. A missing file (or a dangling
// symlink) gives an error matching os.ErrNotExist; a malformed one an
// error matching errInvalidKey.
func readKey(path string) (key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return key{}, err
	}
	k, err := parseKey(b)
	if err != nil {
		return key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// parseKey validates a key file's content: an account id, an ed25519
// public key of 32 bytes and a secret key of 64 bytes whose public half is
// the public key and derives from its seed. The legacy field name
// "private_key" is accepted for the secret key.
func parseKey(b []byte) (key, error) {
	var f struct {
		keyFile
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return key{}, fmt.Errorf("%w: %v", errInvalidKey, err)
	}
	if f.SecretKey == "" {
		f.SecretKey = f.PrivateKey
	}
	if f.AccountID == "" {
		return key{}, fmt.Errorf("%w: no account_id", errInvalidKey)
	}
	pub, err := decodeKey("public_key", f.PublicKey, ed25519.PublicKeySize)
	if err != nil {
		return key{}, err
	}
	sec, err := decodeKey("secret_key", f.SecretKey, ed25519.PrivateKeySize)
	if err != nil {
		return key{}, err
	}
	derived := ed25519.NewKeyFromSeed(sec[:ed25519.SeedSize]).Public().(ed25519.PublicKey)
	if !bytes.Equal(derived, pub) || !bytes.Equal(sec[ed25519.SeedSize:], pub) {
		return key{}, fmt.Errorf("%w: public_key does not match secret_key", errInvalidKey)
	}
	return key{AccountID: f.AccountID, PublicKey: f.PublicKey}, nil
}

func decodeKey(field, s string, size int) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, ed25519Prefix)
	if !ok {
		return nil, fmt.Errorf("%w: %s: want the prefix %q", errInvalidKey, field, ed25519Prefix)
	}
	b, err := base58.Decode(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errInvalidKey, field, err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%w: %s: %d bytes, want %d", errInvalidKey, field, len(b), size)
	}
	return b, nil
}
