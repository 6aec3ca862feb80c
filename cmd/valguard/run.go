package main

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consulclient"

	// Aliased: the end-to-end tests call a valguard run process a replica.
	vgreplica "github.com/valguard/valguard/replica"
	"github.com/valguard/valguard/signer"
	"github.com/valguard/valguard/supervisor"
)

func runCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "names the validator in Consul (default: derived from the key)", EnvVars: env("validator-id")},
		&cli.StringFlag{Name: "replica-id", Usage: "names this replica (default: the hostname)", EnvVars: env("replica-id")},
		&cli.DurationFlag{Name: "session-ttl", Value: election.DefaultTTL, Usage: "Consul session TTL (10s minimum)", EnvVars: env("session-ttl")},
		&cli.DurationFlag{Name: "lock-delay", Usage: "Consul lock-delay after an invalidation (default: the TTL)", EnvVars: env("lock-delay")},
		&cli.DurationFlag{Name: "renew-interval", Usage: "session renew interval (default: TTL/3)", EnvVars: env("renew-interval")},
		&cli.DurationFlag{Name: "max-stall", Value: supervisor.DefaultMaxStall, Usage: "a validator without progress this long steps down (not when the whole chain stopped: no other replica ahead and its node still signing); a standby whose node stands still this long while a replica is ahead has its node restarted", EnvVars: env("max-stall")},
		&cli.Int64Flag{Name: "max-lag", Value: vgreplica.DefaultMaxLag, Usage: "a synced standby more than this many blocks below the best height a replica reports stays out of the election until it catches up (0: no limit)", EnvVars: env("max-lag")},
		&cli.DurationFlag{Name: "step-down-holdoff", Value: supervisor.DefaultStepDownHoldoff, Usage: "time out of the election after stepping down", EnvVars: env("step-down-holdoff")},
		&cli.DurationFlag{Name: "stop-timeout", Usage: "wait after SIGTERM before SIGKILL when stopping the node (default: 15s for cometbft, 60s for neard)", EnvVars: env("stop-timeout")},
		&cli.DurationFlag{Name: "kill-timeout", Value: supervisor.DefaultKillTimeout, Usage: "wait for the node to be reaped after SIGKILL", EnvVars: env("kill-timeout")},
		&cli.IntFlag{Name: "max-start-failures", Value: supervisor.DefaultMaxStartFailures, Usage: "consecutive node failures before valguard exits non-zero", EnvVars: env("max-start-failures")},
		&cli.StringFlag{Name: "metrics-addr", Value: "127.0.0.1:2233", Usage: "address of /metrics and /health; empty disables", EnvVars: env("metrics-addr")},
		&cli.StringFlag{Name: "log-format", Usage: "json or console (default: console on a terminal, json otherwise)", EnvVars: env("log-format")},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: env("log-level")},
	}
	return &cli.Command{
		Name:   "run",
		Usage:  "supervise the local node and take part in the election",
		Flags:  slices.Concat(nodeFlags(), signerFlagDefs(), flags, consulFlags()),
		Action: run,
	}
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every setting is a flag", c.Args().Slice())
	}
	log, err := vgreplica.NewLogger(os.Stderr, c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	logDeprecatedEnv(c, log)
	if n := c.Int64("max-lag"); n < 0 {
		return fmt.Errorf("--max-lag %d: want 0 (no limit) or a number of blocks", n)
	}
	kind, mode, err := chooseNode(c)
	if err != nil {
		return err
	}
	policy, err := signerPolicy(c)
	if err != nil {
		return err
	}
	// One valguard per node home: on a home valguard has used before, the
	// lock is taken first (replica.LockUsedHome).
	lockDir, err := vgreplica.StateDir(kind.Name == nodeExternal, c.Path("node-home"), c.IsSet("node-home"), c.Path("state-dir"))
	if err != nil {
		return err
	}
	home, err := vgreplica.LockUsedHome(lockDir)
	if err != nil {
		return err
	}
	defer home.Close() // nil (a new home): nothing to release
	ns, err := kind.Open(c, chain.Input{Mode: mode, Credential: credential(c), Log: log})
	if err != nil {
		return err
	}
	stopTimeout := kind.StopTimeout
	if c.IsSet("stop-timeout") {
		stopTimeout = c.Duration("stop-timeout")
	}
	label, err := vgreplica.Label(c.String("validator-id"), ns.Labels, ns.KeyPath, ns.LockID)
	if err != nil {
		return err
	}
	client, path, err := consulclient.New(c.Context, consulOptions(c))
	if err != nil {
		return err
	}
	if err := consulclient.CheckAccess(c.Context, client, consulOptions(c), ns.LockID, consulclient.AccessRun); err != nil {
		return err
	}
	return vgreplica.Run(c.Context, vgreplica.Config{
		Node: ns, NodeKind: kind.Name, SignMode: mode, KeyPath: ns.KeyPath, NodeHome: c.Path("node-home"),
		StateDir: lockDir, HomeLock: home,
		Label: label, ReplicaID: c.String("replica-id"), Hostname: hostname(), Version: version,
		Consul: client, ConsulPath: path, ConsulTimeout: c.Duration("consul-timeout"),
		SessionTTL: c.Duration("session-ttl"), LockDelay: c.Duration("lock-delay"), RenewInterval: c.Duration("renew-interval"),
		StopTimeout: stopTimeout, KillTimeout: c.Duration("kill-timeout"),
		MaxStall: c.Duration("max-stall"), StepDownHoldoff: c.Duration("step-down-holdoff"),
		MaxLag: c.Int64("max-lag"), MaxStartFailures: c.Int("max-start-failures"),
		Signer: vgreplica.SignerConfig{
			Policy:   policy,
			ParkHold: c.Duration("signer-park-hold"), FenceTimeout: c.Duration("fence-timeout"),
			DeposeAfter: c.Duration("signer-depose-after"), DeposeHoldoff: c.Duration("signer-depose-holdoff"),
		},
		MetricsAddr: c.String("metrics-addr"),
		Log:         log,
		Signals:     []os.Signal{syscall.SIGTERM, syscall.SIGINT},
	})
}

