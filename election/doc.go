// Package election elects, through a Consul lock, the one replica that may
// sign for a validator, and tells that replica when it must stop.
//
// # Model
//
// An Election describes one validator (ValidatorID) as seen by one replica
// (ReplicaID). A replica creates a Session, waits in Acquire until its
// session holds the lock key valguard/<ValidatorID>/leader (and, after a
// takeover that no clean release prepared, a wait has passed), and from
// then on watches Done. When Done is closed the replica must already be on its
// way out: it has StopMargin left to stop and reap its node before any
// other replica can possibly take the lock. Session.Publish and the final
// write of Session.Close keep a watermark (for CometBFT: the last height
// signed) under valguard/<ValidatorID>/watermark, written only in a Consul
// transaction that checks the writer still holds the lock; with
// Config.CompareWatermarks that write is a check-and-set that never lowers
// it. The lock value names the validator's public key (Config.PublicKey),
// and Acquire refuses a lock that names another one (ErrForeignLock).
//
// # The contract
//
// Done is closed no later than the local lease deadline: the time the last
// successful renew was sent, plus the session TTL, minus StopMargin, on the
// monotonic clock (S4 in docs/design.md). Consul never invalidates a session
// sooner than TTL after the last renew it received, and it received that
// renew after it was sent, so the local deadline always comes at least
// StopMargin before the earliest moment the server could let another
// session take the lock. Done is also closed, earlier, when Consul answers
// a renew with "no such session" (ErrSessionInvalidated) or a consistent
// read shows the lock key held by another session or gone
// (ErrLockTaken). While the session holds the lock key, a renew moves the
// deadline only once a consistent read sent after it has shown the key
// still held, so the deadline is also at most TTL − StopMargin after the
// key was last seen held. Once closed it is never reopened: a replica that
// wants to lead again makes a new Session (Abandon closes it too, with
// ErrAbandoned, and leaves the lock to Consul's expiry).
//
// New refuses timings that cannot keep this promise (S6): the renew
// interval plus the Consul call timeout plus StopMargin must stay below the
// TTL, so that one late renew still lands before the deadline.
//
// # Why TTL-only sessions
//
// By default a Consul session is bound to the node's serfHealth check, so a
// gossip flap can invalidate a healthy leader's session behind its back,
// with no renew failing and nothing to warn it. Sessions made here have no
// checks at all (S5): only the TTL, which the leader renews and whose
// expiry it computes itself, can end them.
//
// # Why an own renew loop
//
// Consul's api.Lock reports a lost lock from a blocking watch on the key,
// not from renew failures; when packets are silently dropped it has been
// seen to notice minutes late (hashicorp/consul#18271). api's
// RenewPeriodic keeps no deadline a caller could act on. So a Session runs
// its own loop: every RenewInterval it sends a renew bounded by
// min(CallTimeout, time left to the deadline), and a timer closes Done at
// the deadline whatever the network does.
//
// # Lock-delay, the second fence
//
// Sessions are created with a lock-delay (default: the TTL, at most 60 s)
// and behavior "release". When Consul invalidates a session (TTL expiry,
// destroy) it frees the keys the session held, leaving their values, and
// refuses every acquisition of them for the lock-delay, which covers a
// leader whose process was frozen past its own deadline. A clean hand-over
// through Session.Close releases the lock first, and release skips
// lock-delay, so a standby takes over at once. Running without lock-delay
// is not offered (a Fenced election keeps 1 ms: see below).
//
// # Signer mode (Config.Fenced)
//
// In signer mode valguard holds the validator key itself and commits every
// new signature with Session.Fence before it leaves the process: one
// Consul transaction that checks the session still holds the lock key and
// check-and-sets the watermark key at the index the signer last saw
// (ReadWatermark, then each Fence's answer). Consul orders session
// invalidations, lock changes and transactions in its Raft log, so a fence
// applied after the session lost the lock — by expiry, destroy, release or
// a deleted key — fails. Safety then rests on the fence rather than on the
// old leader stopping in time, and a Fenced election drops what only
// served that: Acquire skips the unclean-takeover wait, lock-delay
// defaults to 1 ms (FencedLockDelay; the api drops a zero, which would
// give Consul's 15 s), and a take refused inside the lock-delay is retried
// after the lock-delay plus 5 ms. Election.DestroyStaleHolder lets a
// standby depose a leader that stopped signing, by the session id it saw
// holding the lock (never a newer holder); its fences fail from the
// destroy on. The watch (WatchWatermark) lets a standby follow the leader's
// signatures.
//
// Guaranteed in signer mode: every value Fence returned nil for was
// committed while the session held the lock, at the index given, so the
// watermark the next leader reads after its Acquire holds every signature
// any leader released, and each committed value replaced exactly the one
// stored at the index its fence gave. Not guaranteed: that Done, the local deadline or the lock-delay
// stop an old leader in time (they no longer need to; Done still says
// when to stop fencing); that a Fence which returned ErrFenceUnknown wrote
// nothing (the watermark may be ahead of what was released, which is only
// conservative); anything about signatures released without a Fence, such
// as a key-file (restart mode) leader's: a Fenced replica that takes over
// from one (a fleet migrating between modes) waits as any unclean take
// does, for that leader's node to have stopped, and the signer raises the
// watermark above the chain before it signs. An absent lock key names no
// leader; the Fenced taker then waits unless the watermark key is absent
// or was written by a Fenced replica (Config.WrittenFenced). Consul data loss
// or a rollback (a snapshot restore, a wiped server) brings back an older
// watermark; only a floor kept outside Consul covers that.
//
// # A lock key that vanishes
//
// A deleted lock key (an operator, a snapshot restore, a wiped server) is
// free at once, with no lock-delay, while the old leader still signs: its
// renews succeed, and it sees the key gone only on its next lock check, up
// to RenewInterval + CallTimeout later, then needs StopMargin to stop its
// node. So Close writes a clean-release marker into the value it leaves in
// the key, in the release transaction ("released":true and the release
// time, see LeaderInfo), and a replica that takes a key without a fresh
// marker — absent, free without a marker, marker older than the TTL or
// dated in the future — holds the lock and renews, but Acquire returns
// only max(LockDelay, TTL) after the replica first saw the key free in the
// state it took (Config.OnUncleanTakeover reports it). The cases and why each is treated so are listed on
// uncleanReason in takeover.go.
//
// Why the wait is enough: the old leader's deadline moves only on a renew
// followed by a lock check that saw the key held, so after the delete at
// time D its deadline is at most D + TTL − StopMargin, and its node is
// stopped by D + TTL. The new leader first saw the key free after D and
// waits TTL from then. The lock-delay term covers a key invalidated with a
// lock-delay above the TTL. The cost: the first start of a validator (no
// key yet) and a start long after a clean release wait max(LockDelay,
// TTL); after a crash the standby saw the key free when Consul invalidated
// the session, and the lock-delay that followed already ran most of the
// wait, so a crash failover costs at most TTL − LockDelay more (nothing
// with the default lock-delay = TTL).
//
// Freshness compares the marker's release time (the old leader's wall
// clock) with the taker's wall clock: replicas' clocks are assumed to agree
// within MaxClockSkew. A marker more than a TTL old counts as unclean
// (likely restored from a snapshot); one dated in the future beyond
// MaxClockSkew too. A clock that runs behind lets a restored marker look
// fresh for longer; one that runs ahead only costs waits.
//
// # Not guaranteed
//
//   - A process frozen (SIGSTOP, VM pause) past its deadline sees Done only
//     when it runs again; its node may keep running meanwhile. Lock-delay
//     and a systemd watchdog fed from Config.OnRenew narrow that window;
//     signing fenced through Consul (Config.Fenced) closes it.
//   - A clock that jumps does not move the deadline (it is computed on the
//     monotonic clock) but an injected Config.Now that does not follow
//     real time makes the deadline timer wrong.
//   - Done fires on Go's timers: a few milliseconds late on a loaded
//     machine. StopMargin must cover that too.
//   - Consul expires a session at up to twice its TTL, so the standby's
//     takeover after a crash is bounded by 2×TTL + max(LockDelay, TTL),
//     not TTL.
//   - A snapshot taken and restored within one TTL of a clean release,
//     while a later leader signs, brings back a marker that looks fresh.
//   - A leader running a valguard without the confirmed-renew rule (an
//     older version) may keep its deadline moving while its lock checks
//     fail; the wait then covers it only as long as its reads succeed.
package election
