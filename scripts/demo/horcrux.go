package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valguard/valguard/internal/freeport"
	"github.com/valguard/valguard/internal/localnet"
)

// The Horcrux comparison column of the bench: Horcrux on a localnet of its
// own (the same 4 validators and powers), its HA validator's key split into
// hxCosigners shards of which hxThreshold sign, every cosigner dialing both
// sentries (full nodes with priv_validator_laddr).
const (
	horcruxVersion = "v3.3.2"
	horcruxColumn  = "Horcrux " + horcruxVersion + " (3 cosigners, threshold 2, 2 sentries)"
	hxCosigners    = 3
	hxThreshold    = 2
	// hxTimeout is --raft-timeout and --grpc-timeout (Horcrux's defaults).
	hxTimeout = "500ms"
	// hxHint says how to get the binary when the bench finds none.
	hxHint = "horcrux not found in the cache or on $PATH: the Horcrux column is left out (WITH_HORCRUX=1 bash scripts/install-deps.sh builds " + horcruxVersion + " into the cache)"
)

// horcruxBinary is $VALGUARD_HORCRUX, horcrux in the cache
// (${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}/bin, where
// install-deps.sh builds it) or on $PATH; "" when there is none.
func horcruxBinary() string {
	executable := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0
	}
	if p := os.Getenv("VALGUARD_HORCRUX"); p != "" {
		if executable(p) {
			return p
		}
		return ""
	}
	cache := os.Getenv("VALGUARD_CACHE")
	if cache == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			cache = filepath.Join(x, "valguard")
		} else if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "valguard")
		}
	}
	if cache != "" {
		if p := filepath.Join(cache, "bin", "horcrux"); executable(p) {
			return p
		}
	}
	if p, err := exec.LookPath("horcrux"); err == nil {
		return p
	}
	return ""
}

// hxCluster is the Horcrux set-up: its localnet (env.net, env.rpc: its
// validator 0), sentries and cosigners.
type hxCluster struct {
	env       *demoEnv
	bin       string
	nodes     []*localnet.Process // validators 0-2
	sentries  []*hxProc
	cosigners []*hxProc // cosigners[i] has shard ID i+1
	// turn picks the next sentry to kill (they alternate).
	turn int
}

// hxProc is a cosigner (home: its Horcrux home) or a sentry (home: its
// CometBFT home) and its process.
type hxProc struct {
	id      int
	home    string
	logPath string
	p       *localnet.Process
}

// freePort is a loopback port held for this process (freeport.Take).
func freePort() (int, error) { return freeport.Take() }

// setPrivValLaddr sets priv_validator_laddr in a CometBFT home's config.toml.
func setPrivValLaddr(home, laddr string) error {
	path := filepath.Join(home, "config", "config.toml")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`(?m)^priv_validator_laddr = ".*"$`)
	if n := len(re.FindAllIndex(data, -1)); n != 1 {
		return fmt.Errorf("%s: %d priv_validator_laddr lines, want 1", path, n)
	}
	return os.WriteFile(path, re.ReplaceAll(data, []byte(`priv_validator_laddr = "`+laddr+`"`)), 0o644)
}

