package secretfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path string, mode os.FileMode) string {
		if err := os.WriteFile(path, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	private := write(filepath.Join(dir, "private"), 0o600)
	readOnly := write(filepath.Join(dir, "readonly"), 0o400)
	groupRead := write(filepath.Join(dir, "group"), 0o640)
	worldRead := write(filepath.Join(dir, "world"), 0o604)
	credential := write(filepath.Join(creds, "key"), 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(worldRead, link); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	for _, tc := range []struct {
		path string
		want string
	}{
		{private, ""},
		{readOnly, ""},
		{groupRead, "mode 0640"},
		{worldRead, "mode 0604"},
		{link, "chmod 600 " + link},
		{credential, ""},
		{filepath.Join(dir, "absent"), ""}, // reading it reports that
	} {
		err := CheckPrivate(tc.path, "validator-key")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s refused: %v", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want it to say %q", tc.path, err, tc.want)
		}
	}
	if os.Geteuid() == 0 {
		// Owned by another user: only root can make such a file here.
		other := write(filepath.Join(dir, "other"), 0o600)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := CheckPrivate(other, "validator-key"); err == nil || !strings.Contains(err.Error(), "run `chown") {
			t.Errorf("a key owned by uid 65534 accepted: %v", err)
		}
	}
}

func TestCredential(t *testing.T) {
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "key.json"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, dir, cred string
		required              bool
		want, err             string
	}{
		{name: "given", path: "/k", dir: creds, cred: "key.json", required: true, want: "/k"},
		{name: "credential", dir: creds, cred: "key.json", required: true, want: filepath.Join(creds, "key.json")},
		{name: "credential missing, required", dir: creds, cred: "other.json", required: true, err: "no --validator-key and no other.json in $CREDENTIALS_DIRECTORY"},
		{name: "credential missing, optional", dir: creds, cred: "other.json"},
		{name: "nothing, required", cred: "key.json", required: true, err: "no validator key: set --validator-key (or VALGUARD_VALIDATOR_KEY, or a systemd credential named key.json)"},
		{name: "nothing, optional", cred: "key.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CREDENTIALS_DIRECTORY", tc.dir)
			got, err := Credential(tc.path, "validator-key", "VALGUARD_VALIDATOR_KEY", tc.cred, tc.required)
			switch {
			case tc.err == "" && (err != nil || got != tc.want):
				t.Fatalf("= %q, %v; want %q", got, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want it to say %q", err, tc.err)
			}
		})
	}
}
