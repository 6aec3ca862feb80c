package chaos

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// Replica is one valguard and its node, in namespace NS.
type Replica struct {
	ID       string
	Index    int
	NS       string
	Home     string
	Log      string
	Metrics  string // host:port of /metrics
	RPC      string // its node's RPC
	Proxy    *Proxy // its Consul path
	Watchdog *Watchdog

	rig     *Rig
	args    []string
	env     []string // beside the watchdog's, for valguard and its node
	mu      sync.Mutex
	proc    *localnet.Process
	held    bool // kept down on purpose by a fault
	stopped bool // SIGSTOPped
	runs    int
}

// HomeRPC is the RPC address of a replica home after the move to its
// namespace.
func (r *Rig) homeRPC(i int) string {
	u, _ := url.Parse(r.Chain.RPC(r.Chain.ReplicaHomes[i]))
	return "http://" + r.Net.ChainIP(10+i) + ":" + u.Port()
}

func (r *Rig) addReplica(ctx context.Context, i int) error {
	id := "r" + strconv.Itoa(i)
	ns, err := r.Net.AddHost(ctx, id, 10+i, true, true)
	if err != nil {
		return err
	}
	var home string
	if r.cfg.Mode == ModeNEAR {
		home = filepath.Join(r.cfg.Dir, "near", id)
		if err := os.MkdirAll(home, 0o700); err != nil {
			return err
		}
		if err := r.Net.Mount(ctx, home, homeSize); err != nil {
			return err
		}
	} else {
		home = r.Chain.ReplicaHomes[i]
		// The home moves onto a small tmpfs of its own (the disk-full fault).
		tmp := home + ".orig"
		if err := os.Rename(home, tmp); err != nil {
			return err
		}
		if err := r.Net.Mount(ctx, home, homeSize); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, "cp", "-a", tmp+"/.", home+"/").CombinedOutput(); err != nil {
			return fmt.Errorf("copy home: %w: %s", err, out)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	targets := r.Consul.Addrs()
	targets = append(targets[i%len(targets):], targets[:i%len(targets)]...)
	px, err := NewProxy(r.Net.ConsulIP(1)+":0", targets)
	if err != nil {
		return err
	}
	rep := &Replica{
		ID: id, Index: i, NS: ns, Home: home, rig: r, Proxy: px,
		Log:     filepath.Join(r.cfg.Dir, "logs", "valguard-"+id+".log"),
		Metrics: r.Net.ChainIP(10+i) + ":2233",
	}
	rep.Watchdog, err = NewWatchdog(filepath.Join(os.TempDir(), r.Net.Prefix+"-"+id+".notify"), watchdogInterval, rep.watchdogKill)
	if err != nil {
		return err
	}
	rep.args = []string{"run", "--replica-id", id, "--metrics-addr", rep.Metrics, "--log-format", "json",
		"--node-home", home, "--validator-key", r.validatorKey,
		"--consul-url", "http://" + px.Addr(), "--session-ttl", sessionTTL.String(), "--stop-timeout", "10s"}
	if r.cfg.Mode == ModeNEAR {
		if err := r.nearReplica(ctx, rep); err != nil {
			return err
		}
	} else {
		rep.RPC = r.homeRPC(i)
		rep.args = append(rep.args, "--node-binary", r.cfg.CometBFT)
	}
	switch r.cfg.Mode {
	case ModeSigner:
		rep.args = append(rep.args, "--sign-mode", "signer", "--signer-depose-after", deposeAfter.String())
	case ModeAny:
		rep.args = append(rep.args, "--sign-mode", "signer", "--signers", "any")
	}
	r.Replicas = append(r.Replicas, rep)
	return nil
}

// Start runs valguard (again) in the replica's namespace, under its
// watchdog socket.
func (rep *Replica) Start() error {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	rep.held = false
	return rep.startLocked()
}

func (rep *Replica) startLocked() error {
	if rep.proc != nil && !rep.proc.Exited() {
		return nil
	}
	p, err := localnet.StartProcess(rep.rig.ctx, rep.Log, append(rep.Watchdog.Env(), rep.env...), "nsenter",
		append([]string{"--net=/run/netns/" + rep.NS, "--", rep.rig.cfg.Valguard}, rep.args...)...)
	if err != nil {
		return err
	}
	rep.proc, rep.stopped = p, false
	rep.runs++
	return nil
}

// Running reports whether this replica's valguard runs.
func (rep *Replica) Running() bool {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return rep.proc != nil && !rep.proc.Exited()
}

// PID is valguard's pid, 0 when it does not run.
func (rep *Replica) PID() int {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.proc == nil || rep.proc.Exited() {
		return 0
	}
	return rep.proc.PID
}

// Signal sends sig to valguard alone (its node must react to its
// supervisor's fate by itself).
func (rep *Replica) Signal(sig syscall.Signal) {
	if pid := rep.PID(); pid > 0 {
		_ = syscall.Kill(pid, sig)
		rep.mu.Lock()
		switch sig {
		case syscall.SIGSTOP:
			rep.stopped = true
		case syscall.SIGCONT:
			rep.stopped = false
		}
		rep.mu.Unlock()
	}
}

// Hold keeps the replica down: Ensure does not restart it.
func (rep *Replica) Hold(on bool) {
	rep.mu.Lock()
	rep.held = on
	rep.mu.Unlock()
}

// Ensure restarts valguard if it exited and is not held down, and says
// whether it did.
func (rep *Replica) Ensure() (bool, error) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.held || (rep.proc != nil && !rep.proc.Exited()) {
		return false, nil
	}
	return true, rep.startLocked()
}

// watchdogKill is the watchdog's action: every process of the unit (the
// namespace's: valguard, its node, its guard) gets SIGKILL; the unit is
// restarted a second later, as systemd's Restart=always would.
func (rep *Replica) watchdogKill() {
	KillNS(rep.NS)
	go func() {
		time.Sleep(time.Second)
		_, _ = rep.Ensure()
	}()
}

// State is the replica's valguard_state, "" when it does not answer.
func (rep *Replica) State() string { return localnet.ValguardState(rep.Metrics) }

// NodePID is the pid of the last node valguard started.
func (rep *Replica) NodePID() int { return localnet.LastNodePID(rep.Log) }
