package chaos

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mr-tron/base58"
	"github.com/tidwall/sjson"
)

// The NEAR drill runs valguard beside the neard stand-in
// (internal/neardstandin: neard's command line, config, key files, RPC
// and SIGHUP key reload, with a clock for a chain and a journal of the
// heights it produced), since neard cannot be built here. The stand-ins
// share a genesis and a block interval, so they agree on the head; each
// appends what it produced to a journal of its own, which is the chain the
// drill reads (standinChain). Faults that need chain peers (partitions
// from the chain) or a node database (disk full) do not apply.
const (
	nearAccount  = "pool.poolv1.near"
	nearInterval = time.Second // about NEAR's block time
)

// nearSetup is the NEAR drill's shared part: the keys and the chain clock.
type nearSetup struct {
	genesis time.Time
	nodeKey string // the validator's node key (restart promotion)
}

// startNEAR writes the validator's keys and starts the chain clock.
func (r *Rig) startNEAR() error {
	dir := filepath.Join(r.cfg.Dir, "near")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if r.cfg.Standin == "" {
		return fmt.Errorf("the NEAR drill needs the neard stand-in binary (RigConfig.Standin)")
	}
	r.near = &nearSetup{genesis: time.Now(), nodeKey: filepath.Join(dir, "validator_node_key.json")}
	r.validatorKey = filepath.Join(dir, "validator_key.json")
	if err := writeNEARKey(r.validatorKey, nearAccount); err != nil {
		return err
	}
	if err := writeNEARKey(r.near.nodeKey, "node"); err != nil {
		return err
	}
	var journals []string
	for i := range r.cfg.Replicas {
		journals = append(journals, filepath.Join(dir, "journal-r"+strconv.Itoa(i)))
	}
	r.chain = newStandinChain(r.near.genesis, nearInterval, nearAccount, journals)
	return nil
}

// nearReplica initialises the replica's neard home (neard init), points
// its RPC at the replica's address and sets valguard's neard flags and
// the stand-in's environment.
func (r *Rig) nearReplica(ctx context.Context, rep *Replica) error {
	if out, err := exec.CommandContext(ctx, r.cfg.Standin, "--home", rep.Home, "init", "--chain-id", "localnet").CombinedOutput(); err != nil {
		return fmt.Errorf("neard init: %w: %s", err, out)
	}
	ip := r.Net.ChainIP(10 + rep.Index)
	path := filepath.Join(rep.Home, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if data, err = sjson.SetBytes(data, "rpc.addr", ip+":3030"); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	rep.RPC = "http://" + ip + ":3030"
	rep.args = append(rep.args, "--node", "neard", "--node-binary", r.cfg.Standin,
		"--validator-node-key", r.near.nodeKey,
		"--voter-network-addr", ip+":24567", "--validator-network-addr", ip+":24568", "--public-address", ip)
	rep.env = []string{
		"STANDIN_GENESIS=" + strconv.FormatInt(r.near.genesis.UnixMilli(), 10),
		"STANDIN_BLOCK_INTERVAL=" + nearInterval.String(),
		"STANDIN_JOURNAL=" + filepath.Join(r.cfg.Dir, "near", "journal-"+rep.ID),
		// neard opening its database, catching up, closing RocksDB.
		"STANDIN_START_DELAY=1s", "STANDIN_SYNC_DELAY=2s", "STANDIN_SHUTDOWN_DELAY=1s",
		"CREDENTIALS_DIRECTORY=",
	}
	return nil
}

// writeNEARKey writes a new ed25519 key file in neard's format.
func writeNEARKey(path, account string) error {
	pub, secret, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	data, err := json.Marshal(map[string]string{"account_id": account,
		"public_key": "ed25519:" + base58.Encode(pub), "secret_key": "ed25519:" + base58.Encode(secret)})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
