package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/testnet"
)

// Under systemd without WatchdogSec, the key-file mode refuses to start.
func TestRunUnderSystemdWithoutWatchdogIsRefused(t *testing.T) {
	testnet.ListenNotify(t) // $NOTIFY_SOCKET, inherited by valguard
	home, key := cometHome(t, t.TempDir())
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"no WatchdogSec", nil, "set WatchdogSec="},
		{"WatchdogSec too long", []string{"WATCHDOG_USEC=8000000", "WATCHDOG_PID="}, "WatchdogSec=8s is too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(valguardBin, "run", "--metrics-addr", "", "--node-binary", "true",
				"--consul-url", "http://127.0.0.1:1", "--node-home", home, "--validator-key", key)
			cmd.Env = append(os.Environ(), append([]string{"CREDENTIALS_DIRECTORY="}, tc.env...)...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("err %v, want a refusal saying %q:\n%s", err, tc.want, out)
			}
		})
	}
}
