package replica

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		external      bool
		home          string
		homeSet       bool
		stateDir, env string
		want, err     string
	}{
		{name: "node home", home: "/h", homeSet: true, want: "/h/valguard"},
		{name: "no node home", err: "--node-home is required"},
		{name: "external with a node home", external: true, home: "/h", homeSet: true, err: "--node-home is not used with --node external"},
		{name: "external with --state-dir", external: true, stateDir: dir, want: dir},
		{name: "external with $STATE_DIRECTORY", external: true, env: dir, want: dir},
		{name: "--state-dir wins over $STATE_DIRECTORY", external: true, stateDir: dir, env: "/nowhere", want: dir},
		{name: "external without a state directory", external: true, err: "--node external needs --state-dir"},
		{name: "state directory not a directory", external: true, stateDir: file, err: "not a directory"},
		{name: "state directory missing", external: true, stateDir: filepath.Join(dir, "none"), err: "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", tc.env)
			got, err := StateDir(tc.external, tc.home, tc.homeSet, tc.stateDir)
			switch {
			case tc.err == "" && (err != nil || got != tc.want):
				t.Fatalf("= %q, %v; want %q", got, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want it to say %q", err, tc.err)
			}
		})
	}
}

func TestLabel(t *testing.T) {
	labels := []string{"ABCD", "pool.near"}
	for _, tc := range []struct{ id, want, err string }{
		{"", "ABCD", ""},
		{"abcd", "ABCD", ""},
		{"POOL.NEAR", "pool.near", ""},
		{"other", "", `--validator-id "other" does not name the validator key /k (it is "ABCD" or "pool.near")`},
	} {
		got, err := Label(tc.id, labels, "/k", "LOCK")
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Label(%q) = %q, %v; want %q", tc.id, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "valguard/LOCK/leader")):
			t.Errorf("Label(%q): err = %v, want it to say %q", tc.id, err, tc.err)
		}
	}
}

func TestLockUsedHome(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valguard")
	l, err := LockUsedHome(dir)
	if err != nil || l != nil {
		t.Fatalf("new home: lock %v, err %v; want none", l, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("new home: %s was created (%v)", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err = LockUsedHome(dir)
	if err != nil || l == nil {
		t.Fatalf("used home: lock %v, err %v; want the lock", l, err)
	}
	defer l.Close()
	if second, err := LockUsedHome(dir); err == nil {
		second.Close()
		t.Fatal("a second lock on a held home was granted")
	}
}
