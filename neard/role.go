package neard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valguard/valguard/internal/setting"
	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// validatorSpec is the validator key link: ours when it points at the
// validator key; the validator key itself as a regular file is refused (S2).
func (n *Node) validatorSpec() keylink.Spec {
	return keylink.Spec{
		Link:      n.p.validatorKey,
		Owned:     []string{n.cfg.ValidatorKey},
		Protected: func(path string) (bool, error) { return holdsKey(path, n.key.PublicKey) },
	}
}

// nodeKeySpec is the node key link: the voter's or the validator's node
// key. A regular node_key.json found there (as `neard init` leaves it) is
// moved aside, never deleted.
func (n *Node) nodeKeySpec() keylink.Spec {
	owned := []string{n.cfg.VoterNodeKey}
	if n.cfg.ValidatorNodeKey != "" {
		owned = append(owned, n.cfg.ValidatorNodeKey)
	}
	return keylink.Spec{Link: n.p.nodeKey, Owned: owned}
}

// Prepare implements supervisor.Node. Voter: no validator key, the voter
// node key, the voter address. Validator (restart promotion): the
// validator key, the validator node key, the validator address and public
// address. neard has no sign state to raise, and no node runs whose head
// could be compared with watermark: the supervisor fences on the head
// before it stops the voter (AtWatermark), and the validator node starts
// from the same database, at that head or above.
func (n *Node) Prepare(_ context.Context, role supervisor.Role, _ []byte) error {
	if err := n.checkConfig(); err != nil {
		return err
	}
	if role == supervisor.RoleVoter {
		return n.prepareVoter()
	}
	return n.prepareValidator()
}

func (n *Node) prepareVoter() error {
	out, err := keylink.Clean(n.validatorSpec())
	if err != nil {
		return err
	}
	n.logOutcome(n.p.validatorKey, out)
	n.setRole(supervisor.RoleVoter)
	if err := ensureNodeKey(n.cfg.VoterNodeKey); err != nil {
		return fmt.Errorf("create the voter node key %s: %w", n.cfg.VoterNodeKey, err)
	}
	if err := n.linkNodeKey(n.cfg.VoterNodeKey); err != nil {
		return err
	}
	var public []string
	if n.public != nil {
		public = []string{} // ours to clear: the voter announces nothing
	}
	return n.setNetwork(supervisor.RoleVoter, network{addr: n.cfg.VoterAddr, publicAddrs: public})
}

func (n *Node) prepareValidator() error {
	if n.cfg.ValidatorNodeKey == "" {
		return setting.Errorf("ValidatorNodeKey", "the restart promotion needs the validator node key")
	}
	if err := n.linkNodeKey(n.cfg.ValidatorNodeKey); err != nil {
		return err
	}
	if err := n.setNetwork(supervisor.RoleValidator, network{addr: n.cfg.ValidatorAddr, publicAddrs: n.public}); err != nil {
		return err
	}
	return n.linkValidatorKey()
}

// checkConfig re-reads config.json: the key paths and the RPC address
// valguard manages must be the ones it read at start-up, or a key could be
// loaded from a place valguard no longer cleans.
func (n *Node) checkConfig() error {
	p, err := readConfig(n.cfg.Home)
	if err != nil {
		return err
	}
	if p != n.p {
		return fmt.Errorf("%s changed under valguard (validator_key_file, node_key_file or rpc.addr): restart valguard to take the new values", n.p.config)
	}
	return nil
}

// linkValidatorKey links the validator key last: everything else about
// the role is on disk before the key is.
func (n *Node) linkValidatorKey() error {
	out, err := keylink.Link(n.validatorSpec(), n.cfg.ValidatorKey)
	if err != nil {
		return err
	}
	n.logOutcome(n.p.validatorKey, out)
	n.setRole(supervisor.RoleValidator)
	n.cfg.Log.Info().Str("link", n.p.validatorKey).Str("account", n.key.AccountID).Msg("validator key linked")
	return nil
}

func (n *Node) linkNodeKey(target string) error {
	out, err := keylink.Link(n.nodeKeySpec(), target)
	if err != nil {
		return fmt.Errorf("link the node key: %w", err)
	}
	n.logOutcome(n.p.nodeKey, out)
	return nil
}

func (n *Node) setNetwork(role supervisor.Role, nw network) error {
	changed, err := writeNetwork(n.p.config, nw)
	if err != nil {
		return err
	}
	if changed {
		n.cfg.Log.Info().Str("role", role.String()).Str("network_addr", nw.addr).Strs("public_addrs", nw.publicAddrs).
			Str("config", n.p.config).Msg("config.json updated")
	}
	return nil
}

