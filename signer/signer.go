package signer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbft/cometbft/crypto"
	cryptoenc "github.com/cometbft/cometbft/crypto/encoding"
	cryptoproto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/atomicfile"
)

// Signer policies (valguard run --signers): who signs in the signer mode.
const (
	// PolicyLeader: the lock holder signs, every signature fenced under
	// its lock; the others park and re-serve (the default).
	PolicyLeader = "leader"
	// PolicyAny: every replica signs for its own node; the sign record's
	// check-and-set decides (Config.Leaderless).
	PolicyAny = "any"
)

// Timing defaults and limits.
const (
	DefaultParkHold      = 4 * time.Second
	DefaultFenceTimeout  = 1 * time.Second
	DefaultFloorTimeout  = 1 * time.Second
	DefaultDeposeHoldoff = time.Minute
	// NodeReadTimeout is how long a CometBFT node waits for a reply
	// (privval defaultTimeoutReadWriteSeconds); ParkHold must stay below.
	NodeReadTimeout = 5 * time.Second
	// replyBudget is the latest a reply may leave, counted from the
	// request's arrival: a fence that could end later is not started.
	replyBudget = NodeReadTimeout - 250*time.Millisecond
)

var (
	// ErrUnsafeTiming: ParkHold or FenceTimeout cannot keep every reply
	// before the node's read timeout. New wraps it with the numbers.
	ErrUnsafeTiming = errors.New("unsafe timing")
	// ErrChainID: a watermark of another chain.
	ErrChainID = errors.New("watermark of another chain")
	// ErrLeading: Grant while already leading.
	ErrLeading = errors.New("already leading")
	// ErrOutcomeUnknown: a Fencer's answer that leaves open whether the
	// transaction was applied (no answer in time, no Raft leader). The
	// signer resolves it with a read of the watermark.
	ErrOutcomeUnknown = errors.New("fence outcome unknown")
	// ErrMoved: a Fencer's refusal because the watermark was not at the
	// index, while the lock check passed. The signer reads it back: under
	// its own lock only its own late fence, or an operator's `valguard
	// state import` (always a raise), can have moved it; a value above its
	// own is adopted, anything else demotes.
	ErrMoved = errors.New("the watermark moved under the lock")
)

// Store is where the fenced watermark lives (Consul), read without a lease.
type Store interface {
	// Read is a consistent read of the watermark and the index a fence
	// checks it at (its modify index): nil, 0 when absent.
	Read(ctx context.Context) (value []byte, index uint64, err error)
	// Watch is a blocking query that returns once the watermark's
	// blocking index passes index (or the query's wait ends), with the new
	// blocking index. The leader policy fences only at Read's index; the
	// leaderless policy also takes the index of a present key a watch
	// returns (Consul's blocking index for a key is its ModifyIndex) as
	// the next check-and-set's: an index that is wrong only makes that
	// check-and-set fail and be read back.
	Watch(ctx context.Context, index uint64) (value []byte, newIndex uint64, err error)
}

// Fencer commits a watermark under the lease: one transaction that checks
// the lock session and sets the watermark if it is still at index (0:
// absent), returning the new index. An error wrapping ErrOutcomeUnknown
// means the transaction may or may not have been applied: the signer
// reads the watermark back and fences again while the request's time
// allows, then parks the request and keeps leading (the lease decides
// that). An error wrapping ErrMoved (lock held, watermark moved) is read
// back too; a read-back that fails is made again, and one still failing
// when the reply is due parks the request as for an unknown outcome. Any
// other error is a refusal: the signer demotes.
type Fencer interface {
	Fence(ctx context.Context, value []byte, index uint64) (newIndex uint64, err error)
}