// setUpHorcrux builds and starts the Horcrux set-up under base.dir/horcrux
// and waits until its validator signs. The cluster is returned also on
// error, for tearDown.
func setUpHorcrux(ctx context.Context, base *demoEnv, bin string) (*hxCluster, error) {
	dir := filepath.Join(base.dir, "horcrux")
	hx := &hxCluster{bin: bin, env: &demoEnv{dir: dir, wiring: base.wiring, start: base.start}}
	e := hx.env
	var err error
	if e.net, err = localnet.Create(ctx, localnet.Config{Dir: filepath.Join(dir, "chain"), Binary: base.net.Binary, Wiring: base.wiring}); err != nil {
		return hx, err
	}
	var nodeAddrs []string
	for i, home := range e.net.ReplicaHomes {
		port, err := freePort()
		if err != nil {
			return hx, err
		}
		laddr := fmt.Sprintf("tcp://127.0.0.1:%d", port)
		if err := setPrivValLaddr(home, laddr); err != nil {
			return hx, err
		}
		nodeAddrs = append(nodeAddrs, laddr)
		hx.sentries = append(hx.sentries, &hxProc{id: i, home: home, logPath: filepath.Join(dir, "logs", fmt.Sprintf("sentry%d.log", i))})
	}
	shards := filepath.Join(dir, "shards")
	if err := hx.run(ctx, "create-ed25519-shards", "--chain-id", e.net.ChainID, "--key-file", e.net.ValidatorKey,
		"--threshold", strconv.Itoa(hxThreshold), "--shards", strconv.Itoa(hxCosigners), "--out", shards); err != nil {
		return hx, err
	}
	if err := hx.run(ctx, "create-ecies-shards", "--shards", strconv.Itoa(hxCosigners), "--out", shards); err != nil {
		return hx, err
	}
	var peers []string
	for i := 0; i < hxCosigners; i++ {
		port, err := freePort()
		if err != nil {
			return hx, err
		}
		peers = append(peers, fmt.Sprintf("tcp://127.0.0.1:%d", port))
	}
	for i := 0; i < hxCosigners; i++ {
		c := &hxProc{id: i + 1, home: filepath.Join(dir, fmt.Sprintf("cosigner%d", i+1)), logPath: filepath.Join(dir, "logs", fmt.Sprintf("horcrux-%d.log", i+1))}
		if err := os.MkdirAll(c.home, 0o700); err != nil {
			return hx, err
		}
		for _, f := range []string{e.net.ChainID + "_shard.json", "ecies_keys.json"} {
			data, err := os.ReadFile(filepath.Join(shards, fmt.Sprintf("cosigner_%d", c.id), f))
			if err != nil {
				return hx, err
			}
			if err := os.WriteFile(filepath.Join(c.home, f), data, 0o600); err != nil {
				return hx, err
			}
		}
		args := []string{"config", "init", "--home", c.home, "--threshold", strconv.Itoa(hxThreshold),
			"--raft-timeout", hxTimeout, "--grpc-timeout", hxTimeout}
		for _, n := range nodeAddrs {
			args = append(args, "--node", n)
		}
		for _, p := range peers {
			args = append(args, "--cosigner", p)
		}
		if err := hx.run(ctx, args...); err != nil {
			return hx, err
		}
		hx.cosigners = append(hx.cosigners, c)
	}
	if hx.nodes, err = e.net.StartValidators(ctx, filepath.Join(dir, "logs")); err != nil {
		return hx, err
	}
	e.rpc = e.net.RPC(e.net.Homes[0])
	for _, c := range hx.cosigners {
		if err := hx.startCosigner(ctx, c); err != nil {
			return hx, err
		}
	}
	for _, s := range hx.sentries {
		if err := hx.startSentry(ctx, s); err != nil {
			return hx, err
		}
	}
	e.say("Horcrux %s: its own 4-validator localnet (validator 3 %s, power 10 of 40), %d cosigners (threshold %d, raft and gRPC timeouts %s) dialing 2 sentries (logs in %s)",
		horcruxVersion, short(e.net.HAAddress), hxCosigners, hxThreshold, hxTimeout, filepath.Join(dir, "logs"))
	if err := localnet.WaitHeight(ctx, e.rpc, 2); err != nil {
		return hx, err
	}
	h0, _ := localnet.Height(ctx, e.rpc)
	if _, err := e.firstSigned(ctx, h0, 2*time.Minute); err != nil {
		return hx, err
	}
	return hx, nil
}

// run runs a short horcrux command.
func (hx *hxCluster) run(ctx context.Context, args ...string) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, hx.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("horcrux %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (hx *hxCluster) startCosigner(ctx context.Context, c *hxProc) error {
	// The process was reaped: a pid file left by a kill is stale.
	_ = os.Remove(filepath.Join(c.home, "horcrux.pid"))
	p, err := localnet.StartProcess(ctx, c.logPath, nil, hx.bin, "start", "--home", c.home)
	c.p = p
	return err
}

