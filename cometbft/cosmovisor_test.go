package cometbft

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/valguard/valguard/supervisor"
)

// cosmovisorHome makes a node home with cosmovisor's layout: the daemon
// name at genesis/bin (and, with current, a current link to genesis).
func cosmovisorHome(t *testing.T, name string, mode os.FileMode, current bool) string {
	t.Helper()
	home := t.TempDir()
	bin := filepath.Join(home, "cosmovisor", "genesis", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
	if current {
		if err := os.Symlink(filepath.Join(home, "cosmovisor", "genesis"), filepath.Join(home, "cosmovisor", "current")); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

func TestCosmovisorEnv(t *testing.T) {
	home := cosmovisorHome(t, "gaiad", 0o755, false)
	linked := filepath.Join(t.TempDir(), "home-link")
	if err := os.Symlink(home, linked); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		home string
		env  []string
		want []string // what the returned environment must hold
		err  string   // a part of the refusal

		unixSigner bool
	}{
		{name: "DAEMON_HOME and the grace set by valguard", home: home, env: []string{"DAEMON_NAME=gaiad", "PATH=/bin"},
			want: []string{"DAEMON_NAME=gaiad", "PATH=/bin", "DAEMON_HOME=" + home, "DAEMON_SHUTDOWN_GRACE=" + DefaultCosmovisorShutdownGrace}},
		{name: "DAEMON_HOME equal to the node home", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_HOME=" + home + "/", "DAEMON_SHUTDOWN_GRACE=30s"},
			want: []string{"DAEMON_HOME=" + home + "/", "DAEMON_SHUTDOWN_GRACE=30s"}},
		{name: "DAEMON_HOME a link to the node home", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_HOME=" + linked},
			want: []string{"DAEMON_HOME=" + linked}},
		{name: "the daemon at current", home: cosmovisorHome(t, "simd", 0o755, true), env: []string{"DAEMON_NAME=simd", "DAEMON_RESTART_AFTER_UPGRADE=true"}},
		{name: "signer mode on a unix socket: a restart delay", home: home, env: []string{"DAEMON_NAME=gaiad"}, unixSigner: true,
			want: []string{"DAEMON_RESTART_DELAY=" + DefaultCosmovisorRestartDelay}},
		{name: "signer mode on a unix socket: the operator's delay", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_RESTART_DELAY=8s"}, unixSigner: true,
			want: []string{"DAEMON_RESTART_DELAY=8s"}},
		{name: "signer mode on a unix socket: too short a delay", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_RESTART_DELAY=1s"}, unixSigner: true,
			err: `DAEMON_RESTART_DELAY="1s"`},
		{name: "signer mode on a unix socket: a delay that is no duration", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_RESTART_DELAY=5"}, unixSigner: true,
			err: `DAEMON_RESTART_DELAY="5"`},
		{name: "no DAEMON_NAME", home: home, env: []string{"PATH=/bin"}, err: "DAEMON_NAME is not set"},
		{name: "empty DAEMON_NAME", home: home, env: []string{"DAEMON_NAME="}, err: "DAEMON_NAME is not set"},
		{name: "a path as DAEMON_NAME", home: home, env: []string{"DAEMON_NAME=/usr/bin/gaiad"}, err: `DAEMON_NAME "/usr/bin/gaiad" is not a binary name`},
		{name: "a relative DAEMON_HOME", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_HOME=" + filepath.Base(home)}, err: "is not the node home"},
		{name: "an empty grace is no grace", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_SHUTDOWN_GRACE="},
			want: []string{"DAEMON_SHUTDOWN_GRACE=" + DefaultCosmovisorShutdownGrace}},
		{name: "DAEMON_HOME elsewhere", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_HOME=/var/lib/other"}, err: "DAEMON_HOME /var/lib/other is not the node home " + home},
		{name: "no restart after an upgrade", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_RESTART_AFTER_UPGRADE=FALSE"}, err: "DAEMON_RESTART_AFTER_UPGRADE=false"},
		{name: "restart not a boolean", home: home, env: []string{"DAEMON_NAME=gaiad", "DAEMON_RESTART_AFTER_UPGRADE=yes"}, err: `DAEMON_RESTART_AFTER_UPGRADE="yes" is not a boolean`},
		{name: "no such daemon", home: home, env: []string{"DAEMON_NAME=simd"}, err: "no executable simd at " + filepath.Join(home, "cosmovisor", "current", "bin", "simd")},
		{name: "the daemon not executable", home: cosmovisorHome(t, "gaiad", 0o644, false), env: []string{"DAEMON_NAME=gaiad"}, err: "no executable gaiad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cosmovisorEnv(tc.home, tc.env, tc.unixSigner)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("environment %q lacks %q", got, w)
				}
			}
			if n := strings.Count(strings.Join(got, "\n"), "DAEMON_HOME="); n != 1 {
				t.Errorf("DAEMON_HOME set %d times in %q", n, got)
			}
		})
	}
}

func TestIsCosmovisor(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cosmovisor")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cv")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		bin: true, link: true, "/usr/local/bin/cosmovisor": true,
		"/usr/local/bin/gaiad": false, filepath.Join(dir, "cosmovisor-wrapper"): false,
	} {
		if got := isCosmovisor(path); got != want {
			t.Errorf("isCosmovisor(%s) = %v, want %v", path, got, want)
		}
	}
}

// A node whose binary is cosmovisor runs "cosmovisor run start --home ...",
// with DAEMON_HOME set to the node home; a bad cosmovisor environment, or
// the daemon's own settings under its DAEMON_NAME prefix, are refused by
// New.
func TestCosmovisorCommand(t *testing.T) {
	h, key := home(t, "")
	bin := filepath.Join(t.TempDir(), "cosmovisor")
	write(t, bin, "#!/bin/sh\n")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	daemon := filepath.Join(h, "cosmovisor", "genesis", "bin", "gaiad")
	if err := os.MkdirAll(filepath.Dir(daemon), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, daemon, "#!/bin/sh\n")
	if err := os.Chmod(daemon, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Home: h, ValidatorKey: key, Binary: bin, Environ: []string{"PATH=/bin"}}); err == nil || !strings.Contains(err.Error(), "DAEMON_NAME is not set") {
		t.Fatalf("no DAEMON_NAME: error %v", err)
	}
	if _, err := New(Config{Home: h, ValidatorKey: key, Binary: bin, Environ: []string{"DAEMON_NAME=gaiad", "GAIAD_RPC_LADDR=tcp://0.0.0.0:1"}}); err == nil || !strings.Contains(err.Error(), "GAIAD_RPC_LADDR") {
		t.Fatalf("the daemon's RPC address in the environment: error %v", err)
	}
	n, err := New(Config{Home: h, ValidatorKey: key, Binary: bin, Args: []string{"--log_level", "info"}, Environ: []string{"DAEMON_NAME=gaiad"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := n.Command(supervisor.RoleVoter)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bin, "run", "start", "--home", h, "--consensus.double_sign_check_height", "0", "--log_level", "info"}
	if !slices.Equal(cmd.Args, want) {
		t.Fatalf("command %q, want %q", cmd.Args, want)
	}
	if !slices.Contains(cmd.Env, "DAEMON_HOME="+h) {
		t.Fatalf("environment %q lacks DAEMON_HOME=%s", cmd.Env, h)
	}
}
