package operator

import "github.com/valguard/valguard/roster"

// State is a replica's supervisor state as its report names it. Reports
// carry the name as a string (roster.Report.State, the wire format old
// and new replicas share); StateOf parses it. A name this version does
// not know is Unknown, and the report keeps the name for messages.
type State int

// The supervisor states (DESIGN.md, "States"), and Unknown for any other
// name.
const (
	Unknown State = iota
	Startup
	Syncing
	Registering
	Voting
	Validating
	Shutdown
)

var stateNames = map[string]State{
	"Startup":     Startup,
	"Syncing":     Syncing,
	"Registering": Registering,
	"Voting":      Voting,
	"Validating":  Validating,
	"Shutdown":    Shutdown,
}

// ParseState is the State named s; Unknown for any other string.
func ParseState(s string) State { return stateNames[s] }

// StateOf is the state e reports.
func StateOf(e roster.Entry) State { return ParseState(e.State) }

func (s State) String() string {
	for name, st := range stateNames {
		if st == s {
			return name
		}
	}
	return "Unknown"
}

// inElection: a replica in this state may take the lock (it holds a
// session or is creating one).
func (s State) inElection() bool { return s == Voting || s == Registering }
