package election

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

// MaxClockSkew is how far in the future (by the reader's wall clock) a
// clean-release marker may be dated and still count as fresh. Replicas'
// wall clocks are assumed to agree within it (NTP keeps them within
// milliseconds); a marker dated later than that counts as unclean, which
// only costs a wait.
const MaxClockSkew = time.Second

// uncleanWait is how long a replica that took the lock without a fresh
// clean-release marker waits before Acquire returns: max(LockDelay, TTL).
// A Config.Fenced election waits only when the holder it replaced may have
// been a key-file replica (tookLock, absentKeyFenced): a Fenced old
// leader's fences fail at Consul once it lost the lock, whether or not it
// still runs; a key-file leader's node signs on until it stops.
func uncleanWait(cfg Config) time.Duration { return max(cfg.LockDelay, cfg.TTL) }

// uncleanReason says why a free lock key, read as seen (nil: absent) at
// now (wall clock), was not left by a fresh clean release; empty when it
// was. The cases:
//
//   - absent: deleted (an operator, a snapshot restore, a wiped server)
//     or never created. The old leader, if any, may still sign until it
//     notices, up to a renew interval plus a call timeout (plus its stop
//     margin) later: unclean.
//   - present, free, no marker: Consul invalidated the holder's session
//     (TTL expiry or destroy: behavior "release" keeps the key), or a
//     snapshot restore brought back such a key, or a valguard without
//     markers released it. After a TTL expiry Consul's lock-delay alone
//     would do (the old leader's local deadline came StopMargin before
//     the expiry), but nothing in the key tells these cases apart: after
//     a destroy the old leader notices only on its next renew, which a
//     lock-delay shorter than RenewInterval + CallTimeout + StopMargin
//     does not cover, and after a restore no lock-delay is in force (it
//     lives in the servers' memory, not in snapshots): unclean.
//   - present, free, marker dated more than the TTL ago or more than
//     MaxClockSkew in the future (by this replica's wall clock): most
//     likely restored from a snapshot, while a later leader may be
//     signing: unclean.
//   - present, free, fresh marker: a leader released the lock in Close,
//     after stopping its node (S3), within the last TTL: clean, no wait.
//     (Residual: a snapshot taken and restored within one TTL of a clean
//     release, while a later leader signs, looks the same.)
//
// A value that is not a LeaderInfo is unclean.
func uncleanReason(seen *api.KVPair, now time.Time, ttl time.Duration) string {
	if seen == nil {
		return "the lock key was absent (deleted, wiped, restored without it, or never created)"
	}
	var info LeaderInfo
	if err := json.Unmarshal(seen.Value, &info); err != nil {
		return fmt.Sprintf("the free lock key holds an unreadable value %q", seen.Value)
	}
	if !info.Released {
		return "the free lock key has no clean-release marker (the holder's session was invalidated, or the key was restored or written by hand)"
	}
	switch age := now.Sub(info.ReleasedAt); {
	case age > ttl:
		return fmt.Sprintf("the clean-release marker is %s old, more than the TTL %s (restored from a snapshot?)", ms(age), ttl)
	case age < -MaxClockSkew:
		return fmt.Sprintf("the clean-release marker is dated %s in the future (clock skew above %s?)", ms(-age), MaxClockSkew)
	}
	return ""
}

// foreign returns an error wrapping ErrForeignLock when the lock key, read
// as pair, names a public key other than this replica's. An unreadable or
// absent value names none.
func (e *Election) foreign(pair *api.KVPair) error {
	if pair == nil {
		return nil
	}
	var info LeaderInfo
	if json.Unmarshal(pair.Value, &info) != nil || info.PublicKey == "" || info.PublicKey == e.cfg.PublicKey {
		return nil
	}
	ours := e.cfg.PublicKey
	if ours == "" {
		ours = "none configured"
	}
	return fmt.Errorf("%w: lock key %s names public key %s (replica %s, label %q), this replica's is %s: "+
		"check that every replica of this validator uses the same key and lock",
		ErrForeignLock, e.lockKey, info.PublicKey, info.ReplicaID, info.Label, ours)
}

// info is this replica's lock value with Since = since.
func (e *Election) info(since time.Time) LeaderInfo {
	return LeaderInfo{
		ReplicaID: e.cfg.ReplicaID, Hostname: e.cfg.Hostname, Since: since,
		PublicKey: e.cfg.PublicKey, Label: e.cfg.Label, Fenced: e.cfg.Fenced,
	}
}

// writtenFenced reports whether the lock value in pair was written by a
// Fenced replica: one whose node signs only through the fence.
func writtenFenced(pair *api.KVPair) bool {
	var info LeaderInfo
	return pair != nil && json.Unmarshal(pair.Value, &info) == nil && info.Fenced
}

// releaseValue is the value Close leaves in the lock key: the value the
// session wrote, with the clean-release marker when clean.
func (s *Session) releaseValue(value []byte, clean bool) []byte {
	var info LeaderInfo
	if value == nil || json.Unmarshal(value, &info) != nil {
		info = s.e.info(s.e.now())
	}
	info.Released, info.ReleasedAt = false, time.Time{}
	if clean {
		info.Released, info.ReleasedAt = true, s.e.now()
	}
	out, err := json.Marshal(info)
	if err != nil {
		return value
	}
	return out
}
