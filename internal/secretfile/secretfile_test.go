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
