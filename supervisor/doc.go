// Package supervisor runs one valguard replica: it supervises the local node
// as a child process and moves it between the voter and the validator role as
// the replica wins and loses the election.
//
// The states are those of docs/design.md:
//
//	Startup → Syncing → Registering → Voting → Validating → Shutdown
//
// Any failure moves down, towards Startup, never sideways into Validating.
//
// The supervisor talks to two interfaces it owns, [Elector]/[Session] (a lock
// service such as Consul) and [Node] (a chain adapter such as CometBFT), so
// it neither speaks Consul nor a chain's RPC itself.
//
// Safety contract kept here:
//   - S2/S7: before every voter start the node is prepared for the voter role,
//     which removes every validator key link; the validator role is prepared
//     only after the lock is held, and the voter role is prepared again
//     (the key unlinked) before the lock is released
//     (TestKeyUnlinkedBeforeRelease).
//   - S3: a lock is released (Session.Close) only after the validator
//     node's whole process tree has been reaped. A node that cannot be
//     reaped (SIGKILL pending on a task in uninterruptible sleep) keeps the
//     lock: the session is abandoned (Session.Abandon) to expire in the lock
//     service, after which its lock-delay fences the lock;
//     valguard_node_unreaped is 1 and no node starts until the old one is
//     gone.
//   - S4: when the session's Done channel closes, a goroutine that does
//     nothing else sends SIGKILL to the node's process tree and reaps it;
//     the main loop being busy cannot delay that.
//   - S8: the validator role is prepared with the watermark read from the
//     lock service after the lock was acquired; a Node without sign state
//     (HeadFence) is promoted only once its head reaches the published
//     height.
//   - S9/S10: the node runs in its own process group (and cgroup where the
//     system offers one) with Pdeathsig SIGKILL; "exited" means every
//     process of its tree has exited, so a wrapper such as cosmovisor dying
//     alone does not count. Package [proctree] holds the node's process
//     tree; the supervisor decides when it starts and stops.
//
// Time: the state machine reads the time from, and waits on,
// Config.Clock (github.com/jonboulle/clockwork: a small, dependency-free
// library whose real clock only calls package time, so the monotonic
// reading is kept, and whose fake clock lets the timing paths be tested
// without sleeping). The lease deadline (S4) is not on it: Session.Done
// is the Elector's.
//
// Who may sign while this replica leads is one seam, signMode (mode.go),
// chosen once by New: the key-file mode (keyfile.go: the key linked in
// and the node restarted as the validator) or the signer mode
// (signermode.go). The states above call nothing mode-specific besides
// it; the release's abandon of a lock whose validator node is not reaped
// is common to both (in the signer mode no node is ever a validator).
//
// Signer mode (Config.Signer set): the node runs in the voter role all the
// time and is never restarted on a role change; leading is a grant of the
// Signer under the held session, and every release revokes it first.
//   - S1′: the validator role is never prepared or started, so no node gets
//     the key (TestSignerModeLeadsWithoutRestartingTheNode).
//   - S3′: the lock is released only after Signer.Revoke returned, which
//     takes the signer's signing mutex (revokedBeforeEveryRelease in the
//     signer-mode tests). On shutdown the lock goes before the node is
//     stopped, so that a standby takes over at once.
//   - A grant that ends by itself (a failed fence) releases the lock; the
//     replica re-registers with its node still running.
//
// Not guaranteed: a supervisor that is frozen (SIGSTOP, VM pause) while its
// node keeps running is not detected here; run under systemd with
// WatchdogSec below the session TTL.
package supervisor
