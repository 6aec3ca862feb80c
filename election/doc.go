// Package election elects, through a Consul lock, the one replica that may
// sign for a validator, and tells that replica when it must stop.
//
// # Model
//
// An Election describes one validator (ValidatorID) as seen by one replica
// (ReplicaID). A replica creates a Session, waits in Acquire until its
// session holds the lock key valguard/<ValidatorID>/leader, and from then
// on watches Done. When Done is closed the replica must already be on its
// way out: it has StopMargin left to stop and reap its node before any
// other replica can possibly take the lock. Session.Publish and the final
// write of Session.Close keep a watermark (for CometBFT: the last height
// signed) under valguard/<ValidatorID>/watermark, written only in a Consul
// transaction that checks the writer still holds the lock.
//
// # The contract
//
// Done is closed no later than the local lease deadline: the time the last
// successful renew was sent, plus the session TTL, minus StopMargin, on the
// monotonic clock (S4 in DESIGN.md). Consul never invalidates a session
// sooner than TTL after the last renew it received, and it received that
// renew after it was sent, so the local deadline always comes at least
// StopMargin before the earliest moment the server could let another
// session take the lock. Done is also closed, earlier, when Consul answers
// a renew with "no such session" (ErrSessionInvalidated) or a consistent
// read shows the lock key held by another session or gone
// (ErrLockTaken). Once closed it is never reopened: a replica that wants to
// lead again makes a new Session.
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
// Sessions are created with a lock-delay (default: the TTL, at most 60 s).
// When Consul invalidates a session (TTL expiry, destroy) it refuses every
// acquisition of the locks that session held for that long, which covers a
// leader whose process was frozen past its own deadline. A clean hand-over
// through Session.Close releases the lock first, and release skips
// lock-delay, so a standby takes over at once. Running without lock-delay
// is not offered.
//
// # Not guaranteed
//
//   - A process frozen (SIGSTOP, VM pause) past its deadline sees Done only
//     when it runs again; its node may keep running meanwhile. Lock-delay
//     and a systemd watchdog fed from Config.OnRenew narrow that window;
//     only signing fenced through Consul would close it.
//   - A clock that jumps does not move the deadline (it is computed on the
//     monotonic clock) but an injected Config.Now that does not follow
//     real time makes the deadline timer wrong.
//   - Done fires on Go's timers: a few milliseconds late on a loaded
//     machine. StopMargin must cover that too.
//   - Consul expires a session at up to twice its TTL, so the standby's
//     takeover after a crash is bounded by 2×TTL + lock-delay, not TTL.
package election