func (hx *hxCluster) startSentry(ctx context.Context, s *hxProc) error {
	p, err := hx.env.net.StartNode(ctx, s.home, s.logPath)
	s.p = p
	return err
}

func (hx *hxCluster) tearDown() {
	for _, c := range hx.cosigners {
		if c.p != nil {
			_ = c.p.Stop(5 * time.Second)
		}
	}
	for _, s := range hx.sentries {
		if s.p != nil {
			_ = s.p.Stop(5 * time.Second)
		}
	}
	for _, n := range hx.nodes {
		_ = n.Stop(5 * time.Second)
	}
}

var hxLeaderLine = regexp.MustCompile(`(?:Current leader|New leader): (\d+)`)

// leader asks a running cosigner (via from, if set and running) for the
// raft leader's shard ID.
func (hx *hxCluster) leader(ctx context.Context, via *hxProc) (int, error) {
	if via == nil || via.p == nil || via.p.Exited() {
		for _, c := range hx.cosigners {
			if c.p != nil && !c.p.Exited() {
				via = c
				break
			}
		}
	}
	if via == nil {
		return 0, errors.New("no cosigner runs")
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, hx.bin, "leader", "--home", via.home).CombinedOutput()
	if m := hxLeaderLine.FindSubmatch(out); err == nil && m != nil {
		id, _ := strconv.Atoi(string(m[1]))
		if id >= 1 && id <= len(hx.cosigners) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("horcrux leader --home %s: %v: %s", via.home, err, strings.TrimSpace(string(out)))
}

// healthy waits until every cosigner and sentry runs, each cosigner knows a
// leader, every sentry is within a height of validator 0, and the validator
// signs a height after this call.
func (hx *hxCluster) healthy(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		last = nil
		for _, c := range hx.cosigners {
			if _, err := hx.leader(ctx, c); err != nil {
				last = err
				break
			}
		}
		if last == nil {
			h, err := localnet.Height(ctx, hx.env.rpc)
			if err != nil {
				last = err
			}
			for _, s := range hx.sentries {
				if sh, err := localnet.Height(ctx, hx.env.net.RPC(s.home)); err != nil || sh+1 < h {
					last = fmt.Errorf("sentry %d at height %d of %d (%v)", s.id, sh, h, err)
				}
			}
			if last == nil {
				_, err := hx.env.firstSigned(ctx, h, time.Until(deadline))
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("horcrux set-up not healthy within %s: %v", d, last)
}

// afterEvent measures the validator's first signature above the height at
// at, and the heights it missed in the anyWindow heights after it (further
// if the first signature comes later).
func (hx *hxCluster) afterEvent(ctx context.Context, tl *timeline) error {
	e := hx.env
	var err error
	if tl.first, err = e.firstSigned(ctx, tl.killHeight, 2*time.Minute); err != nil {
		return err
	}
	to := max(tl.first.height, tl.killHeight+anyWindow)
	if err := localnet.WaitHeight(ctx, e.rpc, to+1); err != nil {
		return err
	}
	_, missed, err := localnet.Signers(ctx, e.rpc, tl.killHeight+1, to, e.net.HAAddress)
	tl.missed, tl.windowTo = len(missed), to
	return err
}

// leaderKills signals the leading cosigner runs times; after each, it is
// started again and the set-up waited for until healthy.
func (hx *hxCluster) leaderKills(ctx context.Context, kind string, sig syscall.Signal, runs int) ([]timeline, error) {
	var out []timeline
	for i := 0; i < runs; i++ {
		if err := hx.healthy(ctx, 2*time.Minute); err != nil {
			return out, err
		}
		id, err := hx.leader(ctx, nil)
		if err != nil {
			return out, err
		}
		victim := hx.cosigners[id-1]
		tl := timeline{sig: sig, from: strconv.Itoa(id)}
		if tl.killHeight, err = localnet.Height(ctx, hx.env.rpc); err != nil {
			return out, err
		}
		tl.killAt = time.Now()
		if err := victim.p.Cmd.Process.Signal(sig); err != nil {
			return out, err
		}
		if err := hx.afterEvent(ctx, &tl); err != nil {
			return out, err
		}
		select {
		case <-victim.p.Done():
		case <-time.After(30 * time.Second):
			return out, fmt.Errorf("horcrux cosigner %d did not exit after %s", id, signalName(sig))
		}
		newLeader := "?"
		if id, err := hx.leader(ctx, nil); err == nil {
			newLeader = strconv.Itoa(id)
		}
		if err := hx.startCosigner(ctx, victim); err != nil {
			return out, err
		}
		if err := hx.healthy(ctx, 2*time.Minute); err != nil {
			return out, err
		}
		tl.backAt = time.Now()
		hx.env.say("Horcrux %s run %d/%d (leading cosigner %d; cosigner %s led after it): kill→first signature %.2fs (height %d), missed heights %d of %d..%d, healthy again at +%.1fs",
			kind, i+1, runs, id, newLeader, tl.toSign().Seconds(), tl.first.height, tl.missed, tl.killHeight+1, tl.windowTo, tl.backAt.Sub(tl.killAt).Seconds())
		out = append(out, tl)
	}
	return out, nil
}

// sentryKills SIGKILLs one sentry node runs times (alternating), then
// starts it again and waits until the set-up is healthy.
func (hx *hxCluster) sentryKills(ctx context.Context, runs int) ([]timeline, error) {
	var out []timeline
	for i := 0; i < runs; i++ {
		if err := hx.healthy(ctx, 2*time.Minute); err != nil {
			return out, err
		}
		victim := hx.sentries[hx.turn%len(hx.sentries)]
		hx.turn++
		tl := timeline{sig: syscall.SIGKILL, from: "sentry " + strconv.Itoa(victim.id)}
		var err error
		if tl.killHeight, err = localnet.Height(ctx, hx.env.rpc); err != nil {
			return out, err
		}
		tl.killAt = time.Now()
		if err := victim.p.Kill(); err != nil {
			return out, err
		}
		if err := hx.afterEvent(ctx, &tl); err != nil {
			return out, err
		}
		if err := hx.startSentry(ctx, victim); err != nil {
			return out, err
		}
		if err := hx.healthy(ctx, 2*time.Minute); err != nil {
			return out, err
		}
		tl.backAt = time.Now()
		hx.env.say("Horcrux sentry SIGKILL run %d/%d (sentry %d): kill→first signature %.2fs (height %d), missed heights %d of %d..%d, healthy again at +%.1fs",
			i+1, runs, victim.id, tl.toSign().Seconds(), tl.first.height, tl.missed, tl.killHeight+1, tl.windowTo, tl.backAt.Sub(tl.killAt).Seconds())
		out = append(out, tl)
	}
	return out, nil
}

// elections move the raft leader to the next cosigner with horcrux elect
// runs times, each timed from the start of the command.
func (hx *hxCluster) elections(ctx context.Context, runs int) ([]timeline, error) {
	var out []timeline
	for i := 0; i < runs; i++ {
		if err := hx.healthy(ctx, 2*time.Minute); err != nil {
			return out, err
		}
		id, err := hx.leader(ctx, nil)
		if err != nil {
			return out, err
		}
		next := id%len(hx.cosigners) + 1
		tl := timeline{from: strconv.Itoa(id), to: strconv.Itoa(next)}
		if tl.killHeight, err = localnet.Height(ctx, hx.env.rpc); err != nil {
			return out, err
		}
		tl.killAt = time.Now()
		if err := hx.run(ctx, "elect", strconv.Itoa(next), "--home", hx.cosigners[id-1].home); err != nil {
			return out, err
		}
		if err := hx.afterEvent(ctx, &tl); err != nil {
			return out, err
		}
		now := "?"
		if id, err := hx.leader(ctx, nil); err == nil {
			now = strconv.Itoa(id)
		}
		hx.env.say("Horcrux elect %d run %d/%d (from cosigner %d; leader now %s): request→first signature %.2fs (height %d), missed heights %d of %d..%d",
			next, i+1, runs, id, now, tl.toSign().Seconds(), tl.first.height, tl.missed, tl.killHeight+1, tl.windowTo)
		out = append(out, tl)
	}
	return out, nil
}

// sampleIdle samples a process's RSS and CPU over window.
func sampleIdle(pid int, window time.Duration) (idle, error) {
	var out idle
	p := strconv.Itoa(pid)
	cpu := func() (float64, error) {
		data, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+2:])
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) / 100, nil // USER_HZ is 100 on Linux
	}
	c0, err := cpu()
	if err != nil {
		return out, err
	}
	time.Sleep(window)
	c1, err := cpu()
	if err != nil {
		return out, err
	}
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return out, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			out.rssMB = kb / 1024
		}
	}
	out.cpuPct = (c1 - c0) / window.Seconds() * 100
	out.window = window
	return out, nil
}

