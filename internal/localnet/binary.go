package localnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNoBinary is returned by CometBFTBinary when no cometbft binary is found.
var ErrNoBinary = errors.New("cometbft binary not found; run scripts/install-deps.sh")

// CometBFTBinary returns the path of the cometbft binary to run, looked up
// in this order:
//
//  1. $VALGUARD_COMETBFT (an error if set but not an executable file);
//  2. ${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}/bin/cometbft,
//     where scripts/install-deps.sh installs it;
//  3. cometbft on $PATH.
//
// The error wraps ErrNoBinary when none is found.
func CometBFTBinary() (string, error) {
	if p := os.Getenv("VALGUARD_COMETBFT"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("VALGUARD_COMETBFT=%s: %w", p, err)
		}
		return p, nil
	}
	if dir, err := cacheDir(); err == nil {
		p := filepath.Join(dir, "bin", "cometbft")
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("cometbft"); err == nil {
		return p, nil
	}
	return "", ErrNoBinary
}

// cacheDir is ${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard},
// the same directory scripts/install-deps.sh installs into.
func cacheDir() (string, error) {
	if d := os.Getenv("VALGUARD_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "valguard"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "valguard"), nil
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
