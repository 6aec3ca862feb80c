package localnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNoBinary is returned by CometBFTBinary when no cometbft binary is
// found, and wrapped by CosmovisorBinary when no cosmovisor is.
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
	p, err := cachedBinary("cometbft", "VALGUARD_COMETBFT")
	if err == nil && p == "" {
		err = ErrNoBinary
	}
	return p, err
}

// CometBFTMatrix are the CometBFT versions besides the default one that
// both sign modes are tested against (scripts/install-deps.sh installs
// each as cometbft-<version>; its COMETBFT_MATRIX is the same list).
var CometBFTMatrix = []string{"v0.39.4", "v0.40.0", "v1.0.1"}

// CometBFTVersionBinary is cometbft-<version> in the cache, where
// scripts/install-deps.sh installs the versions of CometBFTMatrix.
func CometBFTVersionBinary(version string) (string, error) {
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "bin", "cometbft-"+version)
	if err := checkExecutable(p); err != nil {
		return "", fmt.Errorf("cometbft %s not installed (%v); run scripts/install-deps.sh: %w", version, err, ErrNoBinary)
	}
	return p, nil
}

// CosmovisorBinary is CometBFTBinary for cosmovisor: $VALGUARD_COSMOVISOR,
// then the cache, then $PATH.
func CosmovisorBinary() (string, error) {
	p, err := cachedBinary("cosmovisor", "VALGUARD_COSMOVISOR")
	if err == nil && p == "" {
		err = fmt.Errorf("cosmovisor binary not found; run scripts/install-deps.sh: %w", ErrNoBinary)
	}
	return p, err
}

// cachedBinary looks name up as CometBFTBinary says, with env as the
// variable that names it; "" and no error when it is nowhere.
func cachedBinary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	if dir, err := cacheDir(); err == nil {
		p := filepath.Join(dir, "bin", name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", nil
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
