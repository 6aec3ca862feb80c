package replica

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/homelock"
	"github.com/valguard/valguard/roster"
	"github.com/valguard/valguard/signer"
	"github.com/valguard/valguard/supervisor"
)

// Run is one replica's life: it checks the settings (timing, the systemd
// watchdog, the signer's chain), takes the home lock if the caller has
// not, and runs the supervisor until ctx ends or one of cfg.Signals
// arrives (nil) or the supervisor gives up (its error). Every error
// before the supervisor starts leaves the node and Consul as they were.
func Run(ctx context.Context, cfg Config) error {
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = cfg.Hostname
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	ns := cfg.Node
	log := cfg.Log.With().Str("validator", cfg.Label).Str("replica", cfg.ReplicaID).Logger()
	metrics := supervisor.NewMetrics(cfg.Registry, cfg.Version)
	if p := cfg.ConsulPath; p != nil {
		p.OnSwitch = func(from, to, why string) {
			log.Warn().Str("from", from).Str("to", to).Str("why", why).Msg("Consul calls move to the next --consul-url address")
		}
		p.OnReject = func(host string, err error) {
			metrics.ConsulAddressRejected.Inc()
			log.Error().Str("address", host).Err(err).Msg("--consul-url address not used: it belongs to another Consul cluster; fix --consul-url")
		}
	}
	var sup *supervisor.Supervisor
	el, err := election.New(election.Config{
		Client: cfg.Consul, ValidatorID: ns.LockID, PublicKey: ns.PublicKey, Label: cfg.Label,
		ReplicaID: cfg.ReplicaID, Hostname: cfg.Hostname, CompareWatermarks: ns.Compare,
		TTL: cfg.SessionTTL, LockDelay: cfg.LockDelay, RenewInterval: cfg.RenewInterval,
		CallTimeout: cfg.ConsulTimeout, StopMargin: cfg.KillTimeout + killMargin,
		Fenced:        cfg.SignMode == chain.SignSigner,
		WrittenFenced: signer.WrittenBySigner,
		// The freshest of several standbys takes a freed lock first.
		TakeDelay: func() time.Duration {
			if sup == nil {
				return 0
			}
			return sup.TakeDelay()
		},
		OnConsulError: func(error) { metrics.ConsulErrors.Inc() },
		OnLateClose: func(attempts int, err error) {
			if err != nil {
				log.Warn().Err(err).Int("attempts", attempts).Msg("session close still failing; consul expires the session by itself")
				return
			}
			log.Info().Int("attempts", attempts).Msg("session closed late, once consul answered again: the lock is free")
		},
		OnUncleanTakeover: func(reason string, wait time.Duration) {
			log.Warn().Str("reason", reason).Dur("wait", wait).
				Msg("lock taken without a clean release by the previous leader: waiting before signing, so that it has stopped")
		},
	})
	if err != nil {
		return err
	}
	ec := el.Config()
	wd, err := checkSystemdWatchdog(ec)
	if err != nil {
		return err
	}
	var signerMode *signerSetup
	var sig supervisor.Signer
	var mem *membership
	if cfg.SignMode == chain.SignSigner {
		synced := func() bool {
			return sup != nil && sup.State() >= supervisor.Registering && sup.State() <= supervisor.Validating
		}
		best := func() int64 {
			if mem == nil {
				return 0
			}
			return mem.pub.BestHeight()
		}
		// Under --signers any, a replica not granted refuses every request
		// while it must not sign (drained, starting, stopping, its node
		// not synced), and parks otherwise (a grant about to be renewed).
		heldOut := func() bool {
			if sup == nil {
				return true
			}
			sn := sup.Snapshot()
			return sn.State == supervisor.Startup || sn.State == supervisor.Shutdown || sn.Hold != "" || !sn.Node.Synced
		}
		if signerMode, err = newSigner(ctx, cfg, el, synced, heldOut, best, log); err != nil {
			return err
		}
		sig = seam{s: signerMode.s}
	}
	var elect supervisor.Elector = elector{el}
	if cfg.SignMode == chain.SignSigner && cfg.Signer.leaderless() {
		if err := checkRecordWritable(ctx, el, cfg.ConsulTimeout); err != nil {
			return err
		}
		b := &grantBackoff{}
		elect = leaderlessElector{e: el, b: b}
		sig = seam{s: signerMode.s, el: el, b: b}
	}
	if cfg.HomeLock == nil {
		home, err := homelock.Acquire(cfg.StateDir)
		if err != nil {
			return err
		}
		defer home.Close()
	}
	ro, err := roster.New(roster.Config{Client: cfg.Consul, ValidatorID: ns.LockID, ReplicaID: cfg.ReplicaID, CallTimeout: ec.CallTimeout,
		Instance: instance(cfg.Hostname, cfg.StateDir)})
	if err != nil {
		return err
	}
	policy := ""
	var races func() (uint64, uint64)
	if cfg.SignMode == chain.SignSigner {
		policy, races = cfg.Signer.policy(), signerMode.s.Races
	}
	if err := checkPolicies(ctx, ro, cfg.ReplicaID, string(cfg.SignMode), policy); err != nil {
		return err
	}
	mem = newMembership(ro, roster.Report{Replica: cfg.ReplicaID, Hostname: cfg.Hostname, Version: cfg.Version, SignMode: string(cfg.SignMode), Signers: policy, NodeRPC: ns.Status},
		func() *supervisor.Supervisor { return sup }, races, func(error) { metrics.ConsulErrors.Inc() }, log)
	sup, err = supervisor.New(supervisor.Config{
		Node: ns.Node, Elector: elect, Signer: sig, Unsupervised: ns.Unsupervised, Log: log, Metrics: metrics,
		Operator: mem.watcher, BestHeight: mem.pub.BestHeight,
		CallTimeout: ec.CallTimeout,
		StopTimeout: cfg.StopTimeout, KillTimeout: cfg.KillTimeout,
		MaxStall: cfg.MaxStall, MaxLag: cfg.MaxLag, StepDownHoldoff: cfg.StepDownHoldoff,
		MaxStartFailures: cfg.MaxStartFailures,
	})
	if err != nil {
		return err
	}
	if len(cfg.Signals) > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, cfg.Signals...)
		defer stop()
	}
	if cfg.MetricsAddr != "" {
		if err := serveMetrics(ctx, cfg.MetricsAddr, cfg.Registry, sup, log); err != nil {
			return err
		}
	}
	log.Info().Str("version", cfg.Version).Str("node", cfg.NodeKind).Str("sign_mode", string(cfg.SignMode)).Str("signers", policy).Str("node_home", cfg.NodeHome).Str("validator_key", cfg.KeyPath).
		Str("lock_key", el.LockKey()).Dur("ttl", ec.TTL).Dur("lock_delay", ec.LockDelay).
		Dur("renew_interval", ec.RenewInterval).Str("status", ns.Status).Dur("stop_timeout", cfg.StopTimeout).Msg("valguard starting")
	go newWatchdog(log, wd, sup.LeaseDeadline).run(ctx)
	if signerMode != nil {
		// The node's signer outlives the signal: a node being stopped may
		// wait on a sign request, and without an answer its shutdown hangs
		// until SIGKILL. Signing itself is revoked before the lock goes;
		// what is served after that is a standby's answers.
		serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
		defer stopServe()
		if err := signerMode.start(serveCtx); err != nil {
			return err
		}
	}
	stopMembership := mem.start(ctx)
	err = sup.Run(ctx)
	stopMembership()
	if err != nil {
		return err
	}
	log.Info().Msg("valguard stopped")
	return nil
}

// instance names this run for roster.Config.Instance. The home lock is
// held: a report session of this boot of this host and this state
// directory is an earlier, dead run of this valguard. The boot id tells
// apart hosts that share a name (clones, containers on the host network);
// without one, no earlier run is taken over ("").
func instance(host, stateDir string) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(strings.TrimSpace(string(boot))) == 0 {
		return ""
	}
	return host + "/" + strings.TrimSpace(string(boot)) + ":" + absPath(stateDir)
}

// absPath is p made absolute, or p when that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
