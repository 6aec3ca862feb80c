package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Kind is one kind of fault: how to inject it and undo it, and the bound
// on the time from its injection to the validator's first new signature.
type Kind struct {
	Name string
	// What the fault does, for the report.
	What string
	// Modes the kind applies to.
	Modes []string
	// Failover: the leader is gone or cut off, so a standby must take
	// over (or the leader come back) within the bound; a fault over its
	// bound counts as a failover that did not happen.
	Failover bool
	// Standby: the fault's target is a standby, not the leader.
	Standby bool
	// Bound on injection → first new signature, by mode.
	Bound func(mode string) time.Duration
	// Run injects the fault and undoes it (it blocks for the fault's
	// duration); the drill then waits for recovery.
	Run func(ctx context.Context, d *Drill, f *Fault) error
}

// crashBound is what a crash of the leader may cost: Consul expires the
// session between TTL and 2×TTL after the last renew, the lock-delay runs,
// the new leader's node starts (restart mode) and its first signature
// lands two heights on. The signer mode's deposition usually comes first.
func crashBound(mode string) time.Duration {
	return 2*sessionTTL + lockDelay(mode) + 10*time.Second
}

func fixed(d time.Duration) func(string) time.Duration {
	return func(string) time.Duration { return d }
}

func plus(b func(string) time.Duration, d time.Duration) func(string) time.Duration {
	return func(m string) time.Duration { return b(m) + d }
}

var (
	// all: every mode; cometbft: the faults that need chain peers or a
	// node database, which the neard stand-in has not.
	all      = []string{ModeRestart, ModeSigner, ModeNEAR, ModeAny}
	cometbft = []string{ModeRestart, ModeSigner, ModeAny}
	// led: the modes with a lock holder to hand over from (not --signers
	// any, where every replica signs).
	led = []string{ModeRestart, ModeSigner, ModeNEAR}
)

// stopFor is how long a frozen valguard stays frozen: longer than
// 2×TTL + lock-delay, so Consul has expired its session and the lock-delay
// has run before it thaws.
func stopFor(mode string) time.Duration { return 2*sessionTTL + lockDelay(mode) + time.Second }

// partitionFor is how long a partition lasts.
const partitionFor = 25 * time.Second

