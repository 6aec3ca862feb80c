// Package cometbft is valguard's adapter for CometBFT nodes (CometBFT
// itself, and Cosmos SDK chains whose daemons embed it). It implements the
// supervisor's Node interface.
//
// Roles:
//   - voter: priv_validator_key.json links to a non-validator key that the
//     adapter creates once per replica (<home>/valguard/), and the sign-state
//     file holds that key's empty state (S7).
//   - validator: priv_validator_key.json links to the validator key, and the
//     sign-state file is rewritten before every start so that it is at least
//     the latest committed height this replica observed + 1 (that whole
//     height blocked), at least the watermark the previous leader published,
//     and at least the last state this replica's own validator reached (S8).
//     A fresh or stale priv_validator_state.json is never used as it is.
//
// The node is started with --consensus.double_sign_check_height 0: CometBFT's
// own check refuses to start when it finds its validator's recent
// signatures, which after a takeover it always does (they are the previous
// leader's). The sign-state raise above replaces it.
//
// A remote signer (priv_validator_laddr) is refused: this adapter manages a
// file key.
package cometbft
