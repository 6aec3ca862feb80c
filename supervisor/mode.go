package supervisor

import "context"

// signMode is who may sign while this replica leads, the one seam between
// the state machine and the two sign modes. Everything else (starting and
// watching the node, the election, the hold-outs) is the same for both.
//
//   - keyFile: the key file is linked into the node home and the node
//     restarted (or hot-reloaded) as the validator; revoking is killing
//     and reaping the validator node, then unlinking the key.
//   - signerMode: valguard signs for a node that runs as a voter all the
//     time (Config.Signer); revoking is Signer.Revoke.
type signMode interface {
	// grant makes this replica sign under s.sess, which holds the lock:
	// Validating when it does; otherwise the lock has been released (or
	// abandoned) and the state says where to go.
	grant(ctx context.Context) (State, string)
	// watch watches the leader from Validating until it must give up the
	// lock; the lock is released (or abandoned) when it returns, except on
	// a signal (Shutdown), where shutdown releases it.
	watch(ctx context.Context) (State, string)
	// revoke is the first step of every release: when it returns, nothing
	// this mode granted can sign a new height, except a validator node
	// that release then finds unreaped and abandons the lock for (S3, S3′).
	revoke()
	// beforeClose runs in a release after the final watermark was read and
	// just before the lock goes.
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