// hxSignLatencies reads the duration_ms of Horcrux's "Signed" log lines
// (a threshold signature made, logged by the cosigner that ran it: the
// leader) logged in [from, to) from the cosigners' logs.
func hxSignLatencies(paths []string, from, to time.Time) []float64 {
	var out []float64
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			m := hxSignedLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			at, err := time.ParseInLocation("2006-01-02|15:04:05.000", m[1], time.Local)
			if err != nil || at.Before(from.Truncate(time.Millisecond)) || !at.Before(to) {
				continue
			}
			if v, err := strconv.ParseFloat(m[2], 64); err == nil {
				out = append(out, v)
			}
		}
		f.Close()
	}
	return out
}

// hxSignedLine is a "Signed" line with its time and duration_ms (Horcrux
// logs in CometBFT's format, local time).
var hxSignedLine = regexp.MustCompile(`^I\[([^\]]*)\] Signed\s.*\bduration_ms=([0-9.]+)`)

// benchHorcrux sets Horcrux up, measures what the column shows and tears
// it down. On error the result holds what was measured before it.
func benchHorcrux(ctx context.Context, base *demoEnv, bin string, runs int) (res modeResult, err error) {
	res = modeResult{name: hxName, runs: map[string][]timeline{}}
	began := time.Now()
	defer func() { res.took = time.Since(began) }()
	hx, err := setUpHorcrux(ctx, base, bin)
	defer hx.tearDown()
	if err != nil {
		return res, err
	}
	e := hx.env
	if err := hx.healthy(ctx, 2*time.Minute); err != nil {
		return res, err
	}
	id, err := hx.leader(ctx, nil)
	if err != nil {
		return res, err
	}
	e.say("Horcrux: cosigner %d leads and the validator signs", id)
	steady := time.Now()
	if res.idle, err = sampleIdle(hx.cosigners[id-1].p.PID, 10*time.Second); err != nil {
		return res, err
	}
	e.say("Horcrux leading cosigner %d: RSS %.1f MB, CPU %.2f%% of a core", id, res.idle.rssMB, res.idle.cpuPct)
	if res.rate, err = e.blockRate(ctx, rateWindow); err != nil {
		return res, err
	}
	e.say("Horcrux: %s", res.rate)
	var logs []string
	for _, c := range hx.cosigners {
		logs = append(logs, c.logPath)
	}
	// Sign latency while no cosigner or sentry is down (the failovers'
	// requests waited for an election, as valguard's parked ones, which
	// its column leaves out).
	res.reply = hxSignLatencies(logs, steady, time.Now())
	if res.runs[kindGraceful], err = hx.leaderKills(ctx, "SIGTERM", syscall.SIGTERM, runs); err != nil {
		return res, err
	}
	if res.runs[kindHandover], err = hx.elections(ctx, runs); err != nil {
		return res, err
	}
	if res.runs[kindCrash], err = hx.leaderKills(ctx, "SIGKILL", syscall.SIGKILL, runs); err != nil {
		return res, err
	}
	if res.runs[kindNodeCrash], err = hx.sentryKills(ctx, runs); err != nil {
		return res, err
	}
	res.safety, err = e.checkSafety(ctx)
	return res, err
}
