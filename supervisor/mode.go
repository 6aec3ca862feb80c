package supervisor

import "context"

// signMode is who may sign while this replica leads, the one seam between
// the state machine and the two sign modes: how a lock becomes signing,
// how a leader is watched, and what comes before and in its release.
// Everything else (starting the node, the election, the hold-outs, the
// release's abandon of a lock whose validator node is not reaped) is the
// same for both.
//
//   - keyFile: the key file is linked into the node home and the node
//     restarted (or hot-reloaded) as the validator; it gives up signing
//     when the caller has stopped and reaped the validator node (revoke
//     then disarms the fence) and beforeClose unlinks the key.
//   - signerMode: valguard signs for a node that runs as a voter all the
//     time (Config.Signer); revoke is Signer.Revoke.
type signMode interface {
	// grant makes this replica sign under s.sess, which holds the lock:
	// Validating when it does; otherwise the lock has been released (or
	// abandoned) and the state says where to go.
	grant(ctx context.Context) (State, string)
	// watch watches the leader from Validating until it must give up the
	// lock; the lock is released (or abandoned) when it returns, except on
	// a signal (Shutdown), where shutdown releases it.
	watch(ctx context.Context) (State, string)
	// revoke runs at the start of every release, once LeaseDeadline no
	// longer reports the lease. When it returns, nothing this mode granted
	// can sign a new height: in the signer mode by itself (S3′); in the
	// key-file mode because the caller stopped and reaped the validator
	// node first, and a node that could not be reaped makes release
	// abandon the lock instead of releasing it (S3).
	revoke()
	// beforeClose runs in a release after the final watermark was read and
	// just before the lock goes; not when the lock is abandoned.
	beforeClose()
	// shutdown stops the node and releases the lock, in the order this
	// mode's safety rules require.
	shutdown()
	// signedHeightFrom is what may implement SignedHeighter: whatever
	// holds the sign state in this mode.
	signedHeightFrom() any
}

// newSignMode is the sign mode cfg selects: the signer mode with a Signer,
// the key-file mode without.
func newSignMode(s *Supervisor) signMode {
	if s.cfg.Signer != nil {
		return &signerMode{s: s, signer: s.cfg.Signer}
	}
	return &keyFile{s: s}
}
