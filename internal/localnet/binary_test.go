package localnet

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// binaryOrSkip returns the cometbft binary, skipping the test when it is
// missing, except under CI=true where a missing binary is a failure.
func binaryOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := CometBFTBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true)", err)
		}
		t.Skipf("%v; set VALGUARD_COMETBFT or run scripts/install-deps.sh", err)
	}
	return bin
}

// TestCometBFTMatrixMatchesInstallDeps: scripts/install-deps.sh installs
// the versions the version matrix test runs, no fewer, no others.
func TestCometBFTMatrixMatchesInstallDeps(t *testing.T) {
	data, err := os.ReadFile("../../scripts/install-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^COMETBFT_MATRIX="\$\{COMETBFT_MATRIX-([^}]*)\}"$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("scripts/install-deps.sh sets no COMETBFT_MATRIX default")
	}
	if got, want := strings.Fields(string(m[1])), CometBFTMatrix; !slices.Equal(got, want) {
		t.Fatalf("install-deps.sh installs %v, the matrix test runs %v", got, want)
	}
}
