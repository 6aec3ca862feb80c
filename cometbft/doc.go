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
// A remote signer (priv_validator_laddr) is refused in this, the restart
// sign mode: the adapter manages a file key.
//
// Signer mode (Config.SignMode SignSigner): valguard holds the validator
// key in memory (PrivKey) and is the node's remote signer. The node runs
// in the voter role all the time, with its voter key file in the home
// (CometBFT loads a key file before it switches to the socket) and
// --priv_validator_laddr set to the signer address, which the node
// listens on and valguard dials (default unix://<home>/valguard/privval.sock).
// The validator role is ErrSignerMode: the key is never linked (S1′).
// config.toml's priv_validator_laddr must be empty or that address; a
// socket something accepts on, or anything but a socket at its path, is
// refused, and a stale socket removed before a start. The node reports
// the validator's key (it comes from valguard): any other key, or the
// validator key in the home's key file, is supervisor.ErrUnexpectedKey.
// Watermark is nil (the signer's watermark is fenced in Consul); the
// restart mode reads that watermark's shape, so switching back is safe.
// ChainID and LastSignedHeight (the floor from the chain) serve the
// signer.
//
// What could take the node out of these checks is refused with an error
// naming it and the fix (New for all of them, Prepare and Command again
// where the state can change at run time):
//   - node arguments that set the home, the key or state file,
//     priv_validator_laddr (in both sign modes), double_sign_check_height or the RPC/P2P listen
//     addresses, in any spelling;
//   - environment variables that set the same under a prefix the node
//     reads (CMT_, TM_, CMTHOME/TMHOME, a Cosmos SDK daemon's upper-cased
//     binary name, DAEMON_NAME); the node gets exactly the checked
//     environment;
//   - another config.* file that CometBFT would read before
//     config/config.toml;
//   - a config.toml changed since New (Prepare, for either role: restart
//     valguard to take new values);
//   - something already listening on the RPC or P2P address (New, and
//     Command before every start): a leftover node would be read as ours.
//
// At run time, a node started as a voter that reports a validator address
// other than its voter key's is supervisor.ErrUnexpectedKey (S7).
//
// Not covered: an environment prefix a Cosmos SDK daemon chooses itself
// (the envPrefix its main passes to server/cmd.Execute), and settings in
// app.toml.
package cometbft