// Config of a Signer. Zero durations take the documented defaults.
type Config struct {
	// Key is the validator key, held only here. Required.
	Key crypto.PrivKey
	// ChainID is the node's chain (its genesis); requests and watermarks
	// of another chain are refused. Required.
	ChainID string
	// Store holds the fenced watermark. Required.
	Store Store
	Log   zerolog.Logger
	// Metrics: nil records none.
	Metrics *Metrics
	// ParkHold is the longest a request waits parked, counted from its
	// arrival, before the ping reply that makes the node ask again.
	// Default DefaultParkHold; below NodeReadTimeout.
	ParkHold time.Duration
	// FenceTimeout bounds each fence transaction and each read, Grant's
	// included; a fence that times out is resolved by reading back (see
	// Fencer). Default DefaultFenceTimeout; below ParkHold.
	FenceTimeout time.Duration
	// FloorFile keeps the highest watermark this replica fenced or saw
	// (atomic writes). Required.
	FloorFile string
	// FloorTimeout bounds each write of the floor file, its fsyncs
	// included. A write not ended by then is given up on (it goes on in
	// the background; later writes wait for it): a leader that fenced a
	// signature refuses the request and steps down, a Grant fails. The
	// fence of a signature leaves this much of the reply's time for the
	// write. Default DefaultFloorTimeout; FenceTimeout plus FloorTimeout
	// stay below the node's read timeout less a margin (4.75s).
	FloorTimeout time.Duration
	// ChainFloor, if set, returns the last height carrying this
	// validator's signature on chain and the round of that commit (0, 0:
	// none found); Grant raises a watermark below that height's precommit
	// in that round.
	ChainFloor func(ctx context.Context) (height int64, round int32, err error)
	// ChainHeight, if set, returns the chain's latest committed height,
	// or an upper bound of it (0: no block yet). Grant raises a missing,
	// lowered or restart-mode watermark above it (the whole next height:
	// S8); an error then keeps it from leading. Nil leaves the chain's
	// height out of that raise. The node's own height is too low when the
	// node lags the chain: valguard run gives the higher of it and the
	// best height a replica reports, plus --max-lag.
	ChainHeight func(ctx context.Context) (int64, error)
	// DeposeAfter: a standby whose own node stayed parked above a
	// watermark that did not move for longer than this destroys the
	// holder's session (Depose). 0 turns it off.
	DeposeAfter time.Duration
	// DeposeHoldoff: no deposition within this long after leading or
	// deposing. Default DefaultDeposeHoldoff.
	DeposeHoldoff time.Duration
	// Holder returns who holds the lock now, as an opaque ID (the Consul
	// session), "" when nobody does or this replica does. Required with
	// DeposeAfter.
	Holder func(ctx context.Context) (holder string, err error)
	// LockFree, if set, reports whether no session holds the lock now (a
	// consistent read). A standby reads it every lockFreeEvery and, while
	// the last read said free and it does not take part in the election
	// itself (Synced false), refuses a request above the watermark at
	// once instead of parking it: no leader can answer it soon, and a
	// parked request holds the node's consensus back (at a chain's launch,
	// every replica's node at height 1, so none would ever count as
	// synced). A replica in the election parks: it may take the lock any
	// moment. Nil: requests above the watermark always park.
	LockFree func(ctx context.Context) (bool, error)
	// Depose destroys holder's session if it still holds the lock, and
	// reports whether it did; a lock that changed hands is left alone.
	// Required with DeposeAfter.
	Depose func(ctx context.Context, holder string) (deposed bool, err error)
	// Synced reports the local node synced. Required with DeposeAfter.
	Synced func() bool
	// Now is the clock; default time.Now.
	Now func() time.Time

	// Leaderless selects the leaderless policy (`--signers any`): every
	// replica signs for its own node, and the watermark key is the sign
	// record that alone decides which signature exists (S11). Grant takes
	// a Fencer that only checks and sets the record (no lock); a
	// check-and-set lost to another replica is settled by reading the
	// record and deciding the request again (it is then re-served or
	// refused), never by stepping down; a signer not granted refuses every
	// sign request. DeposeAfter must be 0 (no holder to depose).
	Leaderless bool
	// HeldOut, in the leaderless policy, reports whether this replica
	// must not sign now: drained by the operator, starting or stopping,
	// its node not synced. A signer not granted refuses every sign request
	// while HeldOut says so (or when HeldOut is nil); otherwise — its
	// grant lost to a failed write, about to be granted again — a request
	// above the record parks, as CometBFT never asks again for a refused
	// step.
	HeldOut func() bool

	// writeFile writes the floor file; default atomicfile.Write (tests
	// make it hang).
	writeFile func(path string, data []byte, perm os.FileMode) error
}

