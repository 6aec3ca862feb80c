// Package supervisor runs one valguard replica: it supervises the local node
// as a child process and moves it between the voter and the validator role as
// the replica wins and loses the election.
//
// The states are those of DESIGN.md:
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
//     only after the lock is held.
//   - S3: a lock is released (Session.Close) only after the validator node
//     process has been reaped.
//   - S4: when the session's Done channel closes, a goroutine that does
//     nothing else sends SIGKILL to the node's process group and the node is
//     reaped; the main loop being busy cannot delay that.
//   - S8: the validator role is prepared with the watermark read from the
//     lock service after the lock was acquired.
//   - S9: the node runs in its own process group with Pdeathsig SIGKILL, so it
//     dies with its supervisor.
//
// Not guaranteed: a supervisor that is frozen (SIGSTOP, VM pause) while its
// node keeps running is not detected here; run under systemd with
// WatchdogSec below the session TTL.
package supervisor
