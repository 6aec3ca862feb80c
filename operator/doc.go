// Package operator is the protocol of the operator commands: status,
// hand-over, drain, undrain and the blackout check, as plain Go over a
// Store (the validator's lock holder, reports, drain marks and hand-over
// request in Consul), a clock (clockwork.Clock) and a Chain (the
// validator's signatures on chain); active-validator (ShowLeader over a
// LockReader) and state show and import (ShowState, ImportState over a
// WatermarkStore). The commands in cmd/valguard parse flags, build a
// Validator and print what it returns; the protocol's messages and exit
// codes are the commands' own.
//
// A hand-over moves in steps: the request is written (compare-and-set,
// so two operators cannot both write one); with a named target the other
// replicas are asked to stay out and must confirm it; the leader is told
// to step down (Go); then the command follows the lock, the new leader's
// state and the chain until the new leader's first signature is on chain,
// and waits for the old leader to rejoin as a standby. Every wait is
// bounded, and the request is removed on the way out, whatever the
// outcome.
//
// Not guaranteed: the replicas decide who takes the lock; the protocol
// only writes requests and reads what the replicas report. A replica that
// has not yet seen a request may act on the one before.
package operator