// signerFlagDefs are the flags of --sign-mode signer (signerFlags names
// them for the refusal in restart mode).
func signerFlagDefs() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "signers", Value: signer.PolicyLeader, Usage: "signer mode: leader (the lock holder signs, the others wait) or any (every replica signs for its own node; a check-and-set of the sign record in Consul decides each signature)", EnvVars: env("signers")},
		&cli.StringFlag{Name: "signer-addr", Usage: "signer mode: the node's priv_validator_laddr, which valguard dials: unix:///path (default unix://<node-home>/valguard/privval.sock) or tcp://host:port (SecretConnection)", EnvVars: env("signer-addr")},
		&cli.DurationFlag{Name: "signer-park-hold", Value: signer.DefaultParkHold, Usage: "signer mode: how long a standby holds a request above the watermark before the node re-sends it (below the node's 5s read timeout)", EnvVars: env("signer-park-hold")},
		&cli.DurationFlag{Name: "fence-timeout", Value: signer.DefaultFenceTimeout, Usage: "signer mode: bound on the Consul transaction that fences a signature (below --signer-park-hold); a timeout demotes", EnvVars: env("fence-timeout")},
		&cli.DurationFlag{Name: "signer-depose-after", Usage: "signer mode: a synced standby whose node waited this long on a watermark that does not move destroys the leader's session (0: off)", EnvVars: env("signer-depose-after")},
		&cli.DurationFlag{Name: "signer-depose-holdoff", Value: signer.DefaultDeposeHoldoff, Usage: "signer mode: no deposition within this time of leading or deposing", EnvVars: env("signer-depose-holdoff")},
	}
}

// signerPolicy is --signers, checked: leader or any, and under any no
// deposition (there is no holder to depose).
func signerPolicy(c *cli.Context) (string, error) {
	switch p := c.String("signers"); p {
	case signer.PolicyLeader:
		return p, nil
	case signer.PolicyAny:
		if c.Duration("signer-depose-after") != 0 {
			return "", fmt.Errorf("--signer-depose-after %s with --signers any: every replica signs, there is no lock holder to depose; drop --signer-depose-after", c.Duration("signer-depose-after"))
		}
		return p, nil
	default:
		return "", fmt.Errorf("--signers %q: want leader (the lock holder signs) or any (every replica signs; the sign record in Consul decides)", p)
	}
}
