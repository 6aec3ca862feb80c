package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// listenNotify listens where $NOTIFY_SOCKET points, as systemd would,
// and discards what is sent to it.
func listenNotify(t *testing.T) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	go func() {
		buf := make([]byte, 256)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
}

// Under systemd without WatchdogSec, the key-file mode refuses to start.
func TestRunUnderSystemdWithoutWatchdogIsRefused(t *testing.T) {
	listenNotify(t) // $NOTIFY_SOCKET, inherited by valguard
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
