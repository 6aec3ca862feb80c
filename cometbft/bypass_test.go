package cometbft

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/supervisor"
)

func TestNewRefusesNodeArgsThatBypassValguard(t *testing.T) {
	refused := [][]string{
		{"--home", "/elsewhere"},
		{"--home=/elsewhere"},
		{"-home", "/elsewhere"},
		{"-home=/elsewhere"},
		{"--HOME=/elsewhere"},
		{"--priv_validator_laddr", "tcp://127.0.0.1:1234"},
		{"--priv_validator_laddr=tcp://127.0.0.1:1234"},
		{"--priv-validator-laddr", "tcp://127.0.0.1:1234"},
		{"-priv_validator_laddr=tcp://127.0.0.1:1234"},
		{"--priv_validator_key_file", "/tmp/k.json"},
		{"--priv-validator-key-file=/tmp/k.json"},
		{"--priv_validator_state_file", "/tmp/s.json"},
		{"--priv-validator-state-file=/tmp/s.json"},
		{"--consensus.double_sign_check_height", "10"},
		{"--consensus.double_sign_check_height=10"},
		{"--consensus.double-sign-check-height=10"},
		{"--consensus-double-sign-check-height=10"},
		{"--double_sign_check_height=10"},
		{"-consensus.double_sign_check_height", "10"},
		{"--rpc.laddr", "tcp://127.0.0.1:1"},
		{"--rpc-laddr=tcp://127.0.0.1:1"},
		{"--p2p.laddr=tcp://0.0.0.0:1"},
		{"--log_level", "info", "--home", "/elsewhere"}, // not only the first argument
		{"--", "--home", "/elsewhere"},
	}
	for _, args := range refused {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			h, key := home(t, "")
			before := snapshot(t, filepath.Dir(h))
			_, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Args: args, Environ: []string{}})
			if err == nil {
				t.Fatalf("New accepted --node-args %q", args)
			}
			for _, want := range []string{"node argument", "remove it from the node arguments"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			named := false
			for _, a := range args {
				if strings.HasPrefix(a, "-") && a != "--" && a != "--log_level" && strings.Contains(err.Error(), a) {
					named = true
				}
			}
			if !named {
				t.Errorf("error %q does not name the argument", err)
			}
			assertUnchanged(t, filepath.Dir(h), before)
		})
	}
	accepted := [][]string{
		nil,
		{"--log_level", "info"},
		{"--moniker=home"},
		{"--p2p.seeds", "id@127.0.0.1:1"},
		{"--proxy_app=kvstore"},
		{"--x-crisis-skip-assert-invariants"},
	}
	for _, args := range accepted {
		t.Run("accepted "+strings.Join(args, " "), func(t *testing.T) {
			h, key := home(t, "")
			if _, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Args: args, Environ: []string{}}); err != nil {
				t.Fatalf("New refused harmless --node-args %q: %v", args, err)
			}
		})
	}
}

