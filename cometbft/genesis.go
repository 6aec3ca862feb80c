package cometbft

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cometbft/cometbft/types"
)

// LaunchWindow is how long after its genesis time a chain whose node has
// no block yet still counts as launching. A node that reports height 0
// and is not catching up counts as synced only while the genesis time is
// in the future or less than LaunchWindow ago: a chain at its launch may
// need this very validator for its first block, so waiting for a block
// would never end. Past the window a node with no block is taken for one
// whose home was wiped on a running chain, where CometBFT skips block
// sync when the node's validator (the validator's key in the signer mode)
// holds a third of the power or more, and reports height 0, not catching
// up, within a second: it never counts as synced then. The window is a
// trade-off: a wiped home within the first hour of a chain's life counts
// as launching, and a launch whose first block is more than an hour late
// (or a restart from an exported genesis that keeps the old genesis
// time) leaves replicas started after the window out of the election
// until the first block, which other validators must then produce.
const LaunchWindow = time.Hour

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
	t, err := topLevel(r, "chain_id")
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

// genesisTime is the genesis_time of the node's genesis file, read once
// (at the first status that needs it) and kept; a file that could not be
// read then keeps its error. Read as a stream like ChainID.
func (n *Node) genesisTime() (time.Time, error) {
	n.genesisOnce.Do(func() {
		n.genesisAt, n.genesisErr = readGenesisTimeFile(n.p.genesis)
		if n.genesisErr != nil {
			n.cfg.Log.Warn().Err(n.genesisErr).
				Msg("no genesis time: a node with no block yet never counts as synced")
			return
		}
		n.cfg.Log.Info().Time("genesis_time", n.genesisAt).Dur("launch_window", LaunchWindow).
			Msg("genesis time read: a node with no block yet counts as synced until launch_window after genesis_time")
	})
	return n.genesisAt, n.genesisErr
}

// launching reports whether the node's chain is at its launch at now: its
// genesis time is read and is in the future or less than LaunchWindow
// ago. An unreadable genesis time is no evidence of a launch.
func (n *Node) launching(now time.Time) bool {
	g, err := n.genesisTime()
	return err == nil && launching(g, now)
}

// launching: a chain with genesis time g is at its launch at now.
func launching(g, now time.Time) bool {
	return !g.IsZero() && now.Before(g.Add(LaunchWindow))
}

func readGenesisTimeFile(path string) (time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("genesis file: %w", err)
	}
	defer f.Close()
	g, err := readGenesisTime(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return time.Time{}, fmt.Errorf("genesis file %s: %w", path, err)
	}
	return g, nil
}

// readGenesisTime reads a JSON object's top-level "genesis_time", an RFC
// 3339 time as CometBFT writes it, skipping other values token by token.
// A missing genesis_time (CometBFT then takes each node's start time), one
// that is not a string or not a time, and the zero time are errors.
// initial_height plays no part: before its first block a node reports
// the height of its block store, 0, whatever the chain's initial height.
func readGenesisTime(r io.Reader) (time.Time, error) {
	t, err := topLevel(r, "genesis_time")
	if err != nil {
		return time.Time{}, err
	}
	s, ok := t.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("genesis_time is %v, not a string", t)
	}
	g, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("genesis_time %q: %w", s, err)
	}
	if g.IsZero() {
		return time.Time{}, fmt.Errorf("genesis_time %q is the zero time", s)
	}
	return g, nil
}

// topLevel reads a JSON object from r up to its top-level key and returns
// the first token of that key's value (a scalar, or the delimiter that
// opens an object or array), skipping other values token by token
// (nothing is kept of them). A missing key is the error "no <key>".
func topLevel(r io.Reader, key string) (json.Token, error) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v)", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if k, _ := t.(string); k != key {
			if err := skipValue(dec); err != nil {
				return nil, err
			}
			continue
		}
		return dec.Token()
	}
	return nil, errors.New("no " + key)
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
