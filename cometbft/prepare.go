package cometbft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// spec is the key link, with what we own and what must never be a file.
func (n *Node) spec() keylink.Spec {
	return keylink.Spec{
		Link:      n.p.key,
		Owned:     []string{n.p.voterKey, n.cfg.ValidatorKey},
		Protected: func(path string) (bool, error) { return holds(path, n.key.Address) },
	}
}

// Prepare implements supervisor.Node.
//
// Voter: if the key path holds the validator key, it is unlinked before
// anything else (before anything that can fail); then config.toml is
// re-checked, the validator's last sign state is kept, and the voter key
// and its zero state are put in place.
//
// Validator: config.toml is re-checked, the last sign state kept, the
// sign state raised (S8) and written, and the validator key linked last.
//
// A config.toml that changed since New (key or state path, genesis
// file, RPC or P2P address, a remote signer now set, another config file
// shadowing it) is refused: valguard must be restarted to take the new
// values. The refusal changes nothing on disk, except that a linked
// validator key was unlinked (voter).
//
// Signer mode: the voter role is the only one (the validator role is
// ErrSignerMode, the node never gets the key). The voter key goes in
// place as above, since CometBFT loads a key file even when it signs
// through priv_validator_laddr. Before anything changes, priv_validator_laddr
// in config.toml must be empty or the signer address, and the signer
// address must be free: a socket on which something accepts, or
// anything at the socket path that is not a socket, is refused. A stale
// socket file (nothing accepts on it) is removed last, when nothing was
// refused.
func (n *Node) Prepare(_ context.Context, role supervisor.Role, watermark []byte) error {
	if role == supervisor.RoleVoter {
		return n.prepareVoter()
	}
	if n.signerMode() {
		return fmt.Errorf("prepare the validator role: %w", ErrSignerMode)
	}
	if err := n.checkConfig(); err != nil {
		return err
	}
	last, err := n.saveValidatorState()
	if err != nil {
		return err
	}
	return n.prepareValidator(last, watermark)
}

// checkConfig re-reads config.toml: the paths and addresses valguard
// manages must be the ones New read, or a key could be loaded from a
// place valguard no longer cleans.
func (n *Node) checkConfig() error {
	p, err := readConfig(n.cfg.Home)
	if err == nil {
		err = n.checkLaddr(p)
	}
	if err != nil {
		return fmt.Errorf("config.toml changed under valguard: %w; restart valguard after a config change", err)
	}
	// priv_validator_laddr is checked above, as New checked it: empty or
	// the signer address, whichever it is now.
	p.laddr = n.p.laddr
	if p != n.p {
		return fmt.Errorf("%s changed under valguard (priv_validator_key_file, priv_validator_state_file, priv_validator_laddr, genesis_file, [rpc] laddr or [p2p] laddr): restart valguard after a config change to take the new values", n.p.config)
	}
	return nil
}

// unlinkValidatorKey removes the validator key from the key path when it
// is there (a link to it, or anything that resolves to a file holding
// it); when the key path cannot be read, it cleans it anyway. A validator
// key as a regular file is keylink.ErrValidatorKeyFile, unchanged.
func (n *Node) unlinkValidatorKey() error {
	if ok, err := holds(n.p.key, n.key.Address); err == nil && !ok {
		return nil
	}
	out, err := keylink.Clean(n.spec())
	if err != nil {
		return err
	}
	n.logOutcome(out)
	return nil
}

