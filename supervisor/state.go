package supervisor

// State is a supervisor state; see the package doc.
type State int

// The supervisor states, in the order a replica climbs them.
const (
	Startup State = iota
	Syncing
	Registering
	Voting
	Validating
	Shutdown
)

// States lists every state, for metrics that export one series per state.
var States = []State{Startup, Syncing, Registering, Voting, Validating, Shutdown}

func (s State) String() string {
	switch s {
	case Startup:
		return "Startup"
	case Syncing:
		return "Syncing"
	case Registering:
		return "Registering"
	case Voting:
		return "Voting"
	case Validating:
		return "Validating"
	case Shutdown:
		return "Shutdown"
	}
	return "Unknown"
}

// Role is the role a node is prepared and started for.
type Role int

// Node roles.
const (
	// RoleVoter runs the node with its own non-validator key (S7).
	RoleVoter Role = iota
	// RoleValidator runs the node with the validator key linked in.
	RoleValidator
)

func (r Role) String() string {
	if r == RoleValidator {
		return "validator"
	}
	return "voter"
}
