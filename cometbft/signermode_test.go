package cometbft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/libs/bytes"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

// shortDir is a fresh directory with a short path, so that socket paths
// in it stay under sun_path's 107 bytes (t.TempDir's may not).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// signerNode is New in the signer mode on h (addr "" = the default).
func signerNode(t *testing.T, h, key, addr string) *Node {
	t.Helper()
	n, err := New(signerConfig(t, h, key, addr))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func signerConfig(t *testing.T, h, key, addr string) Config {
	return Config{Home: h, ValidatorKey: key, Binary: "true", Environ: []string{}, SignMode: SignSigner, SignerAddr: addr,
		Log: zerolog.New(zerolog.NewTestWriter(t))}
}

// staleSocket leaves at path a unix socket file nothing accepts on, as a
// node killed while listening does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

func TestSignerAddr(t *testing.T) {
	dir := shortDir(t)
	h, key := homeIn(t, dir, "")
	long := "/" + strings.Repeat("a", 107) // 108 bytes
	max := "/" + strings.Repeat("a", 106)  // 107 bytes
	cases := []struct {
		name string
		mode SignMode
		addr string
		want string // the address New keeps, or
		bad  string // a part of New's error
	}{
		{"default", SignSigner, "", "unix://" + filepath.Join(h, "valguard", "privval.sock"), ""},
		{"unix", SignSigner, "unix:///run/valguard/privval.sock", "unix:///run/valguard/privval.sock", ""},
		{"unix path of 107 bytes", SignSigner, "unix://" + max, "unix://" + max, ""},
		{"tcp", SignSigner, "tcp://127.0.0.1:26659", "tcp://127.0.0.1:26659", ""},
		{"restart mode has none", SignRestart, "", "", ""},
		{"zero mode is restart", "", "", "", ""},
		{"unix path of 108 bytes", SignSigner, "unix://" + long, "", "holds at most 107"},
		{"relative unix path", SignSigner, "unix://run/privval.sock", "", "is relative"},
		{"unix directory", SignSigner, "unix:///run/", "", "name a file"},
		{"no scheme", SignSigner, "/run/privval.sock", "", "no scheme"},
		{"other scheme", SignSigner, "http://127.0.0.1:26659", "", "only unix:// and tcp://"},
		{"tcp without port", SignSigner, "tcp://127.0.0.1", "", "write tcp://host:port"},
		{"tcp without host", SignSigner, "tcp://:26659", "", "no host"},
		{"tcp port 0", SignSigner, "tcp://127.0.0.1:0", "", "not a number in 1..65535"},
		{"address in restart mode", SignRestart, "unix:///run/privval.sock", "", "a setting of the signer sign mode only"},
		{"unknown mode", "remote", "", "", `sign mode "remote"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := signerConfig(t, h, key, tc.addr)
			cfg.SignMode = tc.mode
			n, err := New(cfg)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("New = %v, want an error containing %q", err, tc.bad)
				}
				if strings.Contains(err.Error(), "--") {
					t.Fatalf("error %q names a command-line flag", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.SignerAddr() != tc.want {
				t.Fatalf("SignerAddr = %q, want %q", n.SignerAddr(), tc.want)
			}
		})
	}
	t.Run("default too long for the home", func(t *testing.T) {
		deep := filepath.Join(dir, strings.Repeat("d", 90))
		if err := os.MkdirAll(deep, 0o700); err != nil {
			t.Fatal(err)
		}
		dh, dkey := homeIn(t, deep, "")
		_, err := New(signerConfig(t, dh, dkey, ""))
		if !errors.Is(err, ErrSignerAddr) || !strings.Contains(err.Error(), "shorter") {
			t.Fatalf("New = %v, want ErrSignerAddr saying to choose a shorter path", err)
		}
	})
}

func TestSignerModeCommand(t *testing.T) {
	h, key := homeIn(t, shortDir(t), "")
	cfg := signerConfig(t, h, key, "")
	cfg.Args = []string{"--log_level", "info"}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := n.Command(supervisor.RoleVoter)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{cmd.Path, "start", "--home", h, "--consensus.double_sign_check_height", "0",
		"--priv_validator_laddr", "unix://" + filepath.Join(h, "valguard", "privval.sock"), "--log_level", "info"}
	if strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
		t.Fatalf("command %q\nwant    %q", cmd.Args, want)
	}
	if _, err := n.Command(supervisor.RoleValidator); !errors.Is(err, ErrSignerMode) {
		t.Fatalf("Command(validator) = %v, want ErrSignerMode", err)
	}
	// The restart mode's command has no signer address.
	r := newNode(t, h, key)
	cmd, err = r.Command(supervisor.RoleValidator)
	if err != nil || strings.Contains(strings.Join(cmd.Args, " "), "priv_validator_laddr") {
		t.Fatalf("restart-mode command %v (%v)", cmd, err)
	}
}

func TestSignerModePrepareVoter(t *testing.T) {
	h, key := homeIn(t, shortDir(t), "")
	n := signerNode(t, h, key, "")
	_, sock, _ := parseSignerAddr(n.SignerAddr())
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := keylink.Verify(n.p.key, n.p.voterKey); !ok {
		t.Fatal("the key path does not link to the voter key")
	}
	if held, _ := holds(n.p.key, n.Address()); held {
		t.Fatal("the node's key file holds the validator key")
	}
	if st, _ := readState(n.p.state); st != (SignState{}) {
		t.Fatalf("state %+v, want the voter's zero state", st)
	}
	// A node killed while listening leaves its socket: the next prepare
	// removes it, and only it.
	staleSocket(t, sock)
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket still there (%v)", err)
	}
	if ok, _ := keylink.Verify(n.p.key, n.p.voterKey); !ok {
		t.Fatal("the voter key link is gone")
	}
	// A custom socket's directory is created.
	dir := shortDir(t)
	m := signerNode(t, h, key, "unix://"+filepath.Join(dir, "run", "pv.sock"))
	if err := m.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run")); err != nil || !fi.IsDir() {
		t.Fatalf("socket directory not created (%v)", err)
	}
}

func TestSignerModePrepareValidatorIsRefused(t *testing.T) {
	dir := shortDir(t)
	h, key := homeIn(t, dir, "")
	n := signerNode(t, h, key, "")
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	n.seen.Store(10)
	before := snapshot(t, dir)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, []byte(`{"height":"5","round":0,"step":3}`)); !errors.Is(err, ErrSignerMode) {
		t.Fatalf("Prepare(validator) = %v, want ErrSignerMode", err)
	}
	assertUnchanged(t, dir, before)
}

// Every refusal of the signer mode's checks leaves the disk as it was:
// at New, and at a Prepare after a first one succeeded.
func TestSignerModeRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, h, sock string) // makes the bad situation
		want  func(h, sock string) string        // a part of the error
	}{
		{"config sets another priv_validator_laddr", func(t *testing.T, h, _ string) {
			cfg := filepath.Join(h, "config", "config.toml")
			write(t, cfg, "priv_validator_laddr = \"tcp://127.0.0.1:1234\"\n"+string(mustRead(t, cfg)))
		}, func(h, _ string) string {
			return `config.toml sets priv_validator_laddr to "tcp://127.0.0.1:1234"; valguard serves the signer at unix://` +
				filepath.Join(h, "valguard", "privval.sock") + ": remove the setting"
		}},
		{"a regular file at the socket path", func(t *testing.T, _, sock string) {
			write(t, sock, "not a socket")
		}, func(_, sock string) string { return sock + " holds a regular file, not a socket" }},
		{"a directory at the socket path", func(t *testing.T, _, sock string) {
			if err := os.Mkdir(sock, 0o700); err != nil {
				t.Fatal(err)
			}
		}, func(_, sock string) string { return sock + " holds a directory, not a socket" }},
		{"a symbolic link to a stale socket", func(t *testing.T, h, sock string) {
			other := filepath.Join(h, "other.sock")
			staleSocket(t, other)
			if err := os.Symlink(other, sock); err != nil {
				t.Fatal(err)
			}
		}, func(_, sock string) string { return sock + " holds a symbolic link, not a socket" }},
		{"another node serves the socket", func(t *testing.T, _, sock string) {
			accept(t, "unix", sock)
		}, func(_, sock string) string {
			return "another process serves " + sock + " (a node left running?): stop it"
		}},
	}
	for _, tc := range cases {
		for _, when := range []string{"New", "Prepare"} {
			t.Run(tc.name+"/"+when, func(t *testing.T) {
				dir := shortDir(t)
				h, key := homeIn(t, dir, "")
				sock := filepath.Join(h, "valguard", "privval.sock")
				var n *Node
				if when == "Prepare" {
					n = signerNode(t, h, key, "")
					if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
						t.Fatal(err)
					}
					// A home a Prepare that went on would change: no key
					// link, a sign state that is not the voter's.
					if err := os.Remove(n.p.key); err != nil {
						t.Fatal(err)
					}
					write(t, n.p.state, `{"height":"9","round":0,"step":3}`)
				} else if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
					t.Fatal(err)
				}
				tc.setup(t, h, sock)
				before := snapshot(t, dir)
				var err error
				if when == "New" {
					_, err = New(signerConfig(t, h, key, ""))
				} else {
					err = n.Prepare(context.Background(), supervisor.RoleVoter, nil)
				}
				if want := tc.want(h, sock); err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s = %v\nwant an error containing %q", when, err, want)
				}
				assertUnchanged(t, dir, before)
				if n != nil {
					if _, err := n.Command(supervisor.RoleVoter); err == nil && !strings.Contains(tc.name, "config") {
						t.Fatal("Command accepted what Prepare refused")
					}
				}
			})
		}
	}
}

