package cometbft

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"

	"github.com/valguard/valguard/internal/atomicfile"
)

// Key is a CometBFT validator key, as read from priv_validator_key.json.
type Key struct {
	Path    string
	Address string // upper-case hex, as CometBFT prints it
}

// LoadKey reads and checks a CometBFT priv_validator_key.json.
func LoadKey(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Key{}, fmt.Errorf("validator key %s: no such file: check --validator-key (or $CREDENTIALS_DIRECTORY/priv_validator_key.json)", path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("validator key %s: %w: valguard must be able to read it", path, err)
	}
	addr, err := keyAddress(data)
	if err != nil {
		return Key{}, fmt.Errorf("validator key %s is not a CometBFT priv_validator_key.json: %w", path, err)
	}
	return Key{Path: path, Address: addr}, nil
}

// keyAddress parses a FilePV key and returns the address of its private key
// (what the node itself uses).
func keyAddress(data []byte) (string, error) {
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal(data, &k); err != nil {
		return "", err
	}
	if k.PrivKey == nil {
		return "", errors.New("no priv_key")
	}
	addr := k.PrivKey.PubKey().Address()
	if len(k.Address) > 0 && !bytes.Equal(addr, k.Address) {
		return "", fmt.Errorf("address %s does not match the private key (%s)", k.Address, addr)
	}
	return addr.String(), nil
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
