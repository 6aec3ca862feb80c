// Package neard is valguard's adapter for NEAR's neard. It implements
// supervisor.Node, supervisor.HotPromoter and supervisor.HeadFence; it
// never decides leadership.
//
// Roles, as kuutamod sets them up:
//
//   - voter: no validator key link (validator_key_file absent),
//     node_key_file linked to the voter node key, network.addr the voter
//     address (default 0.0.0.0:24568), network.public_addrs empty when
//     valguard owns it;
//   - validator (restart promotion): validator_key_file linked to the
//     validator key, node_key_file to the validator node key, network.addr
//     the validator address (default 0.0.0.0:24567), network.public_addrs
//     "<validator node key>@<public address>" when --public-address is set.
//
// config.json is rewritten atomically and only where valguard owns a field:
// every other byte stays as it was (gjson/sjson edit the text in place).
// The key file paths and rpc.addr are read from config.json.
//
// Hot promotion (nearcore ≥ 2.1 reloads validator_key_file on SIGHUP):
// the key is linked into the running voter, SIGHUP sent, and the promotion
// counts only once GET /status reports validator_account_id (and
// validator_public_key) of this validator within PromotionTimeout; the
// voter's node key and address stay, as in NEAR's own failover procedure.
// Demotion is never a SIGHUP (removing the key and sending SIGHUP did not
// stop a 2.1 release validating, nearcore issue #11995): the supervisor
// kills and reaps the node.
//
// Synced means sync_info.syncing is false, the head height is above zero
// and latest_block_time is younger than MaxBlockAge. A voter that reports
// a validator_account_id is refused (status error): a key reached it that
// valguard did not link.
//
// neard keeps no sign-state file that could be handed over. Safety rests
// on one key holder at a time, the holder being reaped before the lock is
// released (S1, S3), Consul's lock-delay, and a height fence: the
// watermark is {"height": N}, the highest head height the node reported
// while this replica was the validator (kept in
// <home>/valguard/watermark.json, never lowered), and a new leader
// promotes only once its node's head is at or above the published N
// (supervisor.HeadFence). N comes from polling, so the old leader may have
// produced up to a poll interval past it; see watermark.go for what is and
// is not covered.
//
// The lock is named by the validator key, not the account (LockID).
//
// The adapter is tested against a stand-in (internal/neardstandin) that
// follows neard's interface; neard itself cannot be built here.
package neard