func TestSignerModeAcceptsItsOwnLaddrInConfig(t *testing.T) {
	dir := shortDir(t)
	sock := "unix://" + filepath.Join(dir, "home", "valguard", "privval.sock")
	h, key := homeIn(t, dir, fmt.Sprintf("priv_validator_laddr = %q\n", sock)+freeAddrsConfig(t))
	n := signerNode(t, h, key, "")
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	// Removing it from config.toml later is no config change to refuse.
	write(t, filepath.Join(h, "config", "config.toml"), freeAddrsConfigLike(t, n))
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	// The restart mode refuses it.
	write(t, filepath.Join(h, "config", "config.toml"), fmt.Sprintf("priv_validator_laddr = %q\n", sock)+freeAddrsConfigLike(t, n))
	if _, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Environ: []string{}}); err == nil || !strings.Contains(err.Error(), "priv_validator_laddr") {
		t.Fatalf("restart-mode New = %v, want a refusal of priv_validator_laddr", err)
	}
}

// freeAddrsConfigLike is a config.toml with n's RPC and P2P addresses.
func freeAddrsConfigLike(t *testing.T, n *Node) string {
	t.Helper()
	return addrsConfig(n.p.rpcLaddr, n.p.p2pLaddr)
}

// priv_validator_laddr in the node's arguments or environment is refused
// in both modes: in the signer mode valguard sets it, in the restart
// mode it would take the node off the key file.
func TestLaddrArgsAndEnvRefusedInBothModes(t *testing.T) {
	dir := shortDir(t)
	h, key := homeIn(t, dir, "")
	inputs := []struct {
		name string
		args []string
		env  []string
	}{
		{"--priv_validator_laddr=", []string{"--priv_validator_laddr=unix:///tmp/x.sock"}, nil},
		{"--priv-validator-laddr", []string{"--priv-validator-laddr", "tcp://127.0.0.1:1"}, nil},
		{"CMT_PRIV_VALIDATOR_LADDR", nil, []string{"CMT_PRIV_VALIDATOR_LADDR=unix:///tmp/x.sock"}},
		{"CMTPRIV_VALIDATOR_LADDR", nil, []string{"CMTPRIV_VALIDATOR_LADDR=unix:///tmp/x.sock"}},
		{"TM_PRIV_VALIDATOR_LADDR", nil, []string{"TM_PRIV_VALIDATOR_LADDR="}},
		{"a daemon's prefix", nil, []string{"GAIAD_PRIV_VALIDATOR_LADDR=tcp://127.0.0.1:1"}},
		{"DAEMON_NAME's prefix", nil, []string{"DAEMON_NAME=simd", "SIMD_PRIV_VALIDATOR_LADDR=tcp://127.0.0.1:1"}},
	}
	for _, mode := range []SignMode{SignRestart, SignSigner} {
		for _, in := range inputs {
			t.Run(string(mode)+"/"+in.name, func(t *testing.T) {
				cfg := signerConfig(t, h, key, "")
				cfg.SignMode, cfg.Args, cfg.Environ = mode, in.args, append([]string{}, in.env...)
				before := snapshot(t, dir)
				_, err := New(cfg)
				if err == nil || !strings.Contains(strings.ToLower(normalise(err.Error())), "priv_validator_laddr") {
					t.Fatalf("New = %v, want a refusal naming priv_validator_laddr", err)
				}
				assertUnchanged(t, dir, before)
			})
		}
	}
}

