// Package tooltest finds the external tools a test needs and builds the
// valguard binary once per test binary, for the tests of the shipped
// systemd units, NixOS module and monitoring rules. It is for tests only.
package tooltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

// Tool returns the path of a tool the test needs. When it is missing the
// test fails under CI=true (CI must run it) and is skipped otherwise.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (scripts/install-deps.sh installs it)", name, err)
		}
		t.Skipf("%s: %v (scripts/install-deps.sh installs it)", name, err)
	}
	return p
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// Valguard builds ./cmd/valguard once per test binary into a temporary
// directory and returns its path; Cleanup removes it.
func Valguard(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "valguard-tooltest-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "valguard")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/valguard/valguard/cmd/valguard").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// Cleanup removes what Valguard built; call it from TestMain after m.Run.
func Cleanup() {
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
}

// RunFlags returns the flags `valguard run --help` lists (names without
// the dashes); it fails the test when the help cannot be read or lists
// fewer than 20 flags (a parse that found nothing).
func RunFlags(t testing.TB) map[string]bool {
	t.Helper()
	out, err := exec.Command(Valguard(t), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("valguard run --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 20 {
		t.Fatalf("only %d flags found in valguard run --help:\n%s", len(flags), out)
	}
	return flags
}
