package chaos

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// Modes of Config.Mode: the two sign modes on a CometBFT localnet, and
// the key-file mode beside neard stand-ins.
const (
	ModeRestart = "restart"
	ModeSigner  = "signer"
	ModeNEAR    = "near"
	// ModeAny is the signer mode's leaderless policy (--signers any):
	// every replica signs; the drill's "leader" is any replica that signs,
	// and a replica set is in shape when every replica signs.
	ModeAny = "any"
)

// signerModes are the modes whose replicas run --sign-mode signer.
func signerMode(mode string) bool { return mode == ModeSigner || mode == ModeAny }

// Timing the replicas run with, and the bounds derive from.
const (
	sessionTTL       = 10 * time.Second
	watchdogInterval = 3 * time.Second
	// deposeAfter is --signer-depose-after in the signer mode.
	deposeAfter = 2 * time.Second
	// homeSize is the tmpfs each replica's node home lives on, small
	// enough to fill on purpose.
	homeSize = 256 << 20
)

// lockDelay is the lock-delay valguard uses in mode (its defaults).
func lockDelay(mode string) time.Duration {
	if signerMode(mode) {
		return time.Millisecond
	}
	return sessionTTL
}

// RigConfig describes a drill's topology.
type RigConfig struct {
	Mode     string // ModeRestart, ModeSigner, ModeNEAR or ModeAny
	Dir      string // everything the run writes: homes, logs, report
	Replicas int    // replicas of the HA validator; default 2
	Valguard string // the valguard binary
	Consul   string // the consul binary
	CometBFT string // the cometbft binary
	Standin  string // the neard stand-in binary (ModeNEAR)
	Logf     func(format string, args ...any)
}

// Rig is a running topology: network, Consul cluster, localnet, replicas.
type Rig struct {
	cfg    RigConfig
	ctx    context.Context
	cancel context.CancelFunc
	Net    *Network
	Consul *Cluster
	Chain  *localnet.Net // CometBFT modes
	RPC    string        // validator 0's RPC, for the chain checks (CometBFT modes)
	chain  chainView
	// validatorKey is the HA validator's key file.
	validatorKey string
	near         *nearSetup // ModeNEAR
	Replicas     []*Replica
	validators   []*localnet.Process
	closeOnce    sync.Once
}

// NewRig builds the topology and starts it: network, Consul (3 servers),
// the localnet's validators, the replicas (the first one started first, so
// that it leads). On error everything started is torn down.
func NewRig(ctx context.Context, cfg RigConfig) (r *Rig, err error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 2
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	r = &Rig{cfg: cfg, ctx: ctx, cancel: cancel}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.Net, err = NewNetwork(ctx); err != nil {
		return nil, err
	}
	cfg.Logf("network %s: chain 10.213.%d.0/24, consul 10.214.%d.0/24", r.Net.Prefix, r.Net.Subnet, r.Net.Subnet)
	if r.Consul, err = startCluster(ctx, r.Net, cfg.Consul, cfg.Dir, 3); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeNEAR {
		err = r.startNEAR()
	} else {
		err = r.startChain(ctx)
	}
	if err != nil {
		return nil, err
	}
	for i := range cfg.Replicas {
		if err = r.addReplica(ctx, i); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Rig) startChain(ctx context.Context) error {
	n, err := localnet.Create(ctx, localnet.Config{Dir: filepath.Join(r.cfg.Dir, "chain"), Binary: r.cfg.CometBFT, Replicas: r.cfg.Replicas})
	if err != nil {
		return err
	}
	r.Chain = n
	r.validatorKey = n.ValidatorKey
	// Every node listens on its host's bridge address instead of 127.0.0.1.
	ipOf := map[string]string{}
	hosts := map[string]string{}
	for i, h := range n.Homes {
		if i != n.HA {
			hosts[h] = r.Net.ChainIP(1)
		}
	}
	for i, h := range n.ReplicaHomes {
		hosts[h] = r.Net.ChainIP(10 + i)
	}
	for h, ip := range hosts {
		u, _ := url.Parse(n.RPC(h))
		ipOf[u.Port()] = ip
		_, p2p, _ := strings.Cut(n.P2P(h), "@127.0.0.1:")
		ipOf[p2p] = ip
	}
	for h := range hosts {
		path := filepath.Join(h, "config", "config.toml")
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s := string(data)
		for port, ip := range ipOf {
			s = strings.ReplaceAll(s, "127.0.0.1:"+port+"\"", ip+":"+port+"\"")
			s = strings.ReplaceAll(s, "127.0.0.1:"+port+",", ip+":"+port+",")
		}
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			return err
		}
	}
	u, _ := url.Parse(n.RPC(n.Homes[0]))
	r.RPC = "http://" + r.Net.ChainIP(1) + ":" + u.Port()
	procs, err := n.StartValidators(r.ctx, filepath.Join(r.cfg.Dir, "logs"))
	if err != nil {
		return err
	}
	r.validators = procs
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := localnet.WaitHeight(wctx, r.RPC, 3); err != nil {
		return err
	}
	// Every check compares the validator's power with the one now.
	power, err := localnet.Power(ctx, r.RPC, n.HAAddress)
	if err != nil {
		return err
	}
	r.chain = &cometChain{rpc: r.RPC, addr: n.HAAddress, power: power, logs: r.NodeLogs}
	return nil
}

// Close stops every process, removes the network and unmounts the homes.
// Logs and homes stay in the run directory.
func (r *Rig) Close() {
	r.closeOnce.Do(func() {
		for _, rep := range r.Replicas {
			rep.mu.Lock()
			rep.held = true
			rep.mu.Unlock()
			if rep.Watchdog != nil {
				rep.Watchdog.Close()
			}
			if rep.Proxy != nil {
				rep.Proxy.Close()
			}
			KillNS(rep.NS)
		}
		r.cancel()
		for _, p := range r.validators {
			_ = p.Kill()
		}
		if r.Consul != nil {
			for j := range r.Consul.Servers {
				r.Consul.Kill(j)
			}
		}
		if r.Net != nil {
			r.Net.Close()
		}
	})
}

// NodeLogs are every log of the run's nodes and valguards (*.log under
// the run directory).
func (r *Rig) NodeLogs() []string {
	var out []string
	_ = filepath.WalkDir(r.cfg.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") && !strings.Contains(p, "consul-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
