package cometbft

import (
	"errors"
	"fmt"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/supervisor"
)

// The node kinds of this adapter: cometbft (a node valguard runs) and
// external (a CometBFT node valguard signs for but does not run).
func init() {
	chain.Register(chain.Kind{
		Name: "cometbft", StopTimeout: supervisor.DefaultStopTimeout, KeyCredential: "priv_validator_key.json",
		SignModes: []SignMode{SignRestart, SignSigner}, Build: build, KeyID: keyID,
	})
	chain.Register(chain.Kind{
		Name: "external", StopTimeout: supervisor.DefaultStopTimeout, KeyCredential: "priv_validator_key.json",
		SignModes: []SignMode{SignSigner}, Build: buildExternal,
		Flags: []chain.Flag{
			{Name: "node-rpc", Usage: "external: the node's RPC address, http://host:port"},
			{Name: "chain-id", Usage: "external: the node's chain id"},
			{Name: "state-dir", Path: true, Usage: "external: where valguard keeps its files (default: $STATE_DIRECTORY, systemd's StateDirectory=)"},
		},
	})
}

func build(s chain.Settings, in chain.Input) (chain.Setup, error) {
	n, err := New(Config{
		Home: s.Path("node-home"), Binary: s.String("node-binary"), Args: s.StringSlice("node-args"),
		ValidatorKey: in.KeyPath, MaxBlockAge: chain.MaxBlockAge(s, in.Mode), Log: in.Log,
		SignMode: in.Mode, SignerAddr: s.String("signer-addr"),
	})
	if errors.Is(err, ErrSignerAddr) {
		return chain.Setup{}, fmt.Errorf("--signer-addr: %w", err)
	}
	if err != nil {
		return chain.Setup{}, err
	}
	st := chain.Setup{Node: n, Status: n.RPC(), LockID: n.LockID(), PublicKey: n.PublicKey(),
		Labels: []string{n.Address()}, Compare: CompareWatermarks}
	if in.Mode == SignSigner {
		st.Signer = n
	}
	return st, nil
}

// keyID is the lock id of a priv_validator_key.json: its address. Any
// file is taken for one (cometbft is the default --node); the error says
// why it is not.
func keyID(path string, _ []byte) (string, bool, error) {
	k, err := LoadKey(path)
	return k.Address, true, err
}

func buildExternal(s chain.Settings, in chain.Input) (chain.Setup, error) {
	for _, f := range []string{"node-rpc", "chain-id", "signer-addr"} {
		if s.String(f) == "" {
			return chain.Setup{}, fmt.Errorf("--node external needs --%s", f)
		}
	}
	for _, f := range []string{"node-binary", "node-args"} {
		if s.IsSet(f) {
			return chain.Setup{}, fmt.Errorf("--%s: valguard does not start an external node", f)
		}
	}
	n, err := NewRemote(RemoteConfig{
		RPC: s.String("node-rpc"), ValidatorKey: in.KeyPath, ChainID: s.String("chain-id"),
		SignerAddr: s.String("signer-addr"), MaxBlockAge: chain.MaxBlockAge(s, SignSigner),
	})
	if errors.Is(err, ErrSignerAddr) {
		return chain.Setup{}, fmt.Errorf("--signer-addr: %w", err)
	}
	if err != nil {
		return chain.Setup{}, err
	}
	return chain.Setup{Node: n, Status: n.RPC(), LockID: n.LockID(), PublicKey: n.PublicKey(),
		Labels: []string{n.Address()}, Compare: CompareWatermarks, Signer: n, Unsupervised: true}, nil
}
