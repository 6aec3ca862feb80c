// Command neardstandin is a test-only stand-in for NEAR's neard binary.
//
// neard (nearcore, written in Rust) cannot be built on our machines: no
// crates registry is reachable. This small Go program stands in for it in
// tests. It follows neard's real interface — the command line, config.json,
// the key files, the HTTP endpoints /status, /health and /metrics, the
// JSON-RPC status method, and the SIGHUP validator-key reload of nearcore ≥
// 2.1 — and nothing more. It is not a NEAR node: there is no networking
// between nodes, no consensus, no state and no database. It is never
// shipped; build it from tests (go build -o DIR/neard ./internal/neardstandin).
//
// # Command line
//
//	neard --version
//	neard [--home DIR] init [--chain-id ID] [--account-id ACC]
//	neard [--home DIR] run [--boot-nodes LIST]
//
// --home (also --home=DIR) is a global flag given before the subcommand;
// it defaults to ~/.near. Usage errors exit 2, every other failure exits 1
// with a message on stderr.
//
// init writes config.json (neard's default, with its many fields, which
// makes it the fixture proving that unknown fields survive a rewrite),
// genesis.json (chain_id, genesis_time, protocol_version, and the validator
// when --account-id is given), node_key.json (account_id "node") and, only
// with --account-id, validator_key.json. It refuses to overwrite an existing
// config.json. --chain-id defaults to "localnet".
//
// run reads config.json: rpc.addr, network.addr, network.boot_nodes,
// genesis_file, validator_key_file and node_key_file. Paths are relative to
// the home unless absolute; symlinks are followed. The node key is required.
// The validator key is optional: without it the node runs as a
// non-validator. Key files are {"account_id", "public_key", "secret_key"}
// with "ed25519:<base58>" values (the legacy name "private_key" is
// accepted); a key whose public half does not match its secret exits 1.
//
// # Behaviours modelled
//
//   - Start-up: the config and keys are read, then STANDIN_START_DELAY is
//     slept before any port is bound (neard opening its database).
//   - network.addr: a TCP listener that accepts and closes connections.
//   - rpc.addr: GET /status (neard's StatusResponse schema), GET /health
//     (200 null, 503 while syncing), GET /metrics (near_block_height_head, near_is_validator,
//     near_sync_status), POST / JSON-RPC 2.0 with the method "status"; any
//     other method is error -32601 "Method not found".
//   - The chain: height h is reached at genesis + h·interval, so stand-ins
//     given the same genesis agree on the head. Hashes are base58 SHA-256
//     digests of the height. Validators are those of genesis.json.
//   - Sync: for STANDIN_SYNC_DELAY after binding, /status reports
//     syncing=true with half the head's height, near_sync_status is 7, and
//     nothing is produced.
//   - Production: once synced, each height the head reaches while a
//     validator key is loaded is "produced": the line "HEIGHT ACCOUNT PID"
//     is appended to STANDIN_JOURNAL (one write, then fsync). A key loaded
//     at head h produces from h+1 on. The journal is the tests' double-sign
//     oracle: no height may appear twice for one account.
//   - SIGHUP, version ≥ 2.1 (nearcore PR #11536): config.json is re-read and
//     the validator key file loaded if it exists. If it does not, the key
//     already loaded is kept (nearcore issue #11995: removing the key and
//     sending SIGHUP did not stop a node validating). Version < 2.1: SIGHUP
//     reloads only the log config; nothing changes.
//     An unreadable config.json or an invalid key file at SIGHUP is logged
//     and the loaded key kept.
//   - SIGTERM or SIGINT: wait STANDIN_SHUTDOWN_DELAY (RocksDB closing),
//     still serving and producing, then exit 0. During the start delay
//     they exit 0 at once.
//
// # Knobs (environment)
//
//	STANDIN_VERSION         release reported and used for SIGHUP (default 2.1.1)
//	STANDIN_GENESIS         genesis, Unix milliseconds (default: genesis_time
//	                        of genesis.json, else the process start)
//	STANDIN_BLOCK_INTERVAL  Go duration between heights (default 500ms)
//	STANDIN_START_DELAY     Go duration before binding ports (default 0)
//	STANDIN_SYNC_DELAY      Go duration of syncing after binding (default 0)
//	STANDIN_SHUTDOWN_DELAY  Go duration from SIGTERM to exit (default 0)
//	STANDIN_JOURNAL         file to append produced heights to (default none)
//	STANDIN_SIGHUP          "ignore": SIGHUP is logged, the key never loaded
//	                        (a node that does not take the key)
//
// # Logs
//
// Events are JSON lines on stderr (zerolog), each with "pid" and a stable
// "message": "starting", "validator key loaded" (at start-up), "no
// validator key: running as a non-validator", "opening database" (start
// delay), "listening", "synced", "SIGHUP received", "validator key
// reloaded" (with account_id), "validator key file missing: keeping the
// loaded key", "validator key file missing: still not a validator",
// "validator key invalid: keeping the current key", "config reload failed:
// keeping the current key", "SIGHUP ignored", "SIGHUP reloads only the log
// config in this version", "shutting down", "already shutting down",
// "stopped". A fatal error is one plain line, "neard: <error>", before
// exit 1.
package main
