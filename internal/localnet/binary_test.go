package localnet

import (
	"os"
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
