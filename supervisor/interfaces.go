package supervisor

import (
	"context"
	"os/exec"
	"time"
)

// Status is what a node reports about itself.
type Status struct {
	// Height is the latest block height the node has.
	Height int64
	// CatchingUp is the node's own view that it is behind the network.
	CatchingUp bool
	// Synced is the adapter's verdict that the node is at the tip of the
	// chain and fit to validate (for CometBFT: not catching up and the
	// latest block is recent).
	Synced bool
	// BlockTime is the time of the latest block.
	BlockTime time.Time
}

// Node is a chain adapter: it prepares the node home for a role, builds the
// command that runs the node and reports the node's status.
type Node interface {
	// Prepare makes the node home ready for role. It is called only while
	// no node process runs. For RoleVoter it must remove every validator key
	// link (S2, S7). For RoleValidator it links the validator key and, where
	// the chain has sign state, raises it above watermark (the value last
	// published by any leader, nil if none) and above every height this
	// replica observed (S8).
	Prepare(ctx context.Context, role Role, watermark []byte) error
	// Command builds the command that runs the node in role. The supervisor
	// sets the process attributes and starts it.
	Command(role Role) (*exec.Cmd, error)
	// Status asks the running node for its status; it must honour ctx.
	Status(ctx context.Context) (Status, error)
	// Watermark returns the validator's current sign-state watermark, to be
	// published while validating and on release; nil when there is none.
	Watermark() ([]byte, error)
}

// Elector creates sessions in a lock service and reads what leaders publish.
type Elector interface {
	// NewSession creates a session and keeps it alive until it is closed or
	// lost.
	NewSession(ctx context.Context) (Session, error)
	// Watermark reads the last published watermark with a consistent read;
	// nil when none was ever published.
	Watermark(ctx context.Context) ([]byte, error)
}

// Session is one replica's presence in the election.
type Session interface {
	// Acquire blocks until the session holds the lock (nil), ctx is done or
	// the session is lost (an error).
	Acquire(ctx context.Context) error
	// Done is closed when the session is lost, no later than its local lease
	// deadline; Err says why.
	Done() <-chan struct{}
	Err() error
	// Deadline is the current local lease deadline; zero for a session
	// without a lease (the leaderless signer policy, which takes no lock:
	// Acquire returns at once and Done closes only at Close).
	Deadline() time.Time
	// Publish writes a watermark, only while the session holds the lock.
	Publish(ctx context.Context, watermark []byte) error
	// Close releases the lock (with a final watermark when not nil) and
	// destroys the session.
	Close(ctx context.Context, final []byte) error
	// Abandon stops renewing the session without releasing the lock or
	// destroying the session: the lock service expires it after its TTL,
	// and the lock-delay then keeps the lock from anyone. Used when a node
	// that may hold the key could not be reaped (S3).
	Abandon()
}

// HotPromoter is implemented by a Node that can give the validator key to
// its running voter node without a restart (NEAR: link the key, SIGHUP).
// The supervisor uses it, when present, instead of stop–Prepare–start.
// Demotion never goes this way: a validator node is always killed and
// reaped, never asked to drop its key.
type HotPromoter interface {
	// HotPromotion reports whether the running voter node is to be promoted
	// in place. It is called with the lock held and the voter running.
	HotPromotion(ctx context.Context) (bool, error)
	// PromoteRunning links the validator key into the running node's home,
	// calls reload to make the node load it, and returns nil only once the
	// node itself reports the validator key loaded, within the adapter's
	// bound. Any error is a failed promotion: the node may hold the key, so
	// the supervisor kills and reaps it before releasing the lock.
	PromoteRunning(ctx context.Context, watermark []byte, reload func() error) error
}

// WrappedNode is implemented by a Node whose command may run the node
// through a wrapper (cosmovisor): the process that loads the validator key
// is then the wrapper's child, which Pdeathsig (S9) does not reach, and
// would outlive a valguard that is killed. When Wrapped reports true, the
// key-file mode starts the validator role only inside a cgroup, whose
// guard kills the whole tree when valguard dies (New refuses the node
// where no cgroup can be used); the signer mode needs nothing more, as no
// node holds the key.
type WrappedNode interface {
	Wrapped() bool
}

// HeadFence is implemented by a Node whose chain keeps no sign state that
// could be raised before signing (NEAR). Its watermark is the last height
// the previous leader produced (Watermark while validating, and the final
// one on release); the supervisor promotes this replica only once
// AtWatermark reports that the running voter node's head is at or above
// it, so that a new leader never produces a height the old one already
// produced. A nil or empty watermark is always reached.
type HeadFence interface {
	AtWatermark(ctx context.Context, watermark []byte) (bool, error)
}

// Signer is the key holder of the signer mode: valguard itself holds the
// validator key and serves the node's signing requests, fencing every new
// signature through the lock service, so the node never holds the key and
// never restarts on a role change. With a Signer, the supervisor grants
// signing when it takes the lock and revokes it before every release
// (S3′); the node runs in the voter role all the time.
type Signer interface {
	// Grant makes this replica sign new heights under sess, which holds
	// the lock. An error means it does not sign; one wrapping ErrFatal
	// (a watermark below a floor, another chain's) ends Run.
	Grant(ctx context.Context, sess Session) error
	// Revoke stops signing new heights. When it returns, no new signature
	// can leave this replica; only then may the lock be released. It does
	// nothing when signing is not granted.
	Revoke()
	// Revoked is closed when the current grant ended by itself (a fence
	// refused: the lock or the watermark moved): the replica must give up
	// the lease. An unknown fence outcome does not close it; the lease
	// decides.
	Revoked() <-chan struct{}
	// LastRequest is when the node last asked for a signature; zero if
	// never. A leader whose chain stalls while its node asks for nothing
	// restarts the node (see Config.RecoveryAfter).
	LastRequest() time.Time
}