// Signer is the validator's only signer (see the package doc).
type Signer struct {
	cfg     Config
	pub     cryptoproto.PublicKey
	address string // the validator's address, upper-case hex

	mu      sync.Mutex // the signing mutex: decide, sign, fence, update
	wm      Watermark  // the watermark in memory
	index   uint64     // the watermark's index (the leader's CAS index)
	leading bool
	fencer  Fencer
	demoted chan struct{}
	// demotedCh is demoted, for Revoked to read without the mutex.
	demotedCh atomic.Pointer[chan struct{}]
	changed   chan struct{} // closed and replaced when wm or the role changes
	leftAt    time.Time     // when leadership last ended (zero: never led)
	deposeAt  time.Time     // when this replica last deposed (zero: never)

	// deposition bookkeeping, under mu
	parking     int       // requests parked now
	parkSince   time.Time // since when requests park above an unmoved wm
	lastParkEnd time.Time

	// values fenced at index unsureAt with an unknown outcome
	// (noteUnsureLocked), under mu
	unsure   [][]byte
	unsureAt uint64

	// term counts the leaderships that ended, under mu: a floor file
	// write that failed after a fence steps down only the leadership that
	// fenced.
	term uint64

	floorMu sync.Mutex
	floor   Watermark // the floor as persisted in the floor file
	// floorWrite holds one token while a floor file write runs (even one
	// given up on): writes are one at a time, in order.
	floorWrite chan struct{}

	// lastRequest is when the last sign request arrived, as Now gave it:
	// with time.Now, a time carrying its monotonic clock reading, so that
	// time.Since(LastRequest()) is not moved by a step of the wall clock
	// (S4: durations that decide something are monotonic).
	lastRequest atomic.Pointer[time.Time]
	// lockFreeAt is when a read of LockFree last said free; nil when the
	// last read said held or failed.
	lockFreeAt atomic.Pointer[time.Time]

	// racesWon and racesLost count the leaderless policy's races (Races).
	racesWon, racesLost atomic.Uint64
}

// Races reports, in the leaderless policy, how many new signatures this
// replica committed to the sign record (won) and how many of its
// check-and-sets found another replica's signature there first (lost).
func (s *Signer) Races() (won, lost uint64) {
	return s.racesWon.Load(), s.racesLost.Load()
}