// Kinds is every fault kind the drill knows, in report order.
var Kinds = []Kind{
	{Name: "kill-leader-valguard", What: "SIGKILL of the leader's valguard (its node dies with it), restarted at once",
		Modes: all, Failover: true, Bound: crashBound,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			f.Target.Signal(syscall.SIGKILL)
			return nil
		}},
	{Name: "kill-leader-node", What: "SIGKILL of the leader's node process",
		Modes: all, Failover: true, Bound: crashBound,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			pid := f.Target.NodePID()
			if pid == 0 {
				return fmt.Errorf("leader %s has no node pid in its log", f.Target.ID)
			}
			return syscall.Kill(pid, syscall.SIGKILL)
		}},
	{Name: "kill-standby", What: "SIGKILL of a standby's valguard, restarted at once",
		Modes: all, Bound: fixed(15 * time.Second), Standby: true,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			f.Target.Signal(syscall.SIGKILL)
			return nil
		}},
	{Name: "consul-leader-killed", What: "the Consul Raft leader SIGKILLed, restarted 10 s later",
		Modes: all, Bound: fixed(20 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			j, err := d.rig.Consul.Leader(ctx)
			if err != nil {
				return err
			}
			f.Note = fmt.Sprintf("server %d", j)
			d.rig.Consul.Kill(j)
			if err := sleep(ctx, 10*time.Second); err != nil {
				return err
			}
			return d.rig.Consul.Start(d.rig.ctx, j)
		}},
	{Name: "lock-key-deleted", What: "the lock key deleted in Consul under the leader",
		Modes: led, Failover: true, Bound: plus(fixed(15*time.Second), sessionTTL),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			return d.deleteLockKey(ctx)
		}},
	{Name: "sign-record-deleted", What: "the watermark (the leaderless policy's sign record) deleted in Consul while replicas sign",
		// The leader policy's leader writes it back from memory; a
		// leaderless replica stops and its next grant raises the record
		// above the chain (the heights up to the best height plus
		// --max-lag are lost).
		Modes: []string{ModeSigner, ModeAny}, Bound: fixed(30 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			return d.deleteRecord(ctx)
		}},
	{Name: "handover", What: "valguard handover (graceful, to any synced standby)",
		Modes: led, Failover: true, Bound: fixed(15 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			return d.valguardJob(ctx, "handover", "--timeout", "60s")
		}},
	{Name: "drain-leader", What: "valguard drain of the leader (hands over), undrained once done",
		Modes: all, Failover: true, Bound: fixed(15 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			err := d.valguardJob(ctx, "drain", "--timeout", "60s", "--reason", "chaos", f.Target.ID)
			if uerr := d.valguardJob(ctx, "undrain", f.Target.ID); err == nil {
				err = uerr
			}
			return err
		}},
	{Name: "handover-under-latency", What: "valguard handover while every Consul path has 200 ms added latency",
		Modes: led, Failover: true, Bound: fixed(20 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			d.allProxies(func(p *Proxy) { p.Degrade(200*time.Millisecond, 0) })
			defer d.allProxies((*Proxy).Pass)
			return d.valguardJob(ctx, "handover", "--timeout", "60s")
		}},
	{Name: "sigstop-bare", What: "SIGSTOP of the leader's valguard for 2×TTL + lock-delay + 1 s, then SIGCONT, no watchdog",
		// In the key-file mode a frozen valguard's node keeps signing:
		// the documented residual risk, covered by the watchdog below.
		Modes: []string{ModeSigner, ModeAny}, Failover: true, Bound: crashBound,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			f.Target.Watchdog.Arm(false)
			defer f.Target.Watchdog.Arm(true)
			f.Target.Signal(syscall.SIGSTOP)
			err := sleep(ctx, stopFor(d.cfg.Mode))
			f.Target.Signal(syscall.SIGCONT)
			return err
		}},
	{Name: "sigstop-watchdog", What: "SIGSTOP of the leader's valguard as above, under the test watchdog (WatchdogSec 3 s, SIGKILL of the unit, restart after 1 s)",
		Modes: all, Failover: true, Bound: crashBound,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			f.Target.Signal(syscall.SIGSTOP)
			err := sleep(ctx, stopFor(d.cfg.Mode))
			f.Target.Signal(syscall.SIGCONT)
			if k := f.Target.Watchdog.Kills(); len(k) > 0 && k[len(k)-1].After(f.At) {
				f.Note = fmt.Sprintf("watchdog killed the unit after %.1fs", k[len(k)-1].Sub(f.At).Seconds())
			} else {
				f.Note = "watchdog did not fire"
			}
			return err
		}},
	{Name: "partition-leader-consul", What: "the leader cut off from Consul (its path blackholed) for 25 s; chain peers kept",
		Modes: all, Failover: true, Bound: crashBound,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			f.Target.Proxy.Blackhole()
			defer f.Target.Proxy.Pass()
			return sleep(ctx, partitionFor)
		}},
	{Name: "partition-leader-chain", What: "the leader cut off from its chain peers (chain veth down) for 25 s; Consul kept",
		Modes: cometbft, Failover: true, Bound: plus(fixed(partitionFor), 20*time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			if err := d.rig.Net.SetLink(ctx, f.Target.ID, "c", false); err != nil {
				return err
			}
			err := sleep(ctx, partitionFor)
			if uerr := d.rig.Net.SetLink(context.WithoutCancel(ctx), f.Target.ID, "c", true); err == nil {
				err = uerr
			}
			return err
		}},
	{Name: "partition-standby-then-leader-crash", What: "a standby cut off from its chain peers, the leader's valguard SIGKILLed 5 s later, the standby's link back 20 s after that",
		Modes: cometbft, Failover: true, Bound: plus(crashBound, 10*time.Second), Standby: true,
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			leader := d.leader(ctx)
			if err := d.rig.Net.SetLink(ctx, f.Target.ID, "c", false); err != nil {
				return err
			}
			defer func() { _ = d.rig.Net.SetLink(context.WithoutCancel(ctx), f.Target.ID, "c", true) }()
			if err := sleep(ctx, 5*time.Second); err != nil {
				return err
			}
			if leader != nil {
				leader.Signal(syscall.SIGKILL)
			}
			return sleep(ctx, 20*time.Second)
		}},
	{Name: "asymmetric-consul", What: "the leader's Consul path drops answers only (requests still apply) for 25 s",
		// Consul keeps receiving the renewals until the leader stops
		// sending them (its watchdog or its lease deadline, within a
		// TTL), and counts its expiry from the last one received.
		Modes: all, Failover: true, Bound: plus(crashBound, sessionTTL),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			f.Target.Proxy.OneWay()
			defer f.Target.Proxy.Pass()
			return sleep(ctx, partitionFor)
		}},
	{Name: "flapping-consul", What: "the leader's Consul path blackholed and restored every 2 s for 24 s",
		Modes: all, Failover: true, Bound: plus(crashBound, 24*time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			defer f.Target.Proxy.Pass()
			for i := range 12 {
				if i%2 == 0 {
					f.Target.Proxy.Blackhole()
				} else {
					f.Target.Proxy.Pass()
				}
				if err := sleep(ctx, 2*time.Second); err != nil {
					return err
				}
			}
			return nil
		}},
	{Name: "consul-latency", What: "300 ms added on every replica's Consul path, each direction, for 30 s",
		Modes: all, Bound: fixed(15 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			d.allProxies(func(p *Proxy) { p.Degrade(300*time.Millisecond, 0) })
			defer d.allProxies((*Proxy).Pass)
			return sleep(ctx, 30*time.Second)
		}},
	{Name: "consul-loss", What: "20 % segment loss (retransmission delays) on every replica's Consul path for 30 s",
		Modes: all, Bound: fixed(15 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			d.allProxies(func(p *Proxy) { p.Degrade(0, 0.2) })
			defer d.allProxies((*Proxy).Pass)
			return sleep(ctx, 30*time.Second)
		}},
	{Name: "consul-quorum-lost", What: "two of three Consul servers SIGKILLed for 30 s, then restarted",
		Modes: all, Failover: true, Bound: plus(crashBound, 30*time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			a, b := d.rnd.IntN(3), 0
			b = (a + 1 + d.rnd.IntN(2)) % 3
			f.Note = fmt.Sprintf("servers %d and %d", a, b)
			d.rig.Consul.Kill(a)
			d.rig.Consul.Kill(b)
			err := sleep(ctx, 30*time.Second)
			for _, j := range []int{a, b} {
				if serr := d.rig.Consul.Start(d.rig.ctx, j); err == nil {
					err = serr
				}
			}
			return err
		}},
	{Name: "consul-server-wiped", What: "a Consul follower SIGKILLed, its data directory wiped, restarted",
		Modes: all, Bound: fixed(20 * time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			l, err := d.rig.Consul.Leader(ctx)
			if err != nil {
				return err
			}
			j := (l + 1 + d.rnd.IntN(2)) % 3
			f.Note = fmt.Sprintf("server %d", j)
			d.rig.Consul.Kill(j)
			if err := d.rig.Consul.Wipe(j); err != nil {
				return err
			}
			return d.rig.Consul.Start(d.rig.ctx, j)
		}},
	{Name: "disk-full-leader", What: "the leader's node home (a 256 MB tmpfs) filled for 20 s, then freed",
		Modes: cometbft, Failover: true, Bound: plus(crashBound, 20*time.Second),
		Run: func(ctx context.Context, d *Drill, f *Fault) error {
			path := filepath.Join(f.Target.Home, "chaos-fill")
			if err := fill(path); err != nil {
				return err
			}
			defer os.Remove(path)
			return sleep(ctx, 20*time.Second)
		}},
}

