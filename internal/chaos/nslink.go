package chaos

// The namespace and link primitives the drill's network is made of, over
// netlink (github.com/vishvananda/netlink, netns).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netnsDir holds the named namespaces (bind mounts of their nsfs files),
// where netns.NewNamed puts them and `ip netns` and nsenter find them.
const netnsDir = "/run/netns"

// newNamedNS creates the named namespace name and returns a handle to it.
// netns.NewNamed moves the calling thread into the new namespace; the
// thread is locked to the call and moved back before it is released. That
// matters beyond the goroutines: on the main thread, it would put the
// whole process in the namespace as /proc/<pid>/ns/net (and NSPids) see
// it. A thread that cannot be moved back stays locked, and Go ends it with
// its goroutine.
func newNamedNS(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{netns.None(), err}
			return
		}
		defer origin.Close()
		ns, err := netns.NewNamed(name)
		if serr := netns.Set(origin); serr != nil {
			if err == nil {
				ns.Close()
				_ = deleteNS(name)
				err = fmt.Errorf("back to the original namespace: %w", serr)
			}
			ch <- result{netns.None(), err}
			return // the thread stays locked and ends with the goroutine
		}
		runtime.UnlockOSThread()
		if err != nil && !errors.Is(err, fs.ErrExist) {
			// A failed mount leaves the file NewNamed created.
			_ = os.Remove(filepath.Join(netnsDir, name))
		}
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		return netns.None(), fmt.Errorf("create network namespace %s: %w", name, r.err)
	}
	return r.ns, nil
}

// deleteNS deletes the named namespace name as `ip netns del` does: a
// lazy unmount, then the file, which is removed even when it was no longer
// a mount point.
func deleteNS(name string) error {
	if err := netns.DeleteNamed(name); err != nil {
		if rerr := os.Remove(filepath.Join(netnsDir, name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("delete network namespace %s: %w", name, err)
		}
	}
	return nil
}

// setUp sets link name up (or down) through h.
func setUp(h *netlink.Handle, name string, up bool) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if up {
		err = h.LinkSetUp(l)
	} else {
		err = h.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set link %s up=%t: %w", name, up, err)
	}
	return nil
}

// addAddr gives link name the address cidr through h.
func addAddr(h *netlink.Handle, name, cidr string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", cidr, name, err)
	}
	return nil
}

// rootHandle is a netlink handle in the root namespace (the package's
// own handle, netlink.Link* functions).
var rootHandle = &netlink.Handle{}

// delLink deletes link name in the root namespace if it is there (a veth
// goes with its peer, so one of a pair may already be gone).
func delLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(l)
	}
}
