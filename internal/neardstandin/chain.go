package main

import (
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/mr-tron/base58"
)

// epochLength is the number of heights per epoch (mainnet's).
const epochLength = 43200

// chain is the stand-in's chain: height h is reached at genesis +
// h·interval, the same for every stand-in given the same genesis and
// interval. Height 0 is the genesis block.
type chain struct {
	genesis  time.Time
	interval time.Duration
}

// head is the height reached at t: floor((t − genesis)/interval), and 0
// before genesis.
func (c chain) head(t time.Time) int64 {
	d := t.Sub(c.genesis)
	if d < 0 {
		return 0
	}
	return int64(d / c.interval)
}

// blockTime is when height h is reached.
func (c chain) blockTime(h int64) time.Time {
	return c.genesis.Add(time.Duration(h) * c.interval)
}

// hashOf is a stand-in hash: base58 of SHA-256 of kind and height, so
// that a block hash, a state root and an epoch id of one height differ.
func hashOf(kind string, h int64) string {
	sum := sha256.Sum256([]byte(kind + ":" + strconv.FormatInt(h, 10)))
	return base58.Encode(sum[:])
}

// epochStart is the first height of the epoch holding h.
func epochStart(h int64) int64 {
	return h - h%epochLength
}
