package cometbft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/testnet"
)

// freePort is a loopback TCP port no other test holds (testnet.FreePort).
func freePort(t *testing.T) int {
	t.Helper()
	return testnet.FreePort(t)
}

// freeAddrsConfig is a config.toml with the RPC and P2P addresses on free
// ports, so that tests never meet a node another test runs.
func freeAddrsConfig(t *testing.T) string {
	t.Helper()
	return addrsConfig(fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), fmt.Sprintf("tcp://0.0.0.0:%d", freePort(t)))
}

func addrsConfig(rpc, p2p string) string {
	return fmt.Sprintf("[rpc]\nladdr = %q\n\n[p2p]\nladdr = %q\n", rpc, p2p)
}

// snapshot is everything under dir: for each path its type and mode, a
// symlink's target, a file's content hash. Two equal snapshots mean
// nothing on disk changed.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			v += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			v += " " + hex.EncodeToString(sum[:])
		}
		out[path] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertUnchanged fails if dir differs from before.
func assertUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	var diff []string
	for p, v := range before {
		if after[p] != v {
			diff = append(diff, fmt.Sprintf("%s: %q → %q", p, v, after[p]))
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, fmt.Sprintf("%s: new %q", p, v))
		}
	}
	if len(diff) > 0 {
		t.Fatalf("the refusal changed the disk:\n%s", strings.Join(diff, "\n"))
	}
}
