//go:build chaosbroken

// A deliberately broken valguard for the fault drills' own test
// (internal/chaos): its cometbft node escapes the reap in the key-file
// mode (internal/chaos/broken says how), and the drills' checker must
// report the double sign that follows. Never built without the tag; the
// production binary does not contain this file.

package main

import (
	"github.com/valguard/valguard/chain"
	_ "github.com/valguard/valguard/cometbft" // registered before this file's init wraps it
	"github.com/valguard/valguard/internal/chaos/broken"
)

func init() {
	k, _ := chain.Lookup(nodeCometBFT)
	chain.Replace(broken.Escaping(k))
}
