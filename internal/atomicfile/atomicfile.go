// Package atomicfile writes files so that a crash leaves either the old or
// the new content, never a mix: temp file in the same directory, fsync,
// rename, fsync the directory. Callers persist this way before they act on
// what they wrote (sign state, key links, node configuration).
//
// The temp file, its fsync and the rename are github.com/google/renameio/v2's;
// the directory fsync is ours, because renameio does not make the rename
// itself durable.
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Write replaces path with data, with mode perm (exactly perm: neither
// the umask nor the mode of the file it replaces changes it).
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	// WithTempDir keeps the temp file beside path (renameio would
	// otherwise try os.TempDir first); WithStaticPermissions chmods it to
	// perm. renameio.WriteFile is not used: it keeps the mode of the file
	// it replaces.
	t, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(perm))
	if err != nil {
		return err
	}
	defer t.Cleanup() // removes the temp file unless the rename happened
	if _, err := t.Write(data); err != nil {
		return err
	}
	if err := t.CloseAtomicallyReplace(); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
