package keylink

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture) // may change f.link; spec() follows
		spec    func(s Spec) Spec
		want    func(f fixture) Outcome
		wantErr error
		check   func(t *testing.T, f fixture)
	}{
		{name: "nothing at link", check: func(t *testing.T, f fixture) { assertEntries(t, f.home) }},
		{name: "missing parent directory is a no-op",
			setup: func(t *testing.T, f *fixture) { f.link = filepath.Join(f.root, "missing", "config", "key.json") },
			check: func(t *testing.T, f fixture) { assertAbsent(t, filepath.Dir(f.link)) }},
		{name: "owned link removed, target untouched",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.key, f.link) },
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home); assertFile(t, f.key, validatorKey) }},
		{name: "dangling owned link removed",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.voter, f.link); must(t, os.Remove(f.voter)) },
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home) }},
		{name: "relative owned link removed",
			setup: func(t *testing.T, f *fixture) { symlink(t, "../../keys/voter_key.json", f.link) },
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home) }},
		{name: "foreign link moved aside, target untouched",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.foreign, f.link) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) {
				assertAbsent(t, f.link)
				assertLink(t, f.moved, f.foreign)
				assertFile(t, f.foreign, []byte("foreign"))
			}},
		{name: "dangling foreign link moved aside",
			setup: func(t *testing.T, f *fixture) { symlink(t, "/nonexistent/key.json", f.link) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) {
				assertAbsent(t, f.link)
				assertLink(t, f.moved, "/nonexistent/key.json")
			}},
		{name: "foreign link to a directory moved aside",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.root, f.link) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) { assertLink(t, f.moved, f.root) }},
		{name: "regular file moved aside with content intact",
			setup: func(t *testing.T, f *fixture) { writeFile(t, f.link, []byte("node file")) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) { assertAbsent(t, f.link); assertFile(t, f.moved, []byte("node file")) }},
		{name: "protected regular file refused and unchanged",
			setup:   func(t *testing.T, f *fixture) { writeFile(t, f.link, validatorKey) },
			wantErr: ErrValidatorKeyFile,
			check: func(t *testing.T, f fixture) {
				assertFile(t, f.link, validatorKey)
				assertEntries(t, f.home, filepath.Base(f.link))
			}},
		{name: "link resolving to protected key removed, key untouched",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.copy, f.link) },
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home); assertFile(t, f.copy, validatorKey) }},
		{name: "link through another link to protected key removed",
			setup: func(t *testing.T, f *fixture) {
				alias := filepath.Join(f.root, "alias.json")
				symlink(t, f.key, alias)
				symlink(t, alias, f.link)
			},
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home); assertFile(t, f.key, validatorKey) }},
		{name: "nil Protected moves a key file aside",
			setup: func(t *testing.T, f *fixture) { writeFile(t, f.link, validatorKey) },
			spec:  func(s Spec) Spec { s.Protected = nil; return s },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) { assertFile(t, f.moved, validatorKey) }},
		{name: "failing Protected changes nothing",
			setup:   func(t *testing.T, f *fixture) { writeFile(t, f.link, []byte("node file")) },
			spec:    func(s Spec) Spec { s.Protected = func(string) (bool, error) { return false, errBoom }; return s },
			wantErr: errBoom,
			check:   func(t *testing.T, f fixture) { assertFile(t, f.link, []byte("node file")) }},
		{name: "directory refused",
			setup:   func(t *testing.T, f *fixture) { must(t, os.Mkdir(f.link, 0o700)) },
			wantErr: ErrNotManaged,
			check: func(t *testing.T, f fixture) {
				if fi, err := os.Lstat(f.link); err != nil || !fi.IsDir() {
					t.Fatalf("directory gone: %v", err)
				}
			}},
		{name: "named pipe refused",
			setup: func(t *testing.T, f *fixture) {
				if err := syscall.Mkfifo(f.link, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotManaged,
			check:   func(t *testing.T, f fixture) { assertEntries(t, f.home, filepath.Base(f.link)) }},
		{name: "parent is a file",
			setup:   func(t *testing.T, f *fixture) { f.link = filepath.Join(f.foreign, "config", "key.json") },
			wantErr: errAny},
		{name: "relative link path refused",
			setup:   func(t *testing.T, f *fixture) { f.link = "config/key.json" },
			wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(t, &f)
			}
			s := f.spec()
			if tc.spec != nil {
				s = tc.spec(s)
			}
			out, err := Clean(s)
			assertErr(t, err, tc.wantErr)
			var want Outcome
			if tc.want != nil {
				want = tc.want(f)
			}
			if out != want {
				t.Fatalf("outcome = %+v, want %+v", out, want)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestLink(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture) // may change f.link
		target  func(f fixture) string         // default f.key
		want    func(f fixture) Outcome
		wantErr error
		check   func(t *testing.T, f fixture) // runs after Link; on success the link is checked too
	}{
		{name: "nothing at link",
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home, filepath.Base(f.link)) }},
		{name: "stale link to an owned target replaced",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.voter, f.link) },
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) {
				assertEntries(t, f.home, filepath.Base(f.link))
				assertFile(t, f.voter, []byte("voter"))
			}},
		{name: "link resolving to protected key replaced",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.copy, f.link) },
			want:  func(fixture) Outcome { return Outcome{Removed: true} },
			check: func(t *testing.T, f fixture) { assertFile(t, f.copy, validatorKey) }},
		{name: "foreign link moved aside",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.foreign, f.link) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) {
				assertLink(t, f.moved, f.foreign)
				assertFile(t, f.foreign, []byte("foreign"))
				assertEntries(t, f.home, filepath.Base(f.link), filepath.Base(f.moved))
			}},
		{name: "dangling foreign link moved aside",
			setup: func(t *testing.T, f *fixture) { symlink(t, "missing.json", f.link) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) { assertLink(t, f.moved, "missing.json") }},
		{name: "regular file moved aside with content intact",
			setup: func(t *testing.T, f *fixture) { writeFile(t, f.link, []byte("node file")) },
			want:  func(f fixture) Outcome { return Outcome{MovedAside: f.moved} },
			check: func(t *testing.T, f fixture) { assertFile(t, f.moved, []byte("node file")) }},
		{name: "already linked is idempotent",
			setup: func(t *testing.T, f *fixture) { symlink(t, f.key, f.link) },
			check: func(t *testing.T, f fixture) { assertEntries(t, f.home, filepath.Base(f.link)) }},
		{name: "already linked by a relative path is left as is",
			setup: func(t *testing.T, f *fixture) { symlink(t, "../../keys/priv_validator_key.json", f.link) },
			check: func(t *testing.T, f fixture) { assertLink(t, f.link, "../../keys/priv_validator_key.json") }},
		{name: "protected regular file refused and unchanged",
			setup:   func(t *testing.T, f *fixture) { writeFile(t, f.link, validatorKey) },
			wantErr: ErrValidatorKeyFile,
			check: func(t *testing.T, f fixture) {
				assertFile(t, f.link, validatorKey)
				assertEntries(t, f.home, filepath.Base(f.link))
			}},
		{name: "directory refused",
			setup:   func(t *testing.T, f *fixture) { must(t, os.Mkdir(f.link, 0o700)) },
			wantErr: ErrNotManaged},
		{name: "missing parent directory not created",
			setup:   func(t *testing.T, f *fixture) { f.link = filepath.Join(f.root, "missing", "config", "key.json") },
			wantErr: fs.ErrNotExist,
			check:   func(t *testing.T, f fixture) { assertAbsent(t, filepath.Dir(f.link)) }},
		{name: "missing target changes nothing",
			setup:   func(t *testing.T, f *fixture) { writeFile(t, f.link, []byte("node file")) },
			target:  func(f fixture) string { return filepath.Join(f.root, "keys", "missing.json") },
			wantErr: fs.ErrNotExist,
			check: func(t *testing.T, f fixture) {
				assertFile(t, f.link, []byte("node file"))
				assertEntries(t, f.home, filepath.Base(f.link))
			}},
		{name: "relative target refused",
			target:  func(fixture) string { return "keys/priv_validator_key.json" },
			wantErr: errAny,
			check:   func(t *testing.T, f fixture) { assertEntries(t, f.home) }},
		{name: "directory target refused",
			target:  func(f fixture) string { return filepath.Dir(f.key) },
			wantErr: errAny,
			check:   func(t *testing.T, f fixture) { assertEntries(t, f.home) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(t, &f)
			}
			target := f.key
			if tc.target != nil {
				target = tc.target(f)
			}
			out, err := Link(f.spec(), target)
			assertErr(t, err, tc.wantErr)
			var want Outcome
			if tc.want != nil {
				want = tc.want(f)
			}
			if out != want {
				t.Fatalf("outcome = %+v, want %+v", out, want)
			}
			if err == nil {
				if ok, err := Verify(f.link, target); err != nil || !ok {
					t.Fatalf("Verify after Link = %v, %v; want true", ok, err)
				}
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestLinkPointsAtTarget(t *testing.T) {
	f := newFixture(t)
	if _, err := Link(f.spec(), f.key); err != nil {
		t.Fatal(err)
	}
	assertLink(t, f.link, f.key)
	assertFile(t, f.key, validatorKey)
}

func TestLinkOverLinkLeavesNoTemporaryFiles(t *testing.T) {
	f := newFixture(t)
	for i, target := range []string{f.key, f.voter, f.key, f.key, f.voter} {
		if _, err := Link(f.spec(), target); err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
		assertLink(t, f.link, target)
		assertEntries(t, f.home, filepath.Base(f.link))
	}
}

func TestLinkThenCleanRemovesLink(t *testing.T) {
	f := newFixture(t)
	if _, err := Link(f.spec(), f.key); err != nil {
		t.Fatal(err)
	}
	out, err := Clean(f.spec())
	if err != nil || out != (Outcome{Removed: true}) {
		t.Fatalf("Clean = %+v, %v; want removed", out, err)
	}
	assertEntries(t, f.home)
	assertFile(t, f.key, validatorKey)
}

func TestMoveAsideInSameSecondGetsDistinctNames(t *testing.T) {
	f := newFixture(t) // the clock is fixed: every move happens in the same second
	contents := []string{"first", "second", "third"}
	var got []string
	for _, c := range contents {
		writeFile(t, f.link, []byte(c))
		out, err := Clean(f.spec())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out.MovedAside)
	}
	writeFile(t, f.link, []byte("fourth"))
	out, err := Link(f.spec(), f.key)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, out.MovedAside)
	contents = append(contents, "fourth")
	want := []string{f.moved, f.moved + "-1", f.moved + "-2", f.moved + "-3"}
	if !slices.Equal(got, want) {
		t.Fatalf("moved aside to %q, want %q", got, want)
	}
	for i, p := range want {
		assertFile(t, p, []byte(contents[i]))
	}
	assertLink(t, f.link, f.key)
}

