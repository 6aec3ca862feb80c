package keylink

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Sentinel errors, checked with errors.Is. Returned errors wrap them with the
// path and a sentence naming the fix.
var (
	// ErrValidatorKeyFile: the key is a regular file at the link path; nothing was changed.
	ErrValidatorKeyFile = errors.New("validator key found as a regular file where valguard links it")
	// ErrNotManaged: a directory or special file is at the link path; nothing was changed.
	ErrNotManaged = errors.New("path is a directory or special file, not a key file or link")
)

// Spec describes one place where valguard manages a key link.
type Spec struct {
	Link  string   // absolute path of the link, e.g. <home>/config/priv_validator_key.json
	Owned []string // absolute targets valguard itself links here; a symlink to one is ours
	// Protected reports whether the file at path holds the validator's own
	// key. It is called with the path of a regular file found at Link, or
	// with a symlink's resolved target. nil means nothing is protected.
	Protected func(path string) (bool, error)
}

// Outcome says what Clean or Link did to what it found at Spec.Link.
type Outcome struct {
	Removed    bool   // a symlink of ours, or one resolving to the protected key, was removed or replaced
	MovedAside string // a foreign file or symlink was renamed to this path (never deleted)
}

const (
	movedInfix   = ".valguard-moved-"
	tmpInfix     = ".valguard-tmp-"
	stampLayout  = "20060102T150405Z"
	maxMoveNames = 1000 // bounds the search for a free moved-aside name
)

// now names moved-aside files; tests replace it to fix the time.
var now = time.Now

// action is what the rules decide for whatever is at a link path.
type action int

const (
	leave  action = iota // nothing there
	remove               // a symlink of ours, or one resolving to the protected key
	move                 // foreign: move it aside
)

// found is what inspect saw at a link path.
type found struct {
	action  action
	symlink bool
	dest    string // a symlink's target, resolved against the link's directory and cleaned
}

// Clean makes sure nothing is at s.Link, applying the rules in the package
// documentation, and fsyncs the directory if it changed anything. A missing
// parent directory is not an error: nothing is there.
func Clean(s Spec) (Outcome, error) {
	link, err := s.check()
	if err != nil {
		return Outcome{}, err
	}
	f, err := inspect(s, link)
	switch {
	case err != nil || f.action == leave:
		return Outcome{}, err
	case f.action == remove:
		if err := os.Remove(link); err != nil {
			return Outcome{}, pathError("remove link", link, err)
		}
		return Outcome{Removed: true}, syncDir(filepath.Dir(link))
	}
	dst, err := moveAside(link)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{MovedAside: dst}, syncDir(filepath.Dir(link))
}

// Link makes s.Link a symlink to target, an absolute path to an existing
// regular file, after applying the rules in the package documentation. The
// parent directory of s.Link must exist. A link of ours already at s.Link is
// replaced atomically; a link to target already there is left as it is.
func Link(s Spec, target string) (Outcome, error) {
	link, err := s.check()
	if err != nil {
		return Outcome{}, err
	}
	if err := checkTarget(target); err != nil {
		return Outcome{}, err
	}
	target = filepath.Clean(target)
	dir := filepath.Dir(link)
	if err := checkDir(dir); err != nil {
		return Outcome{}, err
	}
	f, err := inspect(s, link)
	if err != nil {
		return Outcome{}, err
	}
	if f.symlink && f.dest == target {
		return Outcome{}, syncDir(dir)
	}
	if f.action == remove {
		if err := replace(link, target); err != nil {
			return Outcome{}, err
		}
		return Outcome{Removed: true}, syncDir(dir)
	}
	var out Outcome
	if f.action == move {
		if out.MovedAside, err = moveAside(link); err != nil {
			return Outcome{}, err
		}
	}
	// Nothing is at link now; symlink(2) fails rather than replace what appears meanwhile.
	if err := os.Symlink(target, link); err != nil {
		return out, pathError("create link", link, err)
	}
	return out, syncDir(dir)
}

// Verify reports whether link is a symlink to target: os.Readlink, resolved
// against the link's directory if relative, equals target after filepath.Clean.
// The target need not exist. Nothing at link is false, not an error.
func Verify(link, target string) (bool, error) {
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, pathError("inspect", link, err)
	case fi.Mode()&fs.ModeSymlink == 0:
		return false, nil
	}
	raw, err := os.Readlink(link)
	if err != nil {
		return false, pathError("read link", link, err)
	}
	return resolve(link, raw) == filepath.Clean(target), nil
}

// check validates the spec and returns the cleaned link path.
func (s Spec) check() (string, error) {
	if !filepath.IsAbs(s.Link) {
		return "", fmt.Errorf("link path %q is not absolute: give the node home as an absolute path", s.Link)
	}
	for _, o := range s.Owned {
		if !filepath.IsAbs(o) {
			return "", fmt.Errorf("owned target %q for %s is not absolute: give key paths as absolute paths", o, s.Link)
		}
	}
	return filepath.Clean(s.Link), nil
}

// owns reports whether dest is one of the spec's owned targets.
func (s Spec) owns(dest string) bool {
	for _, o := range s.Owned {
		if filepath.Clean(o) == dest {
			return true
		}
	}
	return false
}

// protected calls s.Protected, if set, and wraps its error with the path.
func (s Spec) protected(path string) (bool, error) {
	if s.Protected == nil {
		return false, nil
	}
	ok, err := s.Protected(path)
	if err != nil {
		return false, fmt.Errorf("check whether %s holds the validator key: %w", path, err)
	}
	return ok, nil
}

