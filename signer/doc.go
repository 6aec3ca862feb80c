// Package signer is valguard's signer mode: valguard is the node's remote
// signer (CometBFT v0.38 privval), holds the validator key in memory, and
// lets a signature leave only once it is fenced in Consul
// (docs/signer-mode.md).
//
// # Model
//
// Every replica runs a Signer for its own node. The privval loop hands
// each request to Handle. Decide, a pure function, applies the decision
// table against the watermark in memory (the last height/round/step signed,
// with its sign bytes and signature): below is refused; the same data (or
// data that differs only in the timestamp) is re-served with the stored
// signature and timestamp; other data at the same height/round/step is
// refused; above is signed by the leader and parked by a standby. A parked
// request waits, without the signing mutex, for up to ParkHold from its
// arrival and is decided again whenever the watermark or the role changes;
// if still undecided it gets a PingResponse, which the node answers by
// sending the request again about 100 ms later. A refusal is never retried
// by the node, so only what must never be signed is refused.
//
// The leader (Grant, after its caller took the lock) signs a new
// height/round/step in memory, then commits the new watermark with one
// Fence transaction (lock session check plus check-and-set of the
// watermark), then raises its floor file, then replies. A refused fence
// (the lock or the watermark moved under it) demotes (Revoked is closed),
// drops the signature and parks the request. An unknown outcome (no
// answer in time, no Raft leader) is resolved by reading the watermark
// back and fencing the same value again at the same index; one still
// unknown when the reply is due parks the request, and the lease decides
// whether this replica still leads. A watermark that moved under this
// leader's own lock holds one of its own earlier fences that applied late:
// it is adopted and the request decided again. Run follows the watermark with blocking queries so a
// standby re-serves the leader's signatures byte for byte, and deposes a
// holder that leaves its node parked (Config.DeposeAfter).
//
// # The contract
//
// S1′: no node holds the validator key; this package is its only holder,
// and it gives out signatures only through Handle. Nothing here writes
// the key anywhere. (TestHandlePubKeyAndPing: the node gets the public key
// only.)
//
// S1″: at most one distinct signature per height/round/step leaves any
// valguard. A new signature leaves only after Fence succeeded, and a
// standby gives out only signatures read from the fenced watermark.
// (TestLeaderFencesBeforeReply: the watermark is in Consul when Handle
// returns; TestFenceFailureDemotes: a fence after the session was
// destroyed demotes and returns no signature; TestHandOverOneSignaturePerHRS:
// requests racing a hand-over never get two signatures for one
// height/round/step; TestStandbyReservesRefusesParks: a standby re-serves
// the leader's exact signature and refuses conflicting data.)
//
// S3′: Revoke takes the signing mutex; when it returns no new fence can
// start, so the caller releases the lock only after Revoke.
// (TestRevokeStopsSigning: after Revoke a request above the watermark
// parks.)
//
// A missing watermark key is never "nothing was signed", and one below
// the floor file (the highest watermark this replica fenced or saw), the
// watermark in memory or the chain's last height signed by this validator
// is never led from (Consul lost data, was restored from an old snapshot,
// or someone deleted or rewrote the key): a standby keeps the watermark it
// holds, and Grant raises the key above all of these and above the chain's
// latest height (S8), writes it back under the lock, logs and counts it
// (TestLeadRestoresMissingWatermark, TestLeadRestoresLoweredWatermark,
// TestLeadMissingWatermarkWithoutFloor). A restart-mode leader's
// watermark is raised the same way (TestLeadRaisesRestartModeWatermark).
//
// Not guaranteed: that a parked request is ever served (the node gives a
// step up after about 50 re-sends), or that the leader's node and a
// standby's node want the same data after a crash between fence and reply
// (then the standby's node is refused; docs/signer-mode.md §4.1). The extension
// signature of a non-nil precommit is made fresh on every reply, as
// FilePV does, so one precommit may carry two extension signatures.
package signer
