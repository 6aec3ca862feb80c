// Package keylink puts key files into a node home as symlinks and takes them
// out again, so that a node has the validator key only while its replica holds
// the lock (safety rule S2).
//
// A [Spec] names one place where valguard manages a link (for example
// <home>/config/priv_validator_key.json), the targets valguard itself links
// there, and how to recognise the validator's own key. [Clean] makes sure
// nothing is at that place; [Link] makes it a symlink to a key file; [Verify]
// reports whether it is one.
//
// # What is found at the link path
//
// Clean and Link first deal with whatever is already at Spec.Link:
//
//   - nothing (or, for Clean, a missing parent directory): nothing to do;
//   - a symlink, dangling or not, to one of Spec.Owned: removed;
//   - a symlink that resolves to a regular file Spec.Protected reports as the
//     validator key: removed (the key itself stays where it is);
//   - any other symlink: moved aside;
//   - a regular file Spec.Protected reports as the validator key: refused with
//     [ErrValidatorKeyFile], nothing changed. A node home holding the key as
//     a plain file would sign whether or not its replica holds the lock;
//   - any other regular file: moved aside;
//   - a directory or special file: refused with [ErrNotManaged], nothing
//     changed.
//
// Moved aside means renamed to <Link>.valguard-moved-<UTC 20060102T150405Z>,
// with -1, -2, ... appended when that name is taken. A regular file is never
// deleted and a moved-aside name is never overwritten. If Spec.Protected fails,
// the error is returned and nothing is changed.
//
// # Guarantees
//
//   - Clean returns nil only if it found nothing at Spec.Link or removed or
//     moved aside what it found, and any change it made is durable (the
//     directory is fsynced).
//   - Link returns nil only if Spec.Link is a symlink to the target and the
//     directory has been fsynced. A link of ours that is already there is
//     replaced atomically (temporary symlink, rename, directory fsync): the
//     path never holds anything but the old link or the new one. When the path
//     is empty, the link is created directly and creation fails rather than
//     replace anything that appeared meanwhile.
//   - Link never creates directories: the node home must exist.
//   - Every error names the path involved; permission errors still satisfy
//     errors.Is(err, fs.ErrPermission). On error, the returned [Outcome] still
//     reports what had already been done.
//
// # Not guaranteed
//
//   - keylink assumes valguard is the only writer of the link path while
//     Clean or Link runs (one supervisor per node home). Another process that
//     puts a file there between the check and the removal or rename can have
//     that file replaced.
//   - Removing or replacing a link does not stop a node that already opened
//     the key: stopping the node is the caller's job, and must happen first.
//   - A symlink to a target not listed in Spec.Owned is foreign to Clean, even
//     if Link made it: list every target valguard links in Spec.Owned.
//
// The package does not log; callers log the Outcome and errors it returns.
package keylink
