package supervisor

import (
	"io"
	"os"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"
)

// Defaults for Config fields left zero.
const (
	DefaultPollInterval     = time.Second
	DefaultStatusTimeout    = 2 * time.Second
	DefaultStopTimeout      = 15 * time.Second
	DefaultKillTimeout      = 2 * time.Second
	DefaultMaxStall         = 30 * time.Second
	DefaultStepDownHoldoff  = 60 * time.Second
	DefaultPublishInterval  = time.Second
	DefaultCallTimeout      = 5 * time.Second
	DefaultMaxStartFailures = 5
	DefaultRestartBackoff   = time.Second
	DefaultMaxBackoff       = 30 * time.Second
	DefaultProgressInterval = 10 * time.Second
)

// Config configures a Supervisor. Zero durations take the defaults above.
type Config struct {
	Node    Node
	Elector Elector
	// Signer, when set, selects the signer mode: valguard holds the key
	// and signs for the node, which runs in the voter role all the time.
	// Nil: the key-file mode (the key is linked into the node home and the
	// node restarted as a validator).
	Signer Signer
	// Unsupervised: the node runs on its own (another unit, a container)
	// and valguard only signs for it and follows its status; it needs a
	// Signer. Node.Status is used, Prepare and Command never are.
	Unsupervised bool
	// Operator, when set, can keep this replica out of the election
	// (drained, a hand-over to another replica) and make its leader step
	// down cleanly. Nil: always in.
	Operator Operator
	// BestHeight, when set, is the best chain height known elsewhere (the
	// other replicas' reports), for the progress logged while syncing,
	// for MaxLag and for telling a stall of the whole chain from one of
	// this node (stall.go).
	BestHeight func() int64
	// MaxLag, when above 0, keeps a synced standby whose node is more
	// than MaxLag blocks below BestHeight out of the election (lag.go).
	MaxLag  int64
	Log     zerolog.Logger
	Metrics *Metrics // nil: no metrics

	// Stdout and Stderr receive the node's output (default: ours, so that
	// journald keeps it).
	Stdout, Stderr io.Writer

	PollInterval  time.Duration // how often the node's status is read
	StatusTimeout time.Duration // bound on one status read
	// StopTimeout is how long a node gets after SIGTERM before SIGKILL.
	StopTimeout time.Duration
	// KillTimeout bounds the wait for a node to be reaped after SIGKILL.
	KillTimeout time.Duration
	// MaxStall: a validator whose height has not advanced, or that reports
	// catching up, for this long steps down.
	MaxStall time.Duration
	// RecoveryAfter (signer mode): a leader whose node has asked for no
	// signature and whose chain has not moved for this long restarts its
	// node, once per stall, while keeping the lock: CometBFT never asks
	// again for a step it dropped, and its WAL replay on start does. Must
	// be below MaxStall; default MaxStall*2/3.
	RecoveryAfter time.Duration
	// StepDownHoldoff keeps a replica that stepped down out of the election.
	StepDownHoldoff time.Duration
	// PublishInterval is how often a changed watermark is published.
	PublishInterval time.Duration
	// CallTimeout bounds watermark reads, publishes and releases.
	CallTimeout time.Duration
	// ProgressInterval is how often a syncing node's progress is logged.
	ProgressInterval time.Duration
	// MaxStartFailures consecutive failed starts make Run return ErrCrashLoop.
	MaxStartFailures int
	// RestartBackoff is the first wait after a failure; it doubles up to
	// MaxBackoff. The same back-off paces session creation retries.
	RestartBackoff, MaxBackoff time.Duration

	// Clock is what the state machine reads the time from and waits on:
	// its polls and publishes, back-offs, the stall rule (MaxStall,
	// RecoveryAfter), the wait for the published height, the step-down
	// hold-off and the session-creation retries. Nil: the real clock
	// (clockwork.NewRealClock), whose Now carries the monotonic reading,
	// so that every elapsed time and deadline is measured on the
	// monotonic clock; tests pass a clockwork.FakeClock. The times a
	// Signer reports (LastRequest) are compared with it, so a clock other
	// than the real one must be theirs too.
	//
	// Not on this clock, whatever it is: the lease (Session.Done and its
	// local deadline, S4, are the Elector's) and the node's process tree
	// (StopTimeout and KillTimeout bound waits for real processes to die,
	// package proctree).
	Clock clockwork.Clock
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.StatusTimeout, DefaultStatusTimeout)
	def(&c.StopTimeout, DefaultStopTimeout)
	def(&c.KillTimeout, DefaultKillTimeout)
	def(&c.MaxStall, DefaultMaxStall)
	def(&c.StepDownHoldoff, DefaultStepDownHoldoff)
	def(&c.RecoveryAfter, c.MaxStall*2/3)
	def(&c.PublishInterval, DefaultPublishInterval)
	def(&c.CallTimeout, DefaultCallTimeout)
	def(&c.RestartBackoff, DefaultRestartBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.ProgressInterval, DefaultProgressInterval)
	if c.MaxStartFailures == 0 {
		c.MaxStartFailures = DefaultMaxStartFailures
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
}
