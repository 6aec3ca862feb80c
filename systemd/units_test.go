package systemd_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"

	"github.com/valguard/valguard/internal/testnet"
	"github.com/valguard/valguard/internal/tooltest"
	"github.com/valguard/valguard/systemd"
)

// units are the shipped unit files, by the node they run.
var units = []string{"valguard.service", "valguard-signer.service", "valguard-neard.service"}

func parse(t *testing.T, name string) systemd.Unit {
	t.Helper()
	u, err := systemd.ParseFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func command(t *testing.T, u systemd.Unit) systemd.Command {
	t.Helper()
	c, err := u.RunCommand()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMain(m *testing.M) {
	code := m.Run()
	tooltest.Cleanup()
	os.Exit(code)
}

// systemd-analyze verify accepts every unit with no warning at all (an
// unknown or misspelt key is only a warning to systemd, so any output
// fails the test). verify insists that ExecStart's binary exists, so the
// unit is checked as shipped except for /usr/bin/valguard, replaced by a
// freshly built valguard. A unit with an unknown key is shown to fail the
// same check.
func TestUnitsVerify(t *testing.T) {
	analyze := tooltest.Tool(t, "systemd-analyze")
	bin := tooltest.Valguard(t)
	verify := func(t *testing.T, name string, text []byte) ([]byte, error) {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, text, 0o644); err != nil {
			t.Fatal(err)
		}
		return exec.Command(analyze, "verify", path).CombinedOutput()
	}
	for _, name := range units {
		t.Run(name, func(t *testing.T) {
			text, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if c := command(t, parse(t, name)); c.Binary != "/usr/bin/valguard" {
				t.Fatalf("ExecStart runs %s, want /usr/bin/valguard", c.Binary)
			}
			text = bytes.Replace(text, []byte("ExecStart=/usr/bin/valguard "), []byte("ExecStart="+bin+" "), 1)
			out, err := verify(t, name, text)
			if err != nil || len(out) > 0 {
				t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
			}
			bad := bytes.Replace(text, []byte("\nKillMode="), []byte("\nKilMode="), 1)
			if out, _ := verify(t, name, bad); !bytes.Contains(out, []byte("Unknown key")) {
				t.Fatalf("a misspelt key was not reported: %s", out)
			}
		})
	}
}

// helpFlags returns the flags `valguard run --help` lists.
func helpFlags(t *testing.T) map[string]bool {
	t.Helper()
	return tooltest.RunFlags(t)
}

// Every flag on ExecStart is one `valguard run --help` lists.
func TestUnitsFlagsExist(t *testing.T) {
	known := helpFlags(t)
	for _, name := range units {
		for flag := range command(t, parse(t, name)).Flags {
			if !known[flag] {
				t.Errorf("%s: ExecStart has --%s, which valguard run does not know", name, flag)
			}
		}
	}
}

// The settings the design relies on, and hardening that leaves the node
// working.
func TestUnitsSettings(t *testing.T) {
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "KillMode": "control-group", "Delegate": "yes",
		"WatchdogSignal": "SIGKILL", "Restart": "always", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
	}
	// Settings that would break the node or valguard's own cover: a
	// read-only cgroup tree (no cgroup per node), no writable executable
	// memory (JIT contract runtimes), no network, a new user namespace.
	forbidden := []string{"ProtectControlGroups", "MemoryDenyWriteExecute", "PrivateNetwork", "IPAddressDeny", "PrivateUsers", "DynamicUser", "ProtectKernelTunables"}
	for _, name := range units {
		t.Run(name, func(t *testing.T) {
			u := parse(t, name)
			c := command(t, u)
			for k, v := range want {
				if got := u.Value("Service", k); got != v {
					t.Errorf("%s=%q, want %q", k, got, v)
				}
			}
			for _, k := range forbidden {
				if v := u.Values("Service", k); len(v) > 0 {
					t.Errorf("%s=%v is set: it breaks the node or valguard", k, v)
				}
			}
			if u.Value("Service", "WatchdogSec") == "" {
				t.Error("no WatchdogSec")
			}
			if u.Value("Install", "WantedBy") != "multi-user.target" {
				t.Error("not WantedBy=multi-user.target")
			}
			// Every secret comes from a credential: each %d/NAME on the
			// command line has its LoadCredential=NAME:..., and no flag
			// points at a key or token file elsewhere.
			creds := map[string]bool{}
			for _, lc := range u.Values("Service", "LoadCredential") {
				id, src, ok := strings.Cut(lc, ":")
				if !ok || !strings.HasPrefix(src, "/etc/valguard/") {
					t.Errorf("LoadCredential=%s: want NAME:/etc/valguard/FILE", lc)
				}
				creds[id] = true
			}
			for _, flag := range []string{"validator-key", "validator-node-key", "voter-node-key", "consul-token-file"} {
				for _, v := range c.Flags[flag] {
					id, ok := strings.CutPrefix(v, "%d/")
					if !ok || !creds[id] {
						t.Errorf("--%s %s is not a credential loaded with LoadCredential=", flag, v)
					}
				}
			}
			if _, ok := c.Flags["consul-token"]; ok {
				t.Error("--consul-token on the command line: the token would show in ps; use --consul-token-file with a credential")
			}
			for _, flag := range []string{"validator-key", "consul-token-file"} {
				if len(c.Flags[flag]) != 1 {
					t.Errorf("--%s given %d times, want once", flag, len(c.Flags[flag]))
				}
			}
			// ProtectSystem=strict: the node home is the one writable place.
			home := c.Flags["node-home"]
			if len(home) != 1 || !slices.Contains(u.Values("Service", "ReadWritePaths"), home[0]) {
				t.Errorf("--node-home %v is not in ReadWritePaths=%v", home, u.Values("Service", "ReadWritePaths"))
			}
			families := strings.Fields(u.Value("Service", "RestrictAddressFamilies"))
			for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6"} {
				if !slices.Contains(families, f) {
					t.Errorf("RestrictAddressFamilies lacks %s (the node's P2P and RPC, Consul, the privval socket)", f)
				}
			}
			// TimeoutStopSec leaves valguard time to stop the node, reap it
			// and release the lock: stop timeout + kill timeout + a Consul
			// call, with the defaults of the node kind.
			stop := 15 * time.Second
			if c.Flags["node"][0] == "neard" {
				stop = 60 * time.Second
			}
			need := stop + 2*time.Second + 2*time.Second
			if got := duration(t, u.Value("Service", "TimeoutStopSec")); got <= need {
				t.Errorf("TimeoutStopSec=%s, want more than %s", got, need)
			}
		})
	}
}

