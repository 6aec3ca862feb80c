package replica

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/election"
)

// watchdog tells systemd we are ready and feeds its watchdog. While the
// replica holds a session it is fed only while the local lease deadline is
// further away than WatchdogSec, so systemd kills a frozen valguard (and,
// with KillMode=control-group, its node) before that deadline, and hence
// before Consul can expire the session. All times are read on the
// monotonic clock (the deadline carries it).
type watchdog struct {
	log      zerolog.Logger
	interval time.Duration            // WatchdogSec; 0 when systemd asked for none
	lease    func() (time.Time, bool) // the leader's local lease deadline
}

func newWatchdog(log zerolog.Logger, interval time.Duration, lease func() (time.Time, bool)) *watchdog {
	return &watchdog{log: log, interval: interval, lease: lease}
}

func notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// systemdWatchdog reports whether valguard runs as a systemd service and
// the watchdog interval systemd set (0 if none). A service has
// $NOTIFY_SOCKET (Type=notify), or $INVOCATION_ID with systemd (pid 1) as
// its parent.
func systemdWatchdog() (underSystemd bool, interval time.Duration, err error) {
	underSystemd = os.Getenv("NOTIFY_SOCKET") != "" || (os.Getenv("INVOCATION_ID") != "" && os.Getppid() == 1)
	interval, err = daemon.SdWatchdogEnabled(false)
	return underSystemd, interval, err
}

// checkWatchdog refuses a key-file replica under systemd whose watchdog
// cannot stop a frozen valguard in time: the watchdog is the only cover
// for a supervisor frozen while its node signs. It must fire before the
// local lease deadline, and be fed between two renews:
// WatchdogSec + renew interval < TTL − stop margin.
func checkWatchdog(underSystemd bool, interval, ttl, renew, margin time.Duration) error {
	if !underSystemd {
		return nil
	}
	limit := ttl - margin - renew
	if interval == 0 {
		return fmt.Errorf("valguard runs under systemd without a watchdog: set WatchdogSec= in its unit below %s "+
			"(session TTL %s − stop margin %s − renew interval %s); it is what stops a frozen valguard whose node still signs",
			limit.Round(time.Millisecond), ttl, margin, renew.Round(time.Millisecond))
	}
	if interval >= limit {
		return fmt.Errorf("WatchdogSec=%s is too long: it must be below %s (session TTL %s − stop margin %s − renew interval %s) "+
			"so that systemd stops a frozen valguard before its lease can expire in Consul; lower WatchdogSec or raise --session-ttl",
			interval, limit.Round(time.Millisecond), ttl, margin, renew.Round(time.Millisecond))
	}
	return nil
}

// checkSystemdWatchdog reads systemd's watchdog settings and checks them
// against the election's timing (checkWatchdog); it returns WatchdogSec.
func checkSystemdWatchdog(ec election.Config) (time.Duration, error) {
	underSystemd, interval, err := systemdWatchdog()
	if err != nil {
		return 0, fmt.Errorf("systemd watchdog settings: %w", err)
	}
	return interval, checkWatchdog(underSystemd, interval, ec.TTL, ec.RenewInterval, ec.StopMargin)
}

// feed reports whether the watchdog may be fed now.
func (w *watchdog) feed() bool {
	deadline, held := w.lease()
	return !held || time.Until(deadline) > w.interval
}

func (w *watchdog) run(ctx context.Context) {
	if err := notify(daemon.SdNotifyReady); err != nil {
		w.log.Warn().Err(err).Msg("systemd notify failed")
	}
	if w.interval == 0 {
		return
	}
	tick := time.NewTicker(w.interval / 4)
	defer tick.Stop()
	starving := false
	for {
		select {
		case <-ctx.Done():
			_ = notify(daemon.SdNotifyStopping)
			return
		case <-tick.C:
			if !w.feed() {
				if !starving {
					w.log.Error().Dur("watchdog", w.interval).Msg("lease deadline closer than the watchdog timeout: no longer feeding it")
					starving = true
				}
				continue
			}
			starving = false
			if err := notify(daemon.SdNotifyWatchdog); err != nil {
				w.log.Warn().Err(err).Msg("systemd watchdog notify failed")
			}
		}
	}
}