// inspect applies the rules to whatever is at link without changing anything.
func inspect(s Spec, link string) (found, error) {
	fi, err := os.Lstat(link)
	if errors.Is(err, fs.ErrNotExist) {
		return found{action: leave}, nil
	}
	if err != nil {
		return found{}, pathError("inspect", link, err)
	}
	mode := fi.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return inspectSymlink(s, link)
	case mode.IsRegular():
		prot, err := s.protected(link)
		if err != nil {
			return found{}, err
		}
		if prot {
			return found{}, fmt.Errorf("%s: %w: the node would sign without holding the lock; "+
				"move the file out of the node home (e.g. to /etc/valguard or a systemd credential) "+
				"and point --validator-key at it", link, ErrValidatorKeyFile)
		}
		return found{action: move}, nil
	default:
		return found{}, fmt.Errorf("%s is a %s: %w; remove or rename it by hand so valguard can link the key there",
			link, describe(mode), ErrNotManaged)
	}
}

// inspectSymlink classifies the symlink at link: ours, resolving to the
// protected key, or foreign.
func inspectSymlink(s Spec, link string) (found, error) {
	raw, err := os.Readlink(link)
	if err != nil {
		return found{}, pathError("read link", link, err)
	}
	f := found{action: move, symlink: true, dest: resolve(link, raw)}
	if s.owns(f.dest) {
		f.action = remove
		return f, nil
	}
	fi, err := os.Stat(link)
	if dangling(err) {
		return f, nil
	}
	if err != nil {
		return found{}, pathError("follow link", link, err)
	}
	if !fi.Mode().IsRegular() {
		return f, nil
	}
	resolved, err := filepath.EvalSymlinks(link)
	if err != nil {
		return found{}, pathError("resolve link", link, err)
	}
	prot, err := s.protected(resolved)
	if err != nil {
		return found{}, err
	}
	if prot {
		f.action = remove
	}
	return f, nil
}

// dangling reports whether err from following a link means it leads nowhere.
func dangling(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

// resolve returns a symlink's target as an absolute, cleaned path.
func resolve(link, raw string) string {
	if !filepath.IsAbs(raw) {
		raw = filepath.Join(filepath.Dir(link), raw)
	}
	return filepath.Clean(raw)
}

// moveAside renames whatever is at link to a free
// <link>.valguard-moved-<stamp>[-N] name and returns that name.
func moveAside(link string) (string, error) {
	base := link + movedInfix + now().UTC().Format(stampLayout)
	for i := 0; i < maxMoveNames; i++ {
		dst := base
		if i > 0 {
			dst = fmt.Sprintf("%s-%d", base, i)
		}
		switch _, err := os.Lstat(dst); {
		case err == nil:
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return "", pathError("inspect", dst, err)
		}
		if err := os.Rename(link, dst); err != nil {
			return "", pathError("move aside", link, err)
		}
		return dst, nil
	}
	return "", fmt.Errorf("move aside %s: %d names %s[-N] are taken: clear out old moved-aside files",
		link, maxMoveNames, base)
}

// replace atomically swaps the symlink at link for one to target: a temporary
// symlink in the same directory renamed over link. The temporary symlink is
// removed if the rename fails.
func replace(link, target string) error {
	dir, base := filepath.Split(link)
	tmp := filepath.Join(dir, "."+base+tmpInfix+rand.Text())
	if err := os.Symlink(target, tmp); err != nil {
		return pathError("create temporary link", tmp, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		err = pathError("replace link", link, err)
		if rmErr := os.Remove(tmp); rmErr != nil {
			err = errors.Join(err, pathError("remove temporary link", tmp, rmErr))
		}
		return err
	}
	return nil
}

// checkTarget makes sure target is an absolute path to an existing regular file.
func checkTarget(target string) error {
	if !filepath.IsAbs(target) {
		return fmt.Errorf("validator key %q is not an absolute path: give an absolute path to --validator-key", target)
	}
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("validator key %s: %w: check --validator-key", target, unwrapPath(err))
	}
	if err != nil {
		return pathError("validator key", target, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("validator key %s is a %s, not a regular file: check --validator-key", target, describe(fi.Mode()))
	}
	return nil
}

// checkDir makes sure dir exists and is a directory; node-home directories
// are never created here.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("directory %s: %w: valguard never creates node-home directories; "+
			"initialise the node home first", dir, unwrapPath(err))
	}
	if err != nil {
		return pathError("inspect directory", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is a %s, not a directory: check the node home path", dir, describe(fi.Mode()))
	}
	return nil
}

// syncDir fsyncs dir so that renames and links in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return pathError("open directory", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return pathError("sync directory", dir, err)
	}
	return nil
}

// pathError wraps err with what was being done to path. Permission errors
// also name the fix. The wrapped error keeps its errno, so errors.Is with
// fs.ErrPermission or fs.ErrNotExist still holds.
func pathError(op, path string, err error) error {
	err = unwrapPath(err)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s %s: %w: run valguard as a user with write access to %s", op, path, err, filepath.Dir(path))
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// unwrapPath strips the os path error types, whose messages repeat the path
// the caller's message already names.
func unwrapPath(err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		return e.Err
	case *os.LinkError:
		return e.Err
	}
	return err
}

// describe names the kind of a non-regular file for error messages.
func describe(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "directory"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode.IsRegular():
		return "regular file"
	default:
		return "special file"
	}
}
