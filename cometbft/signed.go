package cometbft

import "github.com/valguard/valguard/supervisor"

// SignedHeight is the height of the validator's last signature as its
// sign state file says (key-file mode, validator role); 0 otherwise or
// when the file cannot be read. The supervisor's stall rule counts a node
// that signed at the height it is stuck on as taking part.
func (n *Node) SignedHeight() int64 {
	if n.signerMode() {
		return 0
	}
	n.mu.Lock()
	role := n.role
	n.mu.Unlock()
	if role != supervisor.RoleValidator {
		return 0
	}
	s, err := readState(n.p.state)
	if err != nil {
		return 0
	}
	return s.Height
}