func (n *Node) logOutcome(link string, o keylink.Outcome) {
	if o.MovedAside != "" {
		n.cfg.Log.Warn().Str("path", link).Str("moved_to", o.MovedAside).Msg("file where the key link goes moved aside")
	}
}

// Status implements supervisor.Node from GET /status. Synced: not
// syncing, a height, and a recent latest block. A voter that reports a
// loaded validator key is supervisor.ErrUnexpectedKey: some key reached it
// that valguard did not link; the supervisor kills it and stops. In the
// validator role the head height raises the watermark.
func (n *Node) Status(ctx context.Context) (supervisor.Status, error) {
	st, err := fetchStatus(ctx, n.client, n.p.status)
	if err != nil {
		return supervisor.Status{}, err
	}
	role := n.currentRole()
	if role == supervisor.RoleVoter && st.validator() != "" {
		err := fmt.Errorf("%w: neard reports validator_account_id %q although valguard linked no key; check validator_key_file in %s and what else writes into the node home", supervisor.ErrUnexpectedKey, st.validator(), n.p.config)
		return supervisor.Status{}, err
	}
	si := st.SyncInfo
	if role == supervisor.RoleValidator {
		n.heights.observe(si.LatestBlockHeight)
	}
	out := supervisor.Status{Height: si.LatestBlockHeight, CatchingUp: si.Syncing, BlockTime: si.LatestBlockTime}
	fresh := n.cfg.MaxBlockAge < 0 || time.Since(si.LatestBlockTime) <= n.cfg.MaxBlockAge
	out.Synced = !si.Syncing && si.LatestBlockHeight > 0 && fresh
	return out, nil
}

// HotPromotion implements supervisor.HotPromoter: --promotion hot always,
// restart never, auto when the running neard's version loads the key on
// SIGHUP (≥ 2.1).
func (n *Node) HotPromotion(ctx context.Context) (bool, error) {
	switch n.cfg.Promotion {
	case PromotionHot:
		return true, nil
	case PromotionRestart:
		return false, nil
	}
	st, err := fetchStatus(ctx, n.client, n.p.status)
	if err != nil {
		return false, fmt.Errorf("read neard's version: %w", err)
	}
	hot, err := reloadsKeyOnSIGHUP(st.Version.Version)
	n.cfg.Log.Info().Str("neard_version", st.Version.Version).Bool("hot", hot).AnErr("version_err", err).
		Msg("promotion mode chosen from neard's version")
	return hot, nil
}

// errNotConfirmed: neard did not report the validator key after SIGHUP.
var errNotConfirmed = errors.New("neard did not report the validator key loaded")

// errBehindWatermark: the node's head is below the published height.
var errBehindWatermark = errors.New("neard's head is below the height the previous leader published")

// PromoteRunning implements supervisor.HotPromoter: link the validator key
// where neard reads it, call reload (SIGHUP), and poll /status until it
// reports validator_account_id (and validator_public_key, when given) of
// this validator, within PromotionTimeout. The voter node key and address
// stay as they are, as in NEAR's own failover procedure. Before the key is
// linked, the node's head must be at or above watermark (AtWatermark; the
// supervisor waits for that first, this is the last check); the heights
// polled from then on raise the watermark.
func (n *Node) PromoteRunning(ctx context.Context, wm []byte, reload func() error) error {
	at, err := n.AtWatermark(ctx, wm)
	if err != nil {
		return fmt.Errorf("key not linked: %w", err)
	}
	if !at {
		return fmt.Errorf("%w: key not linked", errBehindWatermark)
	}
	if err := n.linkValidatorKey(); err != nil {
		return err
	}
	if err := reload(); err != nil {
		return fmt.Errorf("send SIGHUP to neard: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.PromotionTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last statusResponse
	var lastErr error
	for {
		st, err := fetchStatus(ctx, n.client, n.p.status)
		if err == nil {
			n.heights.observe(st.SyncInfo.LatestBlockHeight)
			last, lastErr = st, nil
			pk := st.ValidatorPublicKey
			if st.validator() == n.key.AccountID && (pk == nil || *pk == n.key.PublicKey) {
				return nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w within %s after SIGHUP: %v", errNotConfirmed, n.cfg.PromotionTimeout, lastErr)
			}
			return fmt.Errorf("%w within %s after SIGHUP: validator_account_id is %q, want %q (does this neard load the key on SIGHUP? use the restart promotion if not)",
				errNotConfirmed, n.cfg.PromotionTimeout, last.validator(), n.key.AccountID)
		case <-tick.C:
		}
	}
}
