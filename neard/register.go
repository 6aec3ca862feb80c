package neard

import (
	"encoding/json"
	"time"

	"github.com/valguard/valguard/chain"
)

// The neard node kind (the key-file mode only).
func init() {
	chain.Register(chain.Kind{
		// 60 s: neard may take long to close RocksDB (kuutamod allows 60 s).
		Name: "neard", StopTimeout: 60 * time.Second, KeyCredential: "validator_key.json",
		SignModes: []chain.SignMode{chain.SignRestart}, Build: build, KeyID: keyID,
		Flags: []chain.Flag{
			{Name: "validator-node-key", Path: true, Usage: "neard: the validator's node_key.json (default: $CREDENTIALS_DIRECTORY/validator_node_key.json; not needed with --promotion hot)"},
			{Name: "voter-node-key", Path: true, Usage: "neard: the standby's node_key.json (default: $CREDENTIALS_DIRECTORY/voter_node_key.json, else created once in <home>/valguard)"},
			{Name: "validator-network-addr", Value: DefaultValidatorAddr, Usage: "neard: network.addr while validating"},
			{Name: "voter-network-addr", Value: DefaultVoterAddr, Usage: "neard: network.addr while voting"},
			{Name: "boot-nodes", Usage: "neard: passed as 'run --boot-nodes'"},
			{Name: "public-address", Value: []string(nil), Usage: "neard: the validator's public IP (or IP:port), announced in network.public_addrs with the validator node key; repeat or comma-separate"},
			{Name: "promotion", Value: string(PromotionAuto), Usage: "neard: hot (SIGHUP, neard >= 2.1), restart, or auto (hot when the running neard is >= 2.1)"},
			{Name: "promotion-timeout", Value: DefaultPromotionTimeout, Usage: "neard: how long a hot promotion may take to show in /status before it counts as failed"},
		},
		SettingFlags: map[string]string{
			"ValidatorNodeKey": "validator-node-key", "VoterNodeKey": "voter-node-key",
			"ValidatorAddr": "validator-network-addr", "VoterAddr": "voter-network-addr",
			"PublicAddresses": "public-address", "Promotion": "promotion", "PromotionTimeout": "promotion-timeout",
			"BootNodes": "boot-nodes",
		},
	})
}

func build(s chain.Settings, in chain.Input) (chain.Setup, error) {
	vnode, err := in.Credential("validator-node-key", "validator_node_key.json", false)
	if err != nil {
		return chain.Setup{}, err
	}
	voter, err := in.Credential("voter-node-key", "voter_node_key.json", false)
	if err != nil {
		return chain.Setup{}, err
	}
	promotion, err := ParsePromotion(s.String("promotion"))
	if err != nil {
		return chain.Setup{}, err
	}
	n, err := New(Config{
		Home: s.Path("node-home"), Binary: s.String("node-binary"), Args: s.StringSlice("node-args"),
		BootNodes: s.String("boot-nodes"), ValidatorKey: in.KeyPath, ValidatorNodeKey: vnode, VoterNodeKey: voter,
		ValidatorAddr: s.String("validator-network-addr"), VoterAddr: s.String("voter-network-addr"),
		PublicAddresses: s.StringSlice("public-address"), Promotion: promotion,
		PromotionTimeout: s.Duration("promotion-timeout"), MaxBlockAge: chain.MaxBlockAge(s, in.Mode), Log: in.Log,
	})
	if err != nil {
		return chain.Setup{}, err
	}
	return chain.Setup{Node: n, Status: n.StatusURL(), LockID: n.LockID(), PublicKey: n.PublicKey(),
		Labels: []string{n.AccountID(), n.LockID()}, Compare: CompareWatermarks}, nil
}

// keyID is the lock id of a NEAR validator key (LockID): a key file that
// names an account_id, which a CometBFT key does not.
func keyID(path string, data []byte) (string, bool, error) {
	var probe struct {
		AccountID *string `json:"account_id"`
	}
	if json.Unmarshal(data, &probe) != nil || probe.AccountID == nil {
		return "", false, nil
	}
	k, err := LoadKey(path)
	if err != nil {
		return "", true, err
	}
	id, err := LockID(k.PublicKey)
	return id, true, err
}
