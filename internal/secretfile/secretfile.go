// Package secretfile finds and judges files that hold secrets (the
// validator key, a systemd credential, the Consul token) before valguard
// reads them.
package secretfile

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// CheckPrivate refuses a secret file (the validator key, the Consul token)
// that others can read or that belongs to another user, as ssh refuses a
// loose private key, naming the chmod or chown that fixes it. Files under
// $CREDENTIALS_DIRECTORY are exempt: systemd makes them private to the
// service. A symlink is judged by the file it points to. flag names the
// setting in the message (--flag).
func CheckPrivate(path, flag string) error {
	if underCredentials(path) {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil // reading it reports the problem with context
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := os.Geteuid()
	if int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("--%s %s belongs to uid %d, not to the user valguard runs as (%s): "+
			"run `chown %s %s` (or run valguard as its owner)", flag, path, st.Uid, userName(uid), userName(uid), path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("--%s %s is readable or writable by group or others (mode %04o): run `chmod 600 %s`",
			flag, path, perm, path)
	}
	return nil
}

// underCredentials reports whether path lies in $CREDENTIALS_DIRECTORY.
func underCredentials(path string) bool {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return false
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), abs)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// Credential is path when set, else the file name under
// $CREDENTIALS_DIRECTORY (a systemd credential); "" when neither and not
// required. flag and env name the setting that gives path, for the
// message.
func Credential(path, flag, env, name string, required bool) (string, error) {
	if path != "" {
		return path, nil
	}
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if required {
			return "", fmt.Errorf("no --%s and no %s in $CREDENTIALS_DIRECTORY (%s): set one of them", flag, name, dir)
		}
		return "", nil
	}
	if required {
		return "", errors.New("no validator key: set --" + flag + " (or " + env + ", or a systemd credential named " + name + ")")
	}
	return "", nil
}
