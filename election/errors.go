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
	// session, while this one needed to hold it.
	ErrLockTaken = errors.New("the lock key is held by another session")

	// ErrClosed: the session was closed by its owner.
	ErrClosed = errors.New("session closed")

	// ErrUnsafeTiming: the configured timing cannot keep the lease
	// contract (S6). New wraps it with the numbers.
	ErrUnsafeTiming = errors.New("unsafe timing")
)