// New checks cfg and returns a standby Signer. It reads the floor file.
func New(cfg Config) (*Signer, error) {
	switch {
	case cfg.Key == nil:
		return nil, errors.New("no validator key")
	case cfg.ChainID == "":
		return nil, errors.New("no chain ID")
	case cfg.Store == nil:
		return nil, errors.New("no watermark store")
	case cfg.FloorFile == "":
		return nil, errors.New("no floor file")
	case cfg.ParkHold < 0, cfg.FenceTimeout < 0, cfg.FloorTimeout < 0, cfg.DeposeAfter < 0, cfg.DeposeHoldoff < 0:
		return nil, errors.New("negative duration")
	}
	if cfg.ParkHold == 0 {
		cfg.ParkHold = DefaultParkHold
	}
	if cfg.FenceTimeout == 0 {
		cfg.FenceTimeout = DefaultFenceTimeout
	}
	if cfg.FloorTimeout == 0 {
		cfg.FloorTimeout = DefaultFloorTimeout
	}
	if cfg.DeposeHoldoff == 0 {
		cfg.DeposeHoldoff = DefaultDeposeHoldoff
	}
	if cfg.writeFile == nil {
		cfg.writeFile = atomicfile.Write
	}
	if cfg.ParkHold >= NodeReadTimeout {
		return nil, fmt.Errorf("%w: park hold %v must be below the node's read timeout %v", ErrUnsafeTiming, cfg.ParkHold, NodeReadTimeout)
	}
	if cfg.FenceTimeout >= cfg.ParkHold {
		return nil, fmt.Errorf("%w: fence timeout %v must be below the park hold %v", ErrUnsafeTiming, cfg.FenceTimeout, cfg.ParkHold)
	}
	if cfg.FenceTimeout+cfg.FloorTimeout >= replyBudget {
		return nil, fmt.Errorf("%w: fence timeout %v plus floor file timeout %v must be below %v, the time a signed reply has before the node's read timeout: lower the fence timeout",
			ErrUnsafeTiming, cfg.FenceTimeout, cfg.FloorTimeout, replyBudget)
	}
	if cfg.DeposeAfter > 0 && cfg.DeposeAfter <= cfg.FenceTimeout {
		return nil, fmt.Errorf("%w: depose after %v must be above the fence timeout %v: a healthy leader's slow fence would be deposed",
			ErrUnsafeTiming, cfg.DeposeAfter, cfg.FenceTimeout)
	}
	if cfg.Leaderless && cfg.DeposeAfter > 0 {
		return nil, errors.New("deposition needs a lock holder to depose; the leaderless policy has none: leave DeposeAfter at 0")
	}
	if cfg.DeposeAfter > 0 && (cfg.Depose == nil || cfg.Holder == nil || cfg.Synced == nil) {
		return nil, errors.New("deposition needs a depose function, a holder read and a synced check")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pk, err := cryptoenc.PubKeyToProto(cfg.Key.PubKey())
	if err != nil {
		return nil, fmt.Errorf("validator key: %w", err)
	}
	address := cfg.Key.PubKey().Address().String()
	floor, err := loadFloor(cfg.FloorFile, cfg.ChainID, address)
	if err != nil {
		return nil, err
	}
	s := &Signer{
		cfg: cfg, pub: pk, address: address, floor: floor,
		wm:      Watermark{ChainID: cfg.ChainID},
		demoted: make(chan struct{}), changed: make(chan struct{}),
		floorWrite: make(chan struct{}, 1),
	}
	ch := s.demoted
	s.demotedCh.Store(&ch)
	return s, nil
}

// Revoke makes this replica a standby. It takes the signing mutex, so once
// it returns no new signature can be fenced or leave (S3′: release the
// lock only after Revoke). A fenced signature whose reply was already
// being built may still be returned; it is in the watermark.
func (s *Signer) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.leading {
		return
	}
	s.endLeadLocked()
	s.cfg.Log.Info().Str("watermark", s.wm.String()).Msg("signer following")
}

// demoteLocked ends a leadership whose fence failed: Revoked is closed.
func (s *Signer) demoteLocked(err error) {
	if !s.leading {
		return
	}
	s.endLeadLocked()
	close(s.demoted)
	s.cfg.Log.Error().Err(err).Str("watermark", s.wm.String()).Msg("signer demoted")
}

func (s *Signer) endLeadLocked() {
	s.leading, s.fencer = false, nil
	s.term++
	s.leftAt = s.cfg.Now()
	s.changedLocked(false)
}

// Revoked is closed when the current leadership ended by itself: a fence
// was refused (the lock or the watermark moved), or another leader's
// watermark was found. Revoke does not close it. Each successful Grant
// starts a new channel. It does not wait for the signing mutex, which a
// fence being resolved holds for up to the node's read timeout.
func (s *Signer) Revoked() <-chan struct{} {
	return *s.demotedCh.Load()
}

// Watermark is the watermark in memory.
func (s *Signer) Watermark() Watermark {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wm
}

// Leading reports whether this replica fences new signatures.
func (s *Signer) Leading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading
}

// changedLocked wakes parked requests; moved: the watermark changed.
func (s *Signer) changedLocked(moved bool) {
	close(s.changed)
	s.changed = make(chan struct{})
	if moved {
		s.cfg.Metrics.watermark(s.wm)
		if s.parking > 0 {
			s.parkSince = s.cfg.Now()
		} else {
			s.parkSince = time.Time{}
		}
	}
}
