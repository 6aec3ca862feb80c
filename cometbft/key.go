package cometbft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/cometbft/cometbft/crypto"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"

	"github.com/valguard/valguard/internal/atomicfile"
	"github.com/valguard/valguard/internal/setting"
)

// Key is a CometBFT validator key, as read from priv_validator_key.json.
type Key struct {
	Path    string
	Address string // upper-case hex, as CometBFT prints it
	// PublicKey is "<type>:<base64>", the type as CometBFT's JSON names it,
	// e.g. "tendermint/PubKeyEd25519:<base64 of the 32 bytes>".
	PublicKey string
}

// LoadKey reads and checks a CometBFT priv_validator_key.json.
func LoadKey(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Key{}, setting.Errorf("ValidatorKey", "validator key %s: no such file: check the path (or $CREDENTIALS_DIRECTORY/priv_validator_key.json)", path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("validator key %s: %w: valguard must be able to read it", path, err)
	}
	pub, err := parseKey(data)
	if err != nil {
		return Key{}, fmt.Errorf("validator key %s is not a CometBFT priv_validator_key.json: %w", path, err)
	}
	printable, err := publicKeyString(pub)
	if err != nil {
		return Key{}, fmt.Errorf("validator key %s: public key: %w", path, err)
	}
	return Key{Path: path, Address: pub.Address().String(), PublicKey: printable}, nil
}

// parseKey parses a FilePV key and returns the public key of its private
// key (what the node itself uses), checked against the address in the file.
func parseKey(data []byte) (crypto.PubKey, error) {
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal(data, &k); err != nil {
		return nil, err
	}
	if k.PrivKey == nil {
		return nil, errors.New("no priv_key")
	}
	pub, err := pubKeyOf(k.PrivKey)
	if err != nil {
		return nil, err
	}
	if len(k.Address) > 0 && !bytes.Equal(pub.Address(), k.Address) {
		return nil, fmt.Errorf("address %s does not match the private key (%s)", k.Address, pub.Address())
	}
	return pub, nil
}

// keyAddress parses a FilePV key and returns the address of its private key.
func keyAddress(data []byte) (string, error) {
	pub, err := parseKey(data)
	if err != nil {
		return "", err
	}
	return pub.Address().String(), nil
}

// publicKeyString is "<type>:<value>" from CometBFT's JSON form of pub,
// {"type":"tendermint/PubKeyEd25519","value":"<base64>"}.
func publicKeyString(pub crypto.PubKey) (string, error) {
	b, err := cmtjson.Marshal(pub)
	if err != nil {
		return "", err
	}
	var j struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return "", err
	}
	if j.Type == "" || j.Value == "" {
		return "", fmt.Errorf("unexpected JSON form %s", b)
	}
	return j.Type + ":" + j.Value, nil
}

// holds reports whether the file at path is a CometBFT key with address
// addr. Unreadable or foreign files are not.
func holds(path, addr string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	a, err := keyAddress(data)
	if err != nil {
		return false, nil
	}
	return a == addr, nil
}

// ensureVoterKey creates the replica's non-validator key once.
func ensureVoterKey(p paths) error {
	if _, err := os.Stat(p.voterKey); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(p.own, 0o700); err != nil {
		return err
	}
	pv := privval.GenFilePV("", "")
	data, err := cmtjson.MarshalIndent(pv.Key, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(p.voterKey, data, 0o600)
}
