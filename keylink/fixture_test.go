package keylink

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var (
	validatorKey = []byte(`{"priv_key":"validator"}`)
	errBoom      = errors.New("key check failed")
	errAny       = errors.New("any error") // a case that expects some error, whatever it wraps
)

const stamp = "20240102T030405Z"

// fixture is a node home and, outside it, the key files valguard links in.
type fixture struct {
	root, home, link string
	key, voter       string // owned targets; key holds the validator key
	foreign, copy    string // not owned; copy also holds the validator key
	moved            string // the first moved-aside name for link
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	fixClock(t, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	root := t.TempDir()
	f := fixture{
		root:    root,
		home:    filepath.Join(root, "home", "config"),
		key:     filepath.Join(root, "keys", "priv_validator_key.json"),
		voter:   filepath.Join(root, "keys", "voter_key.json"),
		foreign: filepath.Join(root, "other", "foreign.json"),
		copy:    filepath.Join(root, "old", "priv_validator_key.json"),
	}
	f.link = filepath.Join(f.home, "priv_validator_key.json")
	f.moved = f.link + ".valguard-moved-" + stamp
	for _, d := range []string{f.home, filepath.Dir(f.key), filepath.Dir(f.foreign), filepath.Dir(f.copy)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, f.key, validatorKey)
	writeFile(t, f.copy, validatorKey)
	writeFile(t, f.voter, []byte("voter"))
	writeFile(t, f.foreign, []byte("foreign"))
	return f
}

func (f fixture) spec() Spec {
	return Spec{Link: f.link, Owned: []string{f.key, f.voter}, Protected: holdsValidatorKey}
}

// holdsValidatorKey recognises the validator key by its content.
func holdsValidatorKey(path string) (bool, error) {
	b, err := os.ReadFile(path)
	return bytes.Equal(b, validatorKey), err
}

func fixClock(t *testing.T, at time.Time) {
	t.Helper()
	old := now
	now = func() time.Time { return at }
	t.Cleanup(func() { now = old })
}

// must fails the test on a setup error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// assertFile checks that path is a regular file holding content.
func assertFile(t *testing.T, path string, content []byte) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("expected regular file: %v", err)
	}
	if !fi.Mode().IsRegular() {
		t.Fatalf("%s: mode %v, want a regular file", path, fi.Mode())
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("%s holds %q (err %v), want %q", path, b, err, content)
	}
}

// assertLink checks that path is a symlink whose raw target is target.
func assertLink(t *testing.T, path, target string) {
	t.Helper()
	if got, err := os.Readlink(path); err != nil || got != target {
		t.Fatalf("readlink %s = %q, %v; want %q", path, got, err, target)
	}
}

func assertAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: want nothing there, lstat err = %v", path, err)
	}
}

// assertEntries checks that dir holds exactly the named entries (so no
// temporary links are left behind).
func assertEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range des {
		got = append(got, de.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

func assertErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == errAny && err == nil, want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}
