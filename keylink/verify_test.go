package keylink

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, f fixture)
		link    func(f fixture) string // default f.link
		target  func(f fixture) string // default f.key
		want    bool
		wantErr bool
	}{
		{name: "absolute link to target", want: true,
			setup: func(t *testing.T, f fixture) { symlink(t, f.key, f.link) }},
		{name: "relative link resolving to target", want: true,
			setup: func(t *testing.T, f fixture) { symlink(t, "../../keys/priv_validator_key.json", f.link) }},
		{name: "target given with redundant elements", want: true,
			setup: func(t *testing.T, f fixture) { symlink(t, f.key, f.link) },
			target: func(f fixture) string {
				return filepath.Join(f.root, "keys", ".", "..", "keys", "priv_validator_key.json")
			}},
		{name: "dangling link to target", want: true,
			setup: func(t *testing.T, f fixture) { symlink(t, f.key, f.link); must(t, os.Remove(f.key)) }},
		{name: "link to another file",
			setup: func(t *testing.T, f fixture) { symlink(t, f.voter, f.link) }},
		{name: "regular file with the key's content",
			setup: func(t *testing.T, f fixture) { writeFile(t, f.link, validatorKey) }},
		{name: "nothing at link"},
		{name: "missing parent directory",
			link: func(f fixture) string { return filepath.Join(f.root, "missing", "key.json") }},
		{name: "parent is a file", wantErr: true,
			link: func(f fixture) string { return filepath.Join(f.foreign, "key.json") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(t, f)
			}
			link, target := f.link, f.key
			if tc.link != nil {
				link = tc.link(f)
			}
			if tc.target != nil {
				target = tc.target(f)
			}
			got, err := Verify(link, target)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("Verify = %v, %v; want %v (error: %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestPermissionDenied checks that failures to change the node home come
// back as errors naming the path, with nothing changed.
func TestPermissionDenied(t *testing.T) {
	// Runs as any user: a node home below a regular file cannot be entered.
	t.Run("node home below a regular file", func(t *testing.T) {
		f := newFixture(t)
		f.link = filepath.Join(f.foreign, "config", "priv_validator_key.json")
		if _, err := Clean(f.spec()); !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("Clean error = %v, want ENOTDIR", err)
		}
		if _, err := Link(f.spec(), f.key); err == nil {
			t.Fatal("Link succeeded below a regular file")
		}
		assertFile(t, f.foreign, []byte("foreign"))
	})
	// Mode bits bind only non-root users; the case above covers root.
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores directory mode bits; covered by the node home below a regular file")
		}
		f := newFixture(t)
		writeFile(t, f.link, []byte("node file"))
		must(t, os.Chmod(f.home, 0o500))
		t.Cleanup(func() { os.Chmod(f.home, 0o700) })
		if _, err := Clean(f.spec()); !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("Clean error = %v, want permission denied", err)
		}
		if _, err := Link(f.spec(), f.key); !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("Link over a file error = %v, want permission denied", err)
		}
		assertFile(t, f.link, []byte("node file"))
		assertEntries(t, f.home, filepath.Base(f.link))
		must(t, os.Chmod(f.home, 0o700))
		must(t, os.Remove(f.link))
		must(t, os.Chmod(f.home, 0o500))
		if _, err := Link(f.spec(), f.key); !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("Link into an empty directory error = %v, want permission denied", err)
		}
		assertEntries(t, f.home)
	})
}
