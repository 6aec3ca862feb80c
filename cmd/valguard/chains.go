package main

// The chain adapters valguard is built with: each registers its node
// kinds with package chain (docs/adding-a-chain.md). A new chain is one
// more line here.
import (
	_ "github.com/valguard/valguard/cometbft"
	_ "github.com/valguard/valguard/neard"
)