func TestSignerModeStatus(t *testing.T) {
	foreign := ed25519.GenPrivKey().PubKey().Address().String()
	cases := []struct {
		name     string
		mode     SignMode
		prepare  bool
		address  func(n *Node) string
		linkKey  bool   // the validator key is linked into the home behind valguard's back
		want     error  // nil: the status is read
		contains string // a part of the error
	}{
		{"signer: the validator's key from the socket", SignSigner, true, func(n *Node) string { return n.Address() }, false, nil, ""},
		{"signer: unprepared node with the validator's key", SignSigner, false, func(n *Node) string { return n.Address() }, false, nil, ""},
		{"signer: the voter key", SignSigner, true, func(n *Node) string { return n.voterAddr }, false, supervisor.ErrUnexpectedKey, "does not use the remote signer"},
		{"signer: a foreign key", SignSigner, true, func(*Node) string { return foreign }, false, supervisor.ErrUnexpectedKey, "a foreign key"},
		{"signer: validator key in the home", SignSigner, true, func(n *Node) string { return n.Address() }, true, supervisor.ErrUnexpectedKey, "S1′"},
		{"signer: validator key in an unprepared home", SignSigner, false, func(n *Node) string { return n.Address() }, true, supervisor.ErrUnexpectedKey, "S1′"},
		{"restart: voter with the validator's key", SignRestart, true, func(n *Node) string { return n.Address() }, false, supervisor.ErrUnexpectedKey, "the validator key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, key := homeIn(t, shortDir(t), "")
			cfg := signerConfig(t, h, key, "")
			cfg.SignMode = tc.mode
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.prepare {
				if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
					t.Fatal(err)
				}
			}
			if tc.linkKey {
				_ = os.Remove(n.p.key)
				if err := os.Symlink(key, n.p.key); err != nil {
					t.Fatal(err)
				}
			}
			addr := bytes.HexBytes(mustHex(t, tc.address(n)))
			rpc, err := rpchttp.New(fakeRPC(t, &addr), "/websocket")
			if err != nil {
				t.Fatal(err)
			}
			n.rpc = rpc
			st, err := n.Status(context.Background())
			if tc.want == nil {
				if err != nil || st.Height != 7 {
					t.Fatalf("Status = %+v, %v; want height 7", st, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("Status = %v, want %v containing %q", err, tc.want, tc.contains)
			}
		})
	}
}

func TestSignerModeWatermarkIsNil(t *testing.T) {
	h, key := homeIn(t, shortDir(t), "")
	n := signerNode(t, h, key, "")
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	write(t, n.p.state, `{"height":"42","round":0,"step":3}`)
	n.setRole(supervisor.RoleValidator) // even so
	if wm, err := n.Watermark(); wm != nil || err != nil {
		t.Fatalf("Watermark = %s, %v; want nil (the signer's watermark is in Consul)", wm, err)
	}
}
