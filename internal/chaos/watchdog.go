package chaos

import (
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Watchdog is a test stand-in for systemd's watchdog (these machines have
// no systemd as PID 1): it listens on a unixgram socket that speaks the
// sd_notify protocol ($NOTIFY_SOCKET) and, once the unit has said
// READY=1, calls kill (KillMode=control-group: the unit's every process)
// when Interval passes without a WATCHDOG=1, as WatchdogSec= with
// WatchdogSignal=SIGKILL does. A unit that is killed is watched again
// after its next READY=1.
type Watchdog struct {
	Path     string
	Interval time.Duration

	conn  *net.UnixConn
	kill  func()
	mu    sync.Mutex
	last  time.Time // last READY=1 or WATCHDOG=1; zero until READY=1
	off   bool      // disarmed: pings are recorded, nobody is killed
	kills []time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

// NewWatchdog listens on path.
func NewWatchdog(path string, interval time.Duration, kill func()) (*Watchdog, error) {
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	w := &Watchdog{Path: path, Interval: interval, conn: conn, kill: kill, done: make(chan struct{})}
	w.wg.Add(2)
	go w.read()
	go w.watch()
	return w, nil
}

// Env is what a unit's process gets: NOTIFY_SOCKET and WATCHDOG_USEC.
func (w *Watchdog) Env() []string {
	return []string{"NOTIFY_SOCKET=" + w.Path, "WATCHDOG_USEC=" + itoa64(w.Interval.Microseconds())}
}

// Arm makes the watchdog kill a unit that stops pinging (the default);
// Disarm only records.
func (w *Watchdog) Arm(on bool) {
	w.mu.Lock()
	w.off = !on
	w.mu.Unlock()
}

// Kills returns when the watchdog killed the unit.
func (w *Watchdog) Kills() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.kills...)
}

// Close stops the watchdog.
func (w *Watchdog) Close() {
	select {
	case <-w.done:
		return
	default:
	}
	close(w.done)
	w.conn.Close()
	w.wg.Wait()
	_ = os.Remove(w.Path)
}

func (w *Watchdog) read() {
	defer w.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := w.conn.Read(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		w.mu.Lock()
		for _, l := range strings.Split(msg, "\n") {
			switch l {
			case "READY=1", "WATCHDOG=1":
				if l == "READY=1" || !w.last.IsZero() {
					w.last = time.Now()
				}
			case "STOPPING=1":
				w.last = time.Time{}
			}
		}
		w.mu.Unlock()
	}
}

func (w *Watchdog) watch() {
	defer w.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		w.mu.Lock()
		fire := !w.off && !w.last.IsZero() && time.Since(w.last) > w.Interval
		if fire {
			w.last = time.Time{}
			w.kills = append(w.kills, time.Now())
		}
		w.mu.Unlock()
		if fire {
			w.kill()
		}
	}
}

func itoa64(v int64) string {
	var b [20]byte
	i := len(b)
	if v == 0 {
		return "0"
	}
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
