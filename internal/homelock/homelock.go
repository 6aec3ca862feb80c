// Package homelock keeps one valguard per node home: Acquire takes an
// exclusive flock(2) on a lock file, and a second valguard on the same
// home is refused, naming the process that holds it.
//
// The lock is tied to the open file description, not to the file: it is
// released by Close and, whatever happens, when the holding process dies
// (the kernel drops it with the last descriptor), so a crashed valguard
// never blocks its restart. The descriptor is close-on-exec: the node
// valguard starts does not inherit it, and a node left running does not
// keep the lock. Because the lock belongs to the open file description,
// two Acquire calls in one process conflict as two processes do.
//
// The flock(2) call is github.com/gofrs/flock's (its Linux build uses
// flock, not fcntl, so the lock belongs to the open file description as
// above). The holder's record is ours: the library does not hand out its
// descriptor, so the record is written through a second one, checked to
// be the locked file; closing it does not release a flock lock.
//
// Not guaranteed: flock on a network file system (NFS, CIFS) may be
// local to one client; two machines sharing a home over one are not kept
// apart. A node home is meant to be local.
package homelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gofrs/flock"
)

// FileName is the lock file's name inside the directory given to Acquire.
const FileName = "lock"

// ErrHeld is wrapped by Acquire's error when another open file (another
// process, or another Lock in this one) holds the lock.
var ErrHeld = errors.New("another valguard already supervises this node home")

// Lock is a held home lock.
type Lock struct {
	fl   *flock.Flock
	path string
}

// Acquire takes the lock on dir/FileName without waiting. dir is created
// (mode 0700) if it is missing, but not its parent: a missing parent is
// an error, so a mistyped home creates nothing. After the lock is taken,
// the file holds the holder's PID and command line.
//
// A refusal (ErrHeld) changes nothing on disk: the lock file, already
// there, is opened without truncation, and the holder's PID stays. Other
// errors leave at most dir and an empty lock file behind.
func Acquire(dir string) (*Lock, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create %s for the node home lock: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	// os.OpenFile, which the library calls, adds O_CLOEXEC.
	fl := flock.New(path, flock.SetFlag(os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW), flock.SetPermissions(0o600))
	locked, err := fl.TryLock()
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Op == "open" {
			return nil, fmt.Errorf("open the node home lock %s: %w", path, err)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !locked {
		return nil, fmt.Errorf("%w (lock %s held by %s): stop it, or give this one another --node-home", ErrHeld, path, holder(path))
	}
	l := &Lock{fl: fl, path: path}
	if err := l.record(); err != nil {
		l.Close()
		return nil, fmt.Errorf("write the holder into %s: %w", path, err)
	}
	return l, nil
}

// record writes "pid\ncmdline\n" into the locked file, through a second
// descriptor of the same file.
func (l *Lock) record() error {
	locked, err := l.fl.Stat()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if !os.SameFile(fi, locked) {
		return errors.New("the lock file was replaced while it was being locked")
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	content := strconv.Itoa(os.Getpid()) + "\n" + strings.Join(os.Args, " ") + "\n"
	if _, err := f.WriteAt([]byte(content), 0); err != nil {
		return err
	}
	return f.Sync()
}

// holder describes the process named in the lock file: "pid N (cmdline)"
// from /proc when readable, else what the file says.
func holder(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "an unknown process (" + err.Error() + ")"
	}
	first, rest, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return "an unknown process (no PID in the lock file yet)"
	}
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmd) > 0 {
		return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	if rest = strings.TrimSpace(rest); rest != "" {
		return fmt.Sprintf("pid %d (%s, as it recorded)", pid, rest)
	}
	return fmt.Sprintf("pid %d", pid)
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Close releases the lock. The file stays (removing it could let two
// processes lock two different files of the same name).
func (l *Lock) Close() error {
	if l == nil || l.fl == nil {
		return nil
	}
	err := l.fl.Close()
	l.fl = nil
	return err
}