func (n *Node) prepareVoter() error {
	// S2, S7: the key goes first; nothing below may leave it linked.
	if err := n.unlinkValidatorKey(); err != nil {
		return err
	}
	if err := n.checkConfig(); err != nil {
		return err
	}
	if _, err := n.checkSignerListener(); err != nil {
		return err
	}
	// Whatever the node last signed with the validator key is kept before
	// the voter's zero state replaces it.
	if _, err := n.saveValidatorState(); err != nil {
		return fmt.Errorf("keep the validator's last sign state from %s in %s (the validator key is unlinked): %w", n.p.state, n.p.vstate, err)
	}
	out, err := keylink.Clean(n.spec())
	if err != nil {
		return err
	}
	n.logOutcome(out)
	if err := ensureVoterKey(n.p); err != nil {
		return fmt.Errorf("create the voter key %s: %w", n.p.voterKey, err)
	}
	out, err = keylink.Link(n.spec(), n.p.voterKey)
	if err != nil {
		return err
	}
	n.logOutcome(out)
	data, err := os.ReadFile(n.p.voterKey)
	if err != nil {
		return fmt.Errorf("read the voter key: %w", err)
	}
	voterAddr, err := keyAddress(data)
	if err != nil {
		return fmt.Errorf("the voter key %s: %w", n.p.voterKey, err)
	}
	// The voter key never signs: its state is the zero state.
	if err := writeState(n.p.state, SignState{}); err != nil {
		return fmt.Errorf("write voter sign state %s: %w", n.p.state, err)
	}
	if err := n.prepareSignerSocket(); err != nil {
		return err
	}
	n.mu.Lock()
	n.role, n.prepared, n.voterAddr = supervisor.RoleVoter, true, voterAddr
	n.mu.Unlock()
	return nil
}

func (n *Node) prepareValidator(last SignState, watermark []byte) error {
	var wm SignState
	if len(watermark) > 0 {
		if err := json.Unmarshal(watermark, &wm); err != nil {
			return fmt.Errorf("the published watermark %q is unreadable: %w", watermark, err)
		}
	}
	seen := n.seen.Load()
	if seen == 0 {
		return errors.New("no committed height observed yet: refusing to start the validator without one (S8)")
	}
	raised := maxState(last, wm, blockHeight(seen+1))
	// Persist before acting: the raised state is on disk before the key is.
	if err := writeState(n.p.vstate, raised); err != nil {
		return fmt.Errorf("write %s: %w", n.p.vstate, err)
	}
	if err := writeState(n.p.state, raised); err != nil {
		return fmt.Errorf("write %s: %w", n.p.state, err)
	}
	n.cfg.Log.Info().Int64("height", raised.Height).Int32("round", raised.Round).Int8("step", raised.Step).
		Int64("observed", seen).Int64("watermark", wm.Height).Int64("last", last.Height).Msg("sign state raised")
	out, err := keylink.Link(n.spec(), n.cfg.ValidatorKey)
	if err != nil {
		return err
	}
	n.logOutcome(out)
	n.setRole(supervisor.RoleValidator)
	return nil
}

// saveValidatorState merges the sign-state file into the validator state we
// keep, and returns the result. A voter's state is zero, so merging it
// changes nothing.
func (n *Node) saveValidatorState() (SignState, error) {
	if err := os.MkdirAll(n.p.own, 0o700); err != nil {
		return SignState{}, err
	}
	kept, err := readState(n.p.vstate)
	if err != nil {
		return kept, err
	}
	cur, err := readState(n.p.state)
	if err != nil {
		// A corrupt state file is not trusted, nor lost: kept aside.
		aside := n.p.state + ".valguard-unreadable"
		n.cfg.Log.Warn().Err(err).Str("moved_to", aside).Msg("unreadable sign state moved aside")
		if rerr := os.Rename(n.p.state, aside); rerr != nil {
			return kept, fmt.Errorf("%w (and it could not be moved aside: %v)", err, rerr)
		}
		return kept, nil
	}
	if kept.Less(cur) {
		if err := writeState(n.p.vstate, cur); err != nil {
			return kept, err
		}
		kept = cur
	}
	return kept, nil
}

func (n *Node) logOutcome(o keylink.Outcome) {
	if o.MovedAside != "" {
		n.cfg.Log.Warn().Str("path", n.p.key).Str("moved_to", o.MovedAside).Msg("file where the key link goes moved aside")
	}
}

func (n *Node) setRole(r supervisor.Role) {
	n.mu.Lock()
	n.role, n.prepared = r, true
	n.mu.Unlock()
}
