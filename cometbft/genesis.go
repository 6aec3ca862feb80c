package cometbft

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cometbft/cometbft/types"
)

// ChainID is the chain id in the node's genesis file (genesis_file in
// config.toml, default config/genesis.json). The file is read as a
// stream up to its top-level chain_id and never decoded whole: the
// genesis files of real chains run to hundreds of megabytes, and chain_id
// comes before app_state in the files CometBFT and the Cosmos SDK write.
// A chain id that is missing, empty, not a string or longer than
// CometBFT allows is an error.
func (n *Node) ChainID() (string, error) {
	f, err := os.Open(n.p.genesis)
	if err != nil {
		return "", fmt.Errorf("genesis file: %w", err)
	}
	defer f.Close()
	id, err := readChainID(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("genesis file %s: %w", n.p.genesis, err)
	}
	return id, nil
}

// readChainID reads a JSON object's top-level "chain_id" string, skipping
// other values token by token (nothing is kept of them).
func readChainID(r io.Reader) (string, error) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", fmt.Errorf("not a JSON object (%v)", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", err
		}
		if key, _ := t.(string); key != "chain_id" {
			if err := skipValue(dec); err != nil {
				return "", err
			}
			continue
		}
		t, err = dec.Token()
		if err != nil {
			return "", err
		}
		id, ok := t.(string)
		switch {
		case !ok:
			return "", fmt.Errorf("chain_id is %v, not a string", t)
		case id == "":
			return "", errors.New("chain_id is empty")
		case len(id) > types.MaxChainIDLen:
			return "", fmt.Errorf("chain_id is %d bytes, CometBFT allows %d", len(id), types.MaxChainIDLen)
		}
		return id, nil
	}
	return "", errors.New("no chain_id")
}

// skipValue reads one JSON value, of any depth, from dec.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
