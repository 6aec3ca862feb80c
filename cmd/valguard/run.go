package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/homelock"
	"github.com/valguard/valguard/roster"
	"github.com/valguard/valguard/signer"
	"github.com/valguard/valguard/supervisor"
)

// killMargin is added to --kill-timeout to give the election's stop margin:
// the local lease deadline comes that long before the earliest moment
// Consul may expire the session (S4, S6).
const killMargin = time.Second

// defaultRunMaxLag is run's --max-lag: looser than the hand-over's
// (operator.DefaultMaxLag), since the best height compared with is what the
// replicas last published, a second or two old on chains of fast blocks.
const defaultRunMaxLag = 10

func runCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "validator-id", Usage: "names the validator in Consul (default: derived from the key)", EnvVars: env("validator-id")},
		&cli.StringFlag{Name: "replica-id", Usage: "names this replica (default: the hostname)", EnvVars: env("replica-id")},
		&cli.DurationFlag{Name: "session-ttl", Value: election.DefaultTTL, Usage: "Consul session TTL (10s minimum)", EnvVars: env("session-ttl")},
		&cli.DurationFlag{Name: "lock-delay", Usage: "Consul lock-delay after an invalidation (default: the TTL)", EnvVars: env("lock-delay")},
		&cli.DurationFlag{Name: "renew-interval", Usage: "session renew interval (default: TTL/3)", EnvVars: env("renew-interval")},
		&cli.DurationFlag{Name: "max-stall", Value: supervisor.DefaultMaxStall, Usage: "a validator without progress this long steps down (not when the whole chain stopped: no other replica ahead and its node still signing)", EnvVars: env("max-stall")},
		&cli.Int64Flag{Name: "max-lag", Value: defaultRunMaxLag, Usage: "a synced standby more than this many blocks below the best height a replica reports stays out of the election until it catches up (0: no limit)", EnvVars: env("max-lag")},
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
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	logDeprecatedEnv(c, log)
	if n := c.Int64("max-lag"); n < 0 {
		return fmt.Errorf("--max-lag %d: want 0 (no limit) or a number of blocks", n)
	}
	name, kind, mode, err := chooseNode(c)
	if err != nil {
		return err
	}
	// One valguard per node home. On a home valguard has used before, the
	// lock is taken first, so that a second valguard is told so rather
	// than tripping over the first one's node; on a new home it is taken
	// after every check, so that a refusal leaves the home as it was.
	lockDir, err := stateDir(c, name)
	if err != nil {
		return err
	}
	var home *homelock.Lock
	if _, err := os.Stat(lockDir); err == nil {
		if home, err = homelock.Acquire(lockDir); err != nil {
			return err
		}
		defer home.Close()
	}
	ns, err := newNode(c, name, kind, mode, log)
	if err != nil {
		return err
	}
	stopTimeout := kind.StopTimeout
	if c.IsSet("stop-timeout") {
		stopTimeout = c.Duration("stop-timeout")
	}
	label, err := validatorLabel(c, ns)
	if err != nil {
		return err
	}
	replicaID := c.String("replica-id")
	host, _ := os.Hostname()
	if replicaID == "" {
		replicaID = host
	}
	log = log.With().Str("validator", label).Str("replica", replicaID).Logger()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := supervisor.NewMetrics(reg, version)

	client, path, err := consulClientPath(c)
	if err != nil {
		return err
	}
	path.OnSwitch = func(from, to, why string) {
		log.Warn().Str("from", from).Str("to", to).Str("why", why).Msg("Consul calls move to the next --consul-url address")
	}
	path.OnReject = func(host string, err error) {
		metrics.ConsulAddressRejected.Inc()
		log.Error().Str("address", host).Err(err).Msg("--consul-url address not used: it belongs to another Consul cluster; fix --consul-url")
	}
	var sup *supervisor.Supervisor
	el, err := election.New(election.Config{
		Client: client, ValidatorID: ns.LockID, PublicKey: ns.PublicKey, Label: label,
		ReplicaID: replicaID, Hostname: host, CompareWatermarks: ns.Compare,
		TTL: c.Duration("session-ttl"), LockDelay: c.Duration("lock-delay"), RenewInterval: c.Duration("renew-interval"),
		CallTimeout: c.Duration("consul-timeout"), StopMargin: c.Duration("kill-timeout") + killMargin,
		Fenced:        mode == chain.SignSigner,
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
	cfg := el.Config()
	underSystemd, wdInterval, err := systemdWatchdog()
	if err != nil {
		return fmt.Errorf("systemd watchdog settings: %w", err)
	}
	if err := checkWatchdog(underSystemd, wdInterval, cfg.TTL, cfg.RenewInterval, cfg.StopMargin); err != nil {
		return err
	}
	var signerMode *signerSetup
	var sig supervisor.Signer
	var mem *membership
	if mode == chain.SignSigner {
		synced := func() bool {
			return sup != nil && sup.State() >= supervisor.Registering && sup.State() <= supervisor.Validating
		}
		best := func() int64 {
			if mem == nil {
				return 0
			}
			return mem.pub.BestHeight()
		}
		if signerMode, err = newSigner(c, ns, el, reg, synced, best, log); err != nil {
			return err
		}
		sig = seam{signerMode.s}
	}
	if home == nil {
		if home, err = homelock.Acquire(lockDir); err != nil {
			return err
		}
		defer home.Close()
	}
	// The home lock is held: a report session of this boot of this host
	// and this state directory is an earlier, dead run of this valguard
	// (roster.Config.Instance). The boot id tells apart hosts that share
	// a name (clones, containers on the host network); without one, no
	// earlier run is taken over.
	instance := ""
	if boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil && len(strings.TrimSpace(string(boot))) > 0 {
		instance = host + "/" + strings.TrimSpace(string(boot)) + ":" + absPath(lockDir)
	}
	ro, err := roster.New(roster.Config{Client: client, ValidatorID: ns.LockID, ReplicaID: replicaID, CallTimeout: cfg.CallTimeout,
		Instance: instance})
	if err != nil {
		return err
	}
	mem = newMembership(ro, roster.Report{Replica: replicaID, Hostname: host, Version: version, SignMode: string(mode), NodeRPC: ns.Status},
		func() *supervisor.Supervisor { return sup }, func(error) { metrics.ConsulErrors.Inc() }, log)
	sup, err = supervisor.New(supervisor.Config{
		Node: ns.Node, Elector: elector{el}, Signer: sig, Unsupervised: ns.Unsupervised, Log: log, Metrics: metrics,
		Operator: mem.watcher, BestHeight: mem.pub.BestHeight,
		CallTimeout: cfg.CallTimeout,
		StopTimeout: stopTimeout, KillTimeout: c.Duration("kill-timeout"),
		MaxStall: c.Duration("max-stall"), MaxLag: c.Int64("max-lag"), StepDownHoldoff: c.Duration("step-down-holdoff"),
		MaxStartFailures: c.Int("max-start-failures"),
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if addr := c.String("metrics-addr"); addr != "" {
		if err := serveMetrics(ctx, addr, reg, sup, log); err != nil {
			return err
		}
	}
	log.Info().Str("version", version).Str("node", name).Str("sign_mode", string(mode)).Str("node_home", c.Path("node-home")).Str("validator_key", ns.keyPath).
		Str("lock_key", el.LockKey()).Dur("ttl", cfg.TTL).Dur("lock_delay", cfg.LockDelay).
		Dur("renew_interval", cfg.RenewInterval).Str("status", ns.Status).Dur("stop_timeout", stopTimeout).Msg("valguard starting")
	go newWatchdog(log, wdInterval, sup.LeaseDeadline).run(ctx)
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
		return cli.Exit(err.Error(), 1)
	}
	log.Info().Msg("valguard stopped")
	return nil
}

func newLogger(c *cli.Context) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	format := c.String("log-format")
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "console"
		}
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	var log zerolog.Logger
	switch format {
	case "json":
		log = zerolog.New(os.Stderr)
	case "console":
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339})
	default:
		return log, fmt.Errorf("--log-format %q: want json or console", format)
	}
	return log.Level(lvl).With().Timestamp().Logger(), nil
}

func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, sup *supervisor.Supervisor, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "ok %s\n", sup.State())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}

// elector adapts *election.Election to supervisor.Elector.
type elector struct{ e *election.Election }

func (e elector) NewSession(ctx context.Context) (supervisor.Session, error) {
	s, err := e.e.NewSession(ctx)
	if err != nil {
		return nil, err
	}
	return session{s}, nil
}

// session adapts *election.Session to supervisor.Session: a lock that
// names another validator's key ends the run rather than being retried.
type session struct{ *election.Session }

func (s session) Acquire(ctx context.Context) error {
	err := s.Session.Acquire(ctx)
	if errors.Is(err, election.ErrForeignLock) {
		return fmt.Errorf("%w: %w: check that every replica uses the same --validator-key, and what else writes to valguard/ in Consul", supervisor.ErrFatal, err)
	}
	return err
}

func (e elector) Watermark(ctx context.Context) ([]byte, error) { return e.e.Watermark(ctx) }

// absPath is p made absolute, or p when that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
