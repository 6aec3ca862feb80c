// Package chain is the seam between valguard and the chains whose
// validators it runs: an adapter package (cometbft, neard) describes each
// node kind it supports in a Kind and registers it from an init function;
// `valguard run --node NAME` builds the kind registered under NAME. Adding
// a chain is one new package that registers its Kind and one import line
// in cmd/valguard/chains.go (docs/adding-a-chain.md walks through it).
//
// The package holds no chain logic: what a node is to the supervisor is
// supervisor.Node; what the signer mode needs of it is SignerNode. It
// guarantees nothing about an adapter beyond the checks Choose makes on
// the command line (a flag of another kind or of another sign mode is
// refused rather than ignored).
package chain

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/supervisor"
)

// SignMode is how the validator key reaches the node: the one typed value
// for the sign mode, whose string is the --sign-mode value and what a
// replica publishes in its report.
type SignMode string

const (
	// SignRestart is the key-file mode: the key file is linked into the
	// leader's node home and the node restarted (or hot-reloaded) as the
	// validator.
	SignRestart SignMode = "restart"
	// SignSigner is the signer mode: valguard holds the key and serves
	// the node's privval socket, fencing every new signature through
	// Consul; the node never restarts.
	SignSigner SignMode = "signer"
)

// Settings is what an adapter reads of the command line, by flag name.
// urfave/cli's *cli.Context has these methods.
type Settings interface {
	String(name string) string
	Path(name string) string
	StringSlice(name string) []string
	Duration(name string) time.Duration
	IsSet(name string) bool
}

// Flag is a flag only one kind takes. Value is its default, and its type
// the flag's: nil or a string (a string flag, a path when Path),
// a time.Duration or a []string.
type Flag struct {
	Name, Usage string
	Path        bool
	Value       any
}

// Input is what a Kind's Build gets besides the settings.
type Input struct {
	Mode SignMode
	// KeyPath is the validator key's file, already checked private
	// (Kind.Open finds and checks it).
	KeyPath string
	// Credential is the file a flag names, else the systemd credential
	// called name; "" when neither and not required.
	Credential func(flag, name string, required bool) (string, error)
	Log        zerolog.Logger
}

// Kind is one node kind an adapter supports.
type Kind struct {
	// Name is the --node value.
	Name string
	// StopTimeout is the default --stop-timeout.
	StopTimeout time.Duration
	// KeyCredential is the validator key's systemd credential name.
	KeyCredential string
	// SignModes are the sign modes the kind supports, the default first.
	SignModes []SignMode
	// Flags are the flags only this kind takes. Others names flags that
	// another kind defines and this one takes as well.
	Flags  []Flag
	Others []string
	// SettingFlags maps a field of the adapter's config, as a
	// setting.Error names it, to the kind's own flag that sets it (the
	// fields behind the flags every kind reads, Home, Binary, Args,
	// ValidatorKey and MaxBlockAge, are mapped by FlagError).
	SettingFlags map[string]string
	// Build makes the node from the settings.
	Build func(s Settings, in Input) (Setup, error)
	// KeyID is the lock id (Setup.LockID) of the validator key file at
	// path, whose content is data, derived without building a node (the
	// commands that name a validator by its key: KeyID). ok is false
	// when the file is not a key of this kind. nil: the kind's keys are
	// another kind's.
	KeyID func(path string, data []byte) (id string, ok bool, err error)
}

// takes reports whether the kind takes the flag named f.
func (k Kind) takes(f string) bool {
	return slices.Contains(k.Others, f) || slices.ContainsFunc(k.Flags, func(fl Flag) bool { return fl.Name == f })
}

// Setup is a built node and what run needs to know of it.
type Setup struct {
	Node supervisor.Node
	// Status is where the node's status is read.
	Status string
	// LockID is derived from the validator's public key and names its
	// lock (valguard/<LockID>/leader): one validator, one lock, whatever
	// the replicas call it.
	LockID    string
	PublicKey string
	// Labels are the values --validator-id may take: what the key itself
	// names the validator (CometBFT address; NEAR account_id or lock id),
	// the default first.
	Labels []string
	// Compare orders two published watermarks of this node kind.
	Compare func(a, b []byte) (int, error)
	// Signer is what the signer mode needs of the node; nil without.
	Signer SignerNode
	// Unsupervised: valguard does not run the node (--node external).
	Unsupervised bool
	// KeyPath is the validator key's file; Open sets it, Build need not.
	KeyPath string
}

// SignerNode is what the signer mode needs of a node.
type SignerNode interface {
	PrivKey() (crypto.PrivKey, error)
	ChainID() (string, error)
	LastSigned(ctx context.Context, maxScan int64) (height int64, round int32, err error)
	SignerAddr() string
}

// MaxBlockAge is --max-block-age for the mode, -1 meaning no limit. In
// the signer mode it has no default limit: a validator with a third of
// the power or more halts the chain while it does not sign (Consul down,
// say), and a rule on the age of the latest block would then keep every
// replica out of the election for good; a node catching up still says so.
func MaxBlockAge(s Settings, mode SignMode) time.Duration {
	if mode == SignSigner && !s.IsSet("max-block-age") {
		return -1
	}
	if d := s.Duration("max-block-age"); d != 0 {
		return d
	}
	return -1
}

// kinds is every registered kind, by name.
var kinds = map[string]Kind{}

// Register adds a kind; it panics on an empty or taken name or no sign
// mode (a programming error, found at start).
func Register(k Kind) {
	if k.Name == "" || len(k.SignModes) == 0 || k.Build == nil {
		panic(fmt.Sprintf("chain: kind %q registered without a name, a sign mode or a Build", k.Name))
	}
	if _, dup := kinds[k.Name]; dup {
		panic("chain: kind " + k.Name + " registered twice")
	}
	kinds[k.Name] = k
}

// Replace puts k in the place of the registered kind of its name (a test
// build wraps an adapter this way); it panics if there is none.
func Replace(k Kind) {
	if _, ok := kinds[k.Name]; !ok {
		panic("chain: no kind " + k.Name + " to replace")
	}
	kinds[k.Name] = k
}

// Lookup is the kind registered under name.
func Lookup(name string) (Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// Names are the registered kinds' names, sorted.
func Names() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Flags are every kind's own flags, each once, in the order of Names.
func Flags() []Flag {
	var out []Flag
	seen := map[string]bool{}
	for _, n := range Names() {
		for _, f := range kinds[n].Flags {
			if !seen[f.Name] {
				seen[f.Name] = true
				out = append(out, f)
			}
		}
	}
	return out
}
