// Package roster keeps, in Consul, what the replicas of one validator say
// about themselves and what the operator asks of them.
//
// Keys, under the validator's prefix valguard/<id>/ (the prefix of the
// election's lock and watermark keys):
//
//   - replicas/<replica>: the replica's Report, written by the replica
//     (Publisher) with a Consul session of its own, separate from the
//     election's: TTL-only, behavior "release", lock-delay 1 ms. The key
//     is held by that session while the replica runs; when the replica
//     dies its session expires and the key is left free, holding the last
//     report, so that readers see the replica as no longer reporting
//     (Entry.Alive false). A clean shutdown writes a last report and
//     releases it at once.
//   - control/drain/<replica>: present while the replica is drained
//     (Drain). Kept in Consul, not bound to any session: a drained replica
//     stays out of the election across restarts.
//   - control/handover: a hand-over request (Handover), written by
//     valguard handover and deleted when it is done or its window ends.
//
// Replicas follow control/ with blocking queries (Watcher), never on the
// signing path, and turn what they see into one answer for the
// supervisor: Hold, why this replica must stay out of the election now.
// Before the first successful read, Hold says so too: a drained replica
// that restarts while Consul is unreachable must not take part.
//
// Nothing here is a safety mechanism: the lock, the release path and the
// fences keep S1–S10. A hand-over request only makes a leader step down
// through the clean release path and keeps the other replicas out for a
// window; a replica that ignored it could take the lock, but only the way
// any standby takes a lock that was cleanly released. Windows compare the
// request's times with each replica's wall clock, which are assumed to
// agree within a second (as the clean-release marker assumes).
package roster
