package neard

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mr-tron/base58"

	"github.com/valguard/valguard/internal/atomicfile"
)

// Key is a NEAR key file: validator_key.json or node_key.json.
type Key struct {
	Path      string
	AccountID string
	PublicKey string // "ed25519:<base58>"
}

// keyFile is the JSON of a NEAR key file; older files name the secret key
// private_key.
type keyFile struct {
	AccountID  string `json:"account_id"`
	PublicKey  string `json:"public_key"`
	SecretKey  string `json:"secret_key,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
}

const keyPrefix = "ed25519:"

// LoadKey reads and checks the validator key at path: it must name an
// account and hold a well-formed ed25519 key pair.
func LoadKey(path string) (Key, error) {
	k, err := loadKey(path)
	if err != nil {
		return k, err
	}
	if k.AccountID == "" {
		return k, fmt.Errorf("validator key %s has no account_id: it must name the validator's account (the staking pool, e.g. \"mypool.poolv1.near\"); add \"account_id\" to the file", path)
	}
	return k, nil
}

// LoadNodeKey reads and checks a node key (node_key.json): a well-formed
// ed25519 key pair; its account_id does not matter.
func LoadNodeKey(path string) (Key, error) { return loadKey(path) }

func loadKey(path string) (Key, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Key{}, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return Key{}, fmt.Errorf("read key file: %w", err)
	}
	k, err := parseKey(data)
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", abs, err)
	}
	k.Path = abs
	return k, nil
}

// parseKey checks a key file's JSON: public key and secret key present,
// ed25519, base58, of the right lengths, and belonging together.
func parseKey(data []byte) (Key, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Key{}, fmt.Errorf("not a NEAR key file (want JSON with account_id, public_key, secret_key): %w", err)
	}
	secretText := f.SecretKey
	if secretText == "" {
		secretText = f.PrivateKey
	}
	if f.PublicKey == "" || secretText == "" {
		return Key{}, errors.New("public_key or secret_key missing: a NEAR key file has both (generate one with `neard init` or `near generate-key`)")
	}
	pub, err := decodeKey("public_key", f.PublicKey, ed25519.PublicKeySize)
	if err != nil {
		return Key{}, err
	}
	secret, err := decodeKey("secret_key", secretText, ed25519.PrivateKeySize)
	if err != nil {
		return Key{}, err
	}
	derived := ed25519.NewKeyFromSeed(secret[:ed25519.SeedSize])
	if !bytes.Equal(derived, secret) || !bytes.Equal(derived.Public().(ed25519.PublicKey), pub) {
		return Key{}, errors.New("public_key does not belong to secret_key: the file is damaged or was assembled from two keys")
	}
	return Key{AccountID: f.AccountID, PublicKey: f.PublicKey}, nil
}

// decodeKey decodes "ed25519:<base58>" of n bytes. Error messages quote
// public keys, never secret ones.
func decodeKey(field, s string, n int) ([]byte, error) {
	name := field
	if field == "public_key" {
		name = fmt.Sprintf("%s %q", field, s)
	}
	rest, ok := strings.CutPrefix(s, keyPrefix)
	if !ok {
		return nil, fmt.Errorf("%s: want an ed25519 key written \"ed25519:<base58>\" (other curves cannot be a validator or node key)", name)
	}
	b, err := base58.Decode(rest)
	if err != nil {
		return nil, fmt.Errorf("%s: not base58: %w", name, err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("%s: %d bytes, want %d", name, len(b), n)
	}
	return b, nil
}

// LockID is the lock id of a validator key: the upper-case hex of the
// first 20 bytes of SHA-256 of the raw public key ("ed25519:<base58>"), as
// (*Node).LockID. It names the key, not the account.
func LockID(publicKey string) (string, error) { return lockID(publicKey) }

func lockID(publicKey string) (string, error) {
	raw, err := decodeKey("public_key", publicKey, ed25519.PublicKeySize)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return strings.ToUpper(hex.EncodeToString(sum[:20])), nil
}

// holdsKey reports whether the file at path is a key file with publicKey.
// Unreadable or foreign files are not.
func holdsKey(path, publicKey string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	k, err := parseKey(data)
	if err != nil {
		return false, nil
	}
	return k.PublicKey == publicKey, nil
}

// ensureNodeKey creates a node key at path once, the way `neard init`
// writes node_key.json.
func ensureNodeKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	pub, secret, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(keyFile{
		AccountID: "node",
		PublicKey: keyPrefix + base58.Encode(pub),
		SecretKey: keyPrefix + base58.Encode(secret),
	}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