// daemon makes an executable named name (a Cosmos SDK daemon stand-in).
func daemon(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	write(t, p, "#!/bin/sh\nexit 0\n")
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewRefusesEnvironmentThatBypassesValguard(t *testing.T) {
	gaiad := daemon(t, "gaiad")
	dashed := daemon(t, "my-chain.d")
	link := filepath.Join(t.TempDir(), "node")
	if err := os.Symlink(gaiad, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, binary string
		env          []string
		bad          []string // the names the error must give
	}{
		{"CMT_HOME", "true", []string{"CMT_HOME=/elsewhere"}, []string{"CMT_HOME"}},
		{"CMTHOME", "true", []string{"CMTHOME=/elsewhere"}, []string{"CMTHOME"}},
		{"TMHOME", "true", []string{"TMHOME=/elsewhere"}, []string{"TMHOME"}},
		{"TM_HOME", "true", []string{"TM_HOME=/elsewhere"}, []string{"TM_HOME"}},
		{"CMT_PRIV_VALIDATOR_LADDR", "true", []string{"CMT_PRIV_VALIDATOR_LADDR=tcp://127.0.0.1:1"}, []string{"CMT_PRIV_VALIDATOR_LADDR"}},
		{"CMTPRIV_VALIDATOR_LADDR (copied to CMT_)", "true", []string{"CMTPRIV_VALIDATOR_LADDR=tcp://127.0.0.1:1"}, []string{"CMTPRIV_VALIDATOR_LADDR"}},
		{"CMT_PRIV_VALIDATOR_KEY_FILE", "true", []string{"CMT_PRIV_VALIDATOR_KEY_FILE=/k"}, []string{"CMT_PRIV_VALIDATOR_KEY_FILE"}},
		{"TM_PRIV_VALIDATOR_STATE_FILE", "true", []string{"TM_PRIV_VALIDATOR_STATE_FILE=/s"}, []string{"TM_PRIV_VALIDATOR_STATE_FILE"}},
		{"CMT_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT", "true", []string{"CMT_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT=10"}, []string{"CMT_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT"}},
		{"CMT_RPC_LADDR", "true", []string{"CMT_RPC_LADDR=tcp://127.0.0.1:1"}, []string{"CMT_RPC_LADDR"}},
		{"CMT_P2P_LADDR", "true", []string{"CMT_P2P_LADDR=tcp://0.0.0.0:1"}, []string{"CMT_P2P_LADDR"}},
		{"empty value", "true", []string{"CMT_HOME="}, []string{"CMT_HOME"}},
		{"lower case", "true", []string{"cmt_home=/elsewhere"}, []string{"cmt_home"}},
		{"GAIAD_HOME", gaiad, []string{"GAIAD_HOME=/elsewhere"}, []string{"GAIAD_HOME"}},
		{"GAIAD_PRIV_VALIDATOR_KEY_FILE", gaiad, []string{"GAIAD_PRIV_VALIDATOR_KEY_FILE=/k"}, []string{"GAIAD_PRIV_VALIDATOR_KEY_FILE"}},
		{"gaiad_HOME (the SDK's bindFlags keeps the name's case)", gaiad, []string{"gaiad_HOME=/elsewhere"}, []string{"gaiad_HOME"}},
		{"gaiad_CONSENSUS.DOUBLE_SIGN_CHECK_HEIGHT (bindFlags keeps the dots)", gaiad, []string{"gaiad_CONSENSUS.DOUBLE_SIGN_CHECK_HEIGHT=5"}, []string{"gaiad_CONSENSUS.DOUBLE_SIGN_CHECK_HEIGHT"}},
		{"binary name with - and .", dashed, []string{"MY_CHAIN_D_HOME=/elsewhere"}, []string{"MY_CHAIN_D_HOME"}},
		{"symlinked binary: the resolved name", link, []string{"GAIAD_HOME=/elsewhere"}, []string{"GAIAD_HOME"}},
		{"symlinked binary: the given name", link, []string{"NODE_HOME=/elsewhere"}, []string{"NODE_HOME"}},
		{"a daemon's own prefix (GAIA_ for gaiad)", gaiad, []string{"GAIA_PRIV_VALIDATOR_KEY_FILE=/k"}, []string{"GAIA_PRIV_VALIDATOR_KEY_FILE"}},
		{"any prefix: the state file", "true", []string{"XYZ_PRIV_VALIDATOR_STATE_FILE=/s"}, []string{"XYZ_PRIV_VALIDATOR_STATE_FILE"}},
		{"any prefix: the double-sign check", "true", []string{"APP_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT=3"}, []string{"APP_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT"}},
		{"DAEMON_NAME (cosmovisor)", "true", []string{"DAEMON_NAME=simd", "SIMD_PRIV_VALIDATOR_LADDR=tcp://127.0.0.1:1"}, []string{"SIMD_PRIV_VALIDATOR_LADDR"}},
		{"all named", gaiad, []string{"PATH=/bin", "CMT_HOME=/a", "GAIAD_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT=5", "TMHOME=/b"},
			[]string{"CMT_HOME", "GAIAD_CONSENSUS_DOUBLE_SIGN_CHECK_HEIGHT", "TMHOME"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, key := home(t, "")
			before := snapshot(t, filepath.Dir(h))
			_, err := New(Config{Home: h, ValidatorKey: key, Binary: tc.binary, Environ: tc.env})
			if err == nil {
				t.Fatalf("New accepted the environment %q", tc.env)
			}
			for _, want := range append(tc.bad, "unset") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			assertUnchanged(t, filepath.Dir(h), before)
		})
	}
	accepted := []struct {
		name, binary string
		env          []string
	}{
		{"ordinary environment", "true", []string{"HOME=/root", "PATH=/usr/bin:/bin", "TMPDIR=/tmp", "CMT_LOG_LEVEL=info"}},
		{"another daemon's variables", "true", []string{"GAIAD_HOME=/elsewhere"}},
		{"daemon settings valguard does not manage", gaiad, []string{"GAIAD_MINIMUM_GAS_PRICES=0stake", "GAIAD_P2P_SEEDS=x"}},
	}
	for _, tc := range accepted {
		t.Run("accepted "+tc.name, func(t *testing.T) {
			h, key := home(t, "")
			if _, err := New(Config{Home: h, ValidatorKey: key, Binary: tc.binary, Environ: tc.env}); err != nil {
				t.Fatalf("New refused %q: %v", tc.env, err)
			}
		})
	}
}

func TestCommandPassesTheCheckedEnvironment(t *testing.T) {
	h, key := home(t, "")
	env := []string{"PATH=/usr/bin:/bin", "CMT_LOG_LEVEL=info"}
	n, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Environ: env, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	env[1] = "CMT_HOME=/elsewhere" // a later change to the caller's slice is not seen
	cmd, err := n.Command(supervisor.RoleValidator)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/usr/bin:/bin", "CMT_LOG_LEVEL=info"}; !reflect.DeepEqual(cmd.Env, want) {
		t.Fatalf("node environment %q, want %q", cmd.Env, want)
	}
}

func TestNewRefusesAConfigFileThatShadowsConfigToml(t *testing.T) {
	for _, f := range []string{"config.toml", "config.json", "config.yaml", "config.ini", filepath.Join("config", "config.json")} {
		t.Run(f, func(t *testing.T) {
			h, key := home(t, "")
			write(t, filepath.Join(h, f), "")
			before := snapshot(t, filepath.Dir(h))
			_, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Environ: []string{}})
			if err == nil || !strings.Contains(err.Error(), filepath.Join(h, f)) || !strings.Contains(err.Error(), "move") {
				t.Fatalf("New = %v, want a refusal naming %s", err, f)
			}
			assertUnchanged(t, filepath.Dir(h), before)
		})
	}
	// Looked for after config/config.toml: not a shadow.
	for _, f := range []string{"config.yaml", "config.ini"} {
		h, key := home(t, "")
		write(t, filepath.Join(h, "config", f), "")
		if _, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Environ: []string{}}); err != nil {
			t.Fatalf("New refused a config/%s that CometBFT looks for only after config.toml: %v", f, err)
		}
	}
}
