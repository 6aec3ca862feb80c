// Package replica is one replica's life, what valguard run does: it
// builds the election, this replica's part of the roster, the
// supervisor, the signer of the signer mode, the systemd watchdog and the
// metrics server from a Config of plain values, and runs them until the
// context ends or the supervisor gives up.
//
// The node adapter is chosen and built by the caller (package chain); the
// Consul client too. Run changes nothing on disk before its checks have
// passed, except what the caller did itself.
package replica

import (
	"github.com/valguard/valguard/signer"
	"os"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/internal/consulpath"
	"github.com/valguard/valguard/internal/homelock"
)

// killMargin is added to KillTimeout to give the election's stop margin:
// the local lease deadline comes that long before the earliest moment
// Consul may expire the session (S4, S6).
const killMargin = time.Second

// DefaultMaxLag is the MaxLag valguard run uses unless told (--max-lag):
// looser than the hand-over's (operator.DefaultMaxLag), since
// the best height compared with is what the replicas last published, a
// second or two old on chains of fast blocks.
const DefaultMaxLag = 10

// Config is one replica's settings. Zero durations take the defaults of
// the package that uses them (election, supervisor, signer).
type Config struct {
	// Node is the node adapter built for this replica; NodeKind names its
	// kind and SignMode its sign mode.
	Node     chain.Setup
	NodeKind string
	SignMode chain.SignMode
	// KeyPath and NodeHome are reported in the start-up event.
	KeyPath  string
	NodeHome string
	// StateDir holds valguard's own files (the home lock, the signer's
	// floor file and connection key).
	StateDir string
	// HomeLock is the lock on StateDir when the caller took it already;
	// nil: Run takes it once every check passed, and releases it when it
	// returns.
	HomeLock *homelock.Lock

	// Label names the validator (one of Node.Labels), ReplicaID this
	// replica ("": Hostname) and Hostname its host.
	Label, ReplicaID, Hostname string
	// Version is valguard's version, in reports and metrics.
	Version string

	// Consul is the client; ConsulPath the addresses its calls go over
	// (Run reports its switches and rejections).
	Consul        *api.Client
	ConsulPath    *consulpath.Transport
	ConsulTimeout time.Duration

	SessionTTL, LockDelay, RenewInterval time.Duration
	StopTimeout, KillTimeout             time.Duration
	MaxStall, StepDownHoldoff            time.Duration
	// MaxLag is how many blocks below the best reported height a synced
	// standby may be and still stand (0: no limit).
	MaxLag           int64
	MaxStartFailures int

	// Signer holds the signer mode's settings.
	Signer SignerConfig

	// MetricsAddr is where /metrics and /health are served; "" serves
	// nothing. Registry receives every metric; nil: a new one, with the
	// Go runtime's and the process's collectors.
	MetricsAddr string
	Registry    *prometheus.Registry

	// Log receives every event; Run adds the validator and replica.
	Log zerolog.Logger
	// Signals stop the replica (the supervisor shuts down in order) from
	// the moment it starts; before that they act as they otherwise would.
	Signals []os.Signal
}

// SignerConfig is the signer mode's part of Config (signer.Config).
type SignerConfig struct {
	// Policy is signer.PolicyLeader (the default when empty) or
	// signer.PolicyAny (every replica signs; the sign record decides).
	Policy                     string
	ParkHold, FenceTimeout     time.Duration
	DeposeAfter, DeposeHoldoff time.Duration
}

// leaderless reports --signers any.
func (c SignerConfig) leaderless() bool { return c.Policy == signer.PolicyAny }

// policy is the signer policy in force, the default filled in.
func (c SignerConfig) policy() string {
	if c.Policy == "" {
		return signer.PolicyLeader
	}
	return c.Policy
}
