package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/supervisor"
)

// watchdog tells systemd we are ready and feeds its watchdog. While the
// replica holds a session it is fed only after successful renews, so a
// frozen or cut-off leader is killed by systemd (WatchdogSec below the TTL).
type watchdog struct {
	log       zerolog.Logger
	lastRenew atomic.Int64 // unix nanoseconds
}

func newWatchdog(log zerolog.Logger) *watchdog { return &watchdog{log: log} }

func (w *watchdog) renewed() { w.lastRenew.Store(time.Now().UnixNano()) }

func (w *watchdog) run(ctx context.Context, sup *supervisor.Supervisor) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		w.log.Warn().Err(err).Msg("systemd notify failed")
	} else if ok {
		w.log.Info().Msg("told systemd we are ready")
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	tick := time.NewTicker(interval / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return
		case <-tick.C:
			st := sup.State()
			holds := st == supervisor.Voting || st == supervisor.Validating
			if holds && time.Since(time.Unix(0, w.lastRenew.Load())) > interval {
				continue // no renew lately: let systemd act
			}
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}
