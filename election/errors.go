package election

import "errors"

var (
	// ErrSessionExpired: the local lease deadline passed without a
	// successful renew (S4). The server may still consider the session
	// alive, but this replica must act as if it were gone.
	ErrSessionExpired = errors.New("local lease deadline passed without a successful renew")

	// ErrSessionInvalidated: Consul answered a renew with "no such
	// session": it was destroyed or expired on the server.
	ErrSessionInvalidated = errors.New("consul no longer knows the session")

	// ErrLockTaken: the lock key is held by another session, or by no
	// session, or is gone, while this one needed to hold it.
	ErrLockTaken = errors.New("the lock key is held by another session")

	// ErrClosed: the session was closed by its owner.
	ErrClosed = errors.New("session closed")

	// ErrAbandoned: the session was abandoned by its owner (Abandon): it
	// is no longer renewed, its lock is not released, and Consul expires
	// it after its TTL. Close on an abandoned session returns an error
	// wrapping it.
	ErrAbandoned = errors.New("session abandoned: left to expire in consul with its lock")

	// ErrUnsafeTiming: the configured timing cannot keep the lease
	// contract (S6). New wraps it with the numbers.
	ErrUnsafeTiming = errors.New("unsafe timing")

	// ErrForeignLock: the lock key's value names another validator's
	// public key (Config.PublicKey). Acquire refuses to take such a lock.
	ErrForeignLock = errors.New("the lock key belongs to another validator public key")

	// ErrWatermarkLower: a watermark to publish is below the published one
	// (Config.CompareWatermarks); it was not written.
	ErrWatermarkLower = errors.New("watermark below the published one")

	// ErrWatermarkMoved: Session.Fence's check-and-set failed: the
	// watermark key is no longer at the index the caller gave (another
	// write came first, or the key was created or deleted). Nothing was
	// written; the lock check passed.
	ErrWatermarkMoved = errors.New("the watermark key moved from the index the fence expected")

	// ErrFenceUnknown: Session.Fence got no answer from Consul (a
	// transport error, a timeout, an unexpected response): the write may
	// or may not have been applied. The caller must treat the signature as
	// not released, and re-read the watermark before fencing again.
	ErrFenceUnknown = errors.New("fence outcome unknown: the watermark may or may not have been written")
)