func TestErrorsNameThePathAndTheFix(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f fixture) error
		want func(f fixture) []string
	}{
		{name: "validator key file in node home",
			run: func(t *testing.T, f fixture) error {
				writeFile(t, f.link, validatorKey)
				_, err := Clean(f.spec())
				return err
			},
			want: func(f fixture) []string {
				return []string{f.link, "without holding the lock", "/etc/valguard", "--validator-key"}
			}},
		{name: "missing target",
			run: func(t *testing.T, f fixture) error {
				_, err := Link(f.spec(), f.key+".missing")
				return err
			},
			want: func(f fixture) []string { return []string{f.key + ".missing", "--validator-key"} }},
		{name: "missing node home",
			run: func(t *testing.T, f fixture) error {
				f.link = filepath.Join(f.root, "missing", "priv_validator_key.json")
				_, err := Link(f.spec(), f.key)
				return err
			},
			want: func(f fixture) []string { return []string{filepath.Join(f.root, "missing"), "never creates"} }},
		{name: "directory at link",
			run: func(t *testing.T, f fixture) error {
				if err := os.Mkdir(f.link, 0o700); err != nil {
					return err
				}
				_, err := Clean(f.spec())
				return err
			},
			want: func(f fixture) []string { return []string{f.link, "directory", "by hand"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			err := tc.run(t, f)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want(f) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
