package cometbft

import (
	"bytes"
	stded25519 "crypto/ed25519"
	"errors"
	"fmt"
	"os"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"
)

// PrivKey reads the validator key (Config.ValidatorKey, a FilePV
// priv_validator_key.json) into memory, for the signer mode. It is
// checked to be a well-formed ed25519 key (64 bytes, whose public half is
// the one its seed derives), to agree with the address and public key the
// file states, and to be the key New read (the same address): a key file
// replaced since start-up is refused. The key is returned to the caller
// only; nothing is written anywhere.
func (n *Node) PrivKey() (crypto.PrivKey, error) {
	return loadPrivKey(n.cfg.ValidatorKey, n.key.Address)
}

// loadPrivKey is PrivKey for the key file at path, which must have the
// address want.
func loadPrivKey(path, want string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("validator key %s: %w: valguard must be able to read it", path, err)
	}
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("validator key %s is not a CometBFT priv_validator_key.json: %w", path, err)
	}
	if k.PrivKey == nil {
		return nil, fmt.Errorf("validator key %s is not a CometBFT priv_validator_key.json: no priv_key", path)
	}
	if _, ok := k.PrivKey.(ed25519.PrivKey); !ok {
		return nil, fmt.Errorf("validator key %s is a %s key: the signer mode signs with ed25519 keys only", path, k.PrivKey.Type())
	}
	pub, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("validator key %s: %w", path, err)
	}
	if k.PubKey != nil && !k.PubKey.Equals(pub) {
		return nil, fmt.Errorf("validator key %s: its pub_key does not match its priv_key", path)
	}
	if got := pub.Address().String(); got != want {
		return nil, fmt.Errorf("validator key %s changed since valguard started (address %s, was %s): restart valguard to take a new key", path, got, want)
	}
	return k.PrivKey, nil
}

// pubKeyOf is priv's public key, or an error where CometBFT's PubKey
// would panic (an ed25519 key that is not 64 bytes or whose public half
// is zero) or return a public key the private key does not sign for (an
// ed25519 public half its seed does not derive).
func pubKeyOf(priv crypto.PrivKey) (pub crypto.PubKey, err error) {
	if k, ok := priv.(ed25519.PrivKey); ok {
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("malformed ed25519 priv_key: %d bytes, want %d", len(k), ed25519.PrivateKeySize)
		}
		want := stded25519.NewKeyFromSeed(k[:ed25519.SeedSize])
		if !bytes.Equal(want, k) {
			return nil, errors.New("malformed ed25519 priv_key: its public half is not the one its seed derives")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			pub, err = nil, fmt.Errorf("malformed %s priv_key: %v", priv.Type(), r)
		}
	}()
	return priv.PubKey(), nil
}