// duration parses a systemd time span of the simple forms the units use
// ("3s", "500ms", "90s").
func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("time span %q: %v", s, err)
	}
	return d
}

// listenNotify listens on a socket that speaks systemd's notify protocol
// and returns its path and a channel of the messages sent to it.
func listenNotify(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case msgs <- string(buf[:n]):
			default:
			}
		}
	}()
	return path, msgs
}

// cometHome writes a minimal CometBFT home (config.toml with free loopback
// RPC and P2P ports) and a validator key outside it.
func cometHome(t *testing.T) (home, key string) {
	t.Helper()
	dir := t.TempDir()
	home = filepath.Join(dir, "home")
	for _, sub := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(home, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf("[rpc]\nladdr = \"tcp://127.0.0.1:%d\"\n\n[p2p]\nladdr = \"tcp://127.0.0.1:%d\"\n", testnet.FreePort(t), testnet.FreePort(t))
	if err := os.WriteFile(filepath.Join(home, "config", "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, "priv_validator_key.json")
	data, err := cmtjson.Marshal(privval.GenFilePV("", "").Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return home, key
}

// startUnderWatchdog runs valguard as systemd would run the unit with
// WatchdogSec=wd, with the unit's timing flags, a throw-away CometBFT
// home and no Consul. It reports whether valguard passed its start-up
// watchdog check (it told the socket READY=1) and its output.
func startUnderWatchdog(t *testing.T, c systemd.Command, wd time.Duration) (bool, string) {
	t.Helper()
	home, key := cometHome(t)
	args := []string{"run", "--node", "cometbft", "--node-home", home, "--validator-key", key, "--node-binary", "true",
		"--consul-url", "http://127.0.0.1:1", "--metrics-addr", "", "--log-format", "json"}
	for _, flag := range []string{"session-ttl", "renew-interval", "kill-timeout", "lock-delay", "consul-timeout"} {
		for _, v := range c.Flags[flag] {
			args = append(args, "--"+flag, v)
		}
	}
	sock, msgs := listenNotify(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tooltest.Valguard(t), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, fmt.Sprintf("WATCHDOG_USEC=%d", wd.Microseconds()),
		"WATCHDOG_PID=", "CREDENTIALS_DIRECTORY=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case m := <-msgs:
			if m == "READY=1" {
				_ = cmd.Process.Signal(os.Interrupt)
				<-exited
				return true, out.String()
			}
		case <-exited:
			return false, out.String()
		case <-ctx.Done():
			t.Fatalf("valguard neither ready nor exited within 30s:\n%s", out.String())
		}
	}
}

// valguard's own start-up check (replica/watchdog.go: WatchdogSec +
// renew interval < TTL − stop margin) accepts each unit's WatchdogSec with
// the unit's timing flags, run for real under a socket that speaks the
// sd_notify protocol. As a control, a WatchdogSec at the limit that check
// computes for the same flags is refused: the run would catch a unit
// whose WatchdogSec is too long.
func TestUnitsWatchdogAccepted(t *testing.T) {
	for _, name := range units {
		t.Run(name, func(t *testing.T) {
			u := parse(t, name)
			c := command(t, u)
			wd := duration(t, u.Value("Service", "WatchdogSec"))
			if ok, out := startUnderWatchdog(t, c, wd); !ok {
				t.Fatalf("valguard refused WatchdogSec=%s with %v:\n%s", wd, c.Flags, out)
			}
			ttl := 10 * time.Second
			if v := c.Flags["session-ttl"]; len(v) > 0 {
				ttl = duration(t, v[0])
			}
			renew := ttl / 3
			if v := c.Flags["renew-interval"]; len(v) > 0 {
				renew = duration(t, v[0])
			}
			kill := 2 * time.Second
			if v := c.Flags["kill-timeout"]; len(v) > 0 {
				kill = duration(t, v[0])
			}
			// Rounded up to the microsecond WATCHDOG_USEC carries.
			limit := (ttl - (kill + time.Second) - renew + time.Microsecond - 1).Truncate(time.Microsecond)
			ok, out := startUnderWatchdog(t, c, limit)
			if ok || !strings.Contains(out, "is too long") {
				t.Fatalf("WatchdogSec=%s (the limit) was not refused:\n%s", limit, out)
			}
			t.Logf("WatchdogSec=%s accepted; limit %s refused", wd, limit)
		})
	}
}
