package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// node is one running stand-in.
type node struct {
	log        zerolog.Logger
	home       string
	knobs      knobs
	cfg        nodeConfig
	chain      chain
	chainID    string
	validators []string // genesis validators
	nodeKey    key
	journal    *os.File  // nil without STANDIN_JOURNAL
	started    time.Time // process start
	syncEnd    time.Time // set before any goroutine reads it

	mu  sync.Mutex
	val *activeKey // nil: not a validator
}

// activeKey is the loaded validator key and the first height it produces.
type activeKey struct {
	key
	from int64
}

func (n *node) validator() *activeKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.val
}

// setValidator loads k. A new key produces from the height after the head
// at this instant; reloading the loaded key changes nothing.
func (n *node) setValidator(k key) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.val != nil && n.val.key == k {
		return
	}
	n.val = &activeKey{key: k, from: n.chain.head(time.Now()) + 1}
}

func (n *node) syncing(now time.Time) bool { return now.Before(n.syncEnd) }

// run is `neard run`: it returns nil after a SIGTERM or SIGINT and the
// shutdown delay, or an error (exit 1).
func run(home, bootNodes string, k knobs, log zerolog.Logger) error {
	// Before anything else: an early SIGHUP must not kill the process.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	n, err := newNode(home, bootNodes, k, log)
	if err != nil {
		return err
	}
	if n.journal != nil {
		defer n.journal.Close()
	}
	if k.StartDelay > 0 {
		log.Info().Str("start_delay", k.StartDelay.String()).Msg("opening database")
		deadline := time.NewTimer(k.StartDelay)
	opening:
		for {
			select {
			case <-deadline.C:
				break opening
			case s := <-sigs:
				if s != syscall.SIGHUP {
					log.Info().Str("signal", s.String()).Msg("shutting down")
					log.Info().Msg("stopped")
					return nil
				}
				n.onSIGHUP()
			}
		}
	}

	netLn, err := net.Listen("tcp", n.cfg.NetworkAddr)
	if err != nil {
		return fmt.Errorf("network.addr: %w", err)
	}
	defer netLn.Close()
	rpcLn, err := net.Listen("tcp", n.cfg.RPCAddr)
	if err != nil {
		return fmt.Errorf("rpc.addr: %w", err)
	}
	n.syncEnd = time.Now().Add(k.SyncDelay)
	srv := &http.Server{Handler: n.handler(), ReadHeaderTimeout: 5 * time.Second}
	defer srv.Close()
	errs := make(chan error, 3)
	go acceptAndClose(netLn)
	go func() {
		if err := srv.Serve(rpcLn); !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("rpc server: %w", err)
		}
	}()
	log.Info().Str("rpc_addr", rpcLn.Addr().String()).Str("network_addr", netLn.Addr().String()).
		Str("sync_delay", k.SyncDelay.String()).Msg("listening")

	ctx, stopProducing := context.WithCancel(context.Background())
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		if err := n.produce(ctx); err != nil {
			errs <- err
		}
	}()
	// Production ends (its last heights recorded) before the journal closes.
	defer func() { stopProducing(); <-produced }()

	var stopAt <-chan time.Time
	for {
		select {
		case err := <-errs:
			return err
		case s := <-sigs:
			switch {
			case s == syscall.SIGHUP:
				n.onSIGHUP()
			case stopAt != nil:
				log.Info().Str("signal", s.String()).Msg("already shutting down")
			default:
				log.Info().Str("signal", s.String()).Str("shutdown_delay", k.ShutdownDelay.String()).Msg("shutting down")
				stopAt = time.After(k.ShutdownDelay)
			}
		case <-stopAt:
			stopProducing()
			<-produced
			select {
			case err := <-errs:
				return err
			default:
			}
			log.Info().Msg("stopped")
			return nil
		}
	}
}

// newNode reads config.json, the keys, genesis.json and opens the journal.
func newNode(home, bootNodes string, k knobs, log zerolog.Logger) (*node, error) {
	n := &node{log: log, home: home, knobs: k, started: time.Now()}
	cfg, err := readConfig(home)
	if err != nil {
		return nil, err
	}
	if bootNodes != "" {
		cfg.BootNodes = bootNodes
	}
	n.cfg = cfg
	if n.nodeKey, err = readKey(cfg.NodeKey); err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	g, err := readGenesis(cfg.GenesisFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		g.ChainID = "localnet"
	case err != nil:
		return nil, err
	}
	n.chainID = g.ChainID
	for _, v := range g.Validators {
		n.validators = append(n.validators, v.AccountID)
	}
	n.chain = chain{genesis: n.started, interval: k.BlockInterval}
	if k.Genesis != nil {
		n.chain.genesis = *k.Genesis
	} else if !g.GenesisTime.IsZero() {
		n.chain.genesis = g.GenesisTime
	}
	log.Info().Str("version", k.Version).Str("home", home).Str("chain_id", n.chainID).
		Time("genesis", n.chain.genesis).Str("block_interval", k.BlockInterval.String()).
		Str("boot_nodes", cfg.BootNodes).Msg("starting")

	vk, err := readKey(cfg.ValidatorKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info().Str("path", cfg.ValidatorKey).Msg("no validator key: running as a non-validator")
	case err != nil:
		return nil, fmt.Errorf("validator key: %w", err)
	default:
		n.setValidator(vk)
		log.Info().Str("account_id", vk.AccountID).Str("public_key", vk.PublicKey).Msg("validator key loaded")
	}
	if k.Journal != "" {
		if n.journal, err = os.OpenFile(k.Journal, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("STANDIN_JOURNAL: %w", err)
		}
	}
	return n, nil
}

// onSIGHUP models neard's SIGHUP handling (see the package doc). Each
// outcome is logged after it took effect.
func (n *node) onSIGHUP() {
	n.log.Info().Msg("SIGHUP received")
	switch {
	case n.knobs.IgnoreSIGHUP:
		n.log.Info().Str("reason", "STANDIN_SIGHUP=ignore").Msg("SIGHUP ignored")
		return
	case !reloadsKeyOnSIGHUP(n.knobs.Version):
		n.log.Info().Str("version", n.knobs.Version).Msg("SIGHUP reloads only the log config in this version")
		return
	}
	cfg, err := readConfig(n.home)
	if err != nil {
		n.log.Error().Err(err).Msg("config reload failed: keeping the current key")
		return
	}
	k, err := readKey(cfg.ValidatorKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if v := n.validator(); v != nil {
			n.log.Warn().Str("account_id", v.AccountID).Str("path", cfg.ValidatorKey).
				Msg("validator key file missing: keeping the loaded key")
		} else {
			n.log.Info().Str("path", cfg.ValidatorKey).Msg("validator key file missing: still not a validator")
		}
	case err != nil:
		n.log.Error().Err(err).Msg("validator key invalid: keeping the current key")
	default:
		n.setValidator(k)
		n.log.Info().Str("account_id", k.AccountID).Str("public_key", k.PublicKey).
			Int64("from_height", n.validator().from).Msg("validator key reloaded")
	}
}

// acceptAndClose accepts connections on network.addr and closes them at
// once, until the listener is closed.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		_ = c.Close() // nothing is spoken on this port
	}
}