// KindByName finds a kind.
func KindByName(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// fill allocates every free byte of the file system holding path.
func fill(path string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	free := int64(st.Bavail) * st.Bsize
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, free); err != nil {
		// Fall back to what fits.
		buf := make([]byte, 1<<20)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
	}
	return nil
}

func (d *Drill) allProxies(fn func(*Proxy)) {
	for _, r := range d.rig.Replicas {
		fn(r.Proxy)
	}
}

// valguardJob runs an operator job (valguard handover, drain, undrain)
// from the root namespace against a running Consul server.
func (d *Drill) valguardJob(ctx context.Context, job string, args ...string) error {
	full := []string{job, "--validator-key", d.rig.validatorKey, "--consul-url", "http://" + d.rig.Consul.AnyAddr()}
	if d.rig.RPC != "" && job != "undrain" {
		full = append(full, "--node-rpc", d.rig.RPC) // the chain seen from outside the hand-over
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.rig.cfg.Valguard, full...).CombinedOutput()
	d.logf("valguard %s: %s", strings.Join(full[:1], " "), lastLines(string(out), 3))
	if err != nil {
		return fmt.Errorf("valguard %s: %w: %s", job, err, lastLines(string(out), 10))
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// deleteLockKey deletes valguard/<id>/leader, found by listing the keys.
// deleteRecord deletes the validator's watermark key (valguard/<id>/watermark).
func (d *Drill) deleteRecord(ctx context.Context) error {
	return d.deleteKey(ctx, "/watermark")
}

func (d *Drill) deleteLockKey(ctx context.Context) error {
	return d.deleteKey(ctx, "/leader")
}

// deleteKey deletes the validator's key valguard/<id><suffix>.
func (d *Drill) deleteKey(ctx context.Context, suffix string) error {
	base := "http://" + d.rig.Consul.AnyAddr() + "/v1/kv/"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"valguard/?keys", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var keys []string
	err = json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if strings.Count(k, "/") == 2 && strings.HasSuffix(k, suffix) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, base+k, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("delete %s: %s", k, resp.Status)
			}
			return nil
		}
	}
	return fmt.Errorf("no valguard/<validator>%s key among %v", suffix, keys)
}
