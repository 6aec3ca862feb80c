package replica

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/valguard/valguard/internal/homelock"
)

// StateDir is where valguard keeps its files: <nodeHome>/valguard, or,
// for a node valguard does not run (external), stateDir (default
// $STATE_DIRECTORY), which must be a directory. nodeHomeSet says whether
// a node home was given at all.
func StateDir(external bool, nodeHome string, nodeHomeSet bool, stateDir string) (string, error) {
	if !external {
		if nodeHome == "" {
			return "", errors.New("--node-home is required: the node's home directory")
		}
		return filepath.Join(nodeHome, "valguard"), nil
	}
	if nodeHomeSet {
		return "", errors.New("--node-home is not used with --node external (valguard does not touch the node's home): give --state-dir for valguard's own files")
	}
	dir := stateDir
	if dir == "" {
		dir = os.Getenv("STATE_DIRECTORY")
	}
	if dir == "" {
		return "", errors.New("--node external needs --state-dir (or systemd's StateDirectory=) for valguard's own files: the lock, the signer's floor file, its connection key")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("--state-dir %s: not a directory (%v): create it, owned by valguard's user", dir, err)
	}
	return filepath.Abs(dir)
}

// LockUsedHome takes the home lock on stateDir if it exists: on a node
// home valguard has used before, a second valguard is told so before it
// trips over the first one's node. On a new home it takes nothing (nil):
// Run takes the lock after every check, so that a refusal leaves the home
// as it was.
func LockUsedHome(stateDir string) (*homelock.Lock, error) {
	if _, err := os.Stat(stateDir); err != nil {
		return nil, nil
	}
	return homelock.Acquire(stateDir)
}

// Label is the validator's name given as id (--validator-id), checked
// against the key's own names (labels, the default first): a label that
// names another validator (a typo, or another key's id) is refused, so
// that replicas of one key never run under two names. Empty id: the key's
// own name. keyPath and lockID are for the message.
func Label(id string, labels []string, keyPath, lockID string) (string, error) {
	if id == "" {
		return labels[0], nil
	}
	for _, l := range labels {
		if strings.EqualFold(id, l) {
			return l, nil
		}
	}
	return "", fmt.Errorf("--validator-id %q does not name the validator key %s (it is %s): "+
		"remove --validator-id, or fix it, or point --validator-key at the right key; "+
		"the lock is derived from the key's public key (valguard/%s/leader)",
		id, keyPath, strings.Join(quoteAll(labels), " or "), lockID)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
