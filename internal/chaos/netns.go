package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// namePrefix starts every namespace, link and file a run creates.
const namePrefix = "vgc"

// runDir holds one file per live run (<prefix>.pid), so that a sweep
// removes only what dead runs left.
const runDir = "/run/valguard-chaos"

// Network is a run's namespaces, bridges and veth pairs.
type Network struct {
	Prefix string // namePrefix + 4 hex digits
	Subnet int    // X in 10.213.X.0/24 and 10.214.X.0/24

	namespaces []string
	links      []string // host-side links, deleted at Close
	mounts     []string
}

// ChainIP is the address of host h (1: the root namespace) on the chain
// bridge.
func (n *Network) ChainIP(h int) string { return fmt.Sprintf("10.213.%d.%d", n.Subnet, h) }

// ConsulIP is the address of host h on the Consul bridge.
func (n *Network) ConsulIP(h int) string { return fmt.Sprintf("10.214.%d.%d", n.Subnet, h) }

// Tools returns an error naming the tools the drill needs that are missing.
// Namespaces, bridges and veth pairs are made over netlink, without ip.
func Tools() error {
	var missing []string
	for _, t := range []string{"nsenter", "mount", "umount"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("chaos: missing tools: %s (util-linux has them)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return errors.New("chaos: needs root (network namespaces, veth pairs, mounts)")
	}
	return nil
}

// NewNetwork sweeps the leftovers of dead runs, then creates the two
// bridges in the root namespace with their addresses.
func NewNetwork(ctx context.Context) (*Network, error) {
	Sweep(ctx)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	n := &Network{Prefix: namePrefix + hex.EncodeToString(b[:2]), Subnet: int(b[2])%200 + 20}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(runDir, n.Prefix+".pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	for _, br := range []struct {
		name, addr string
	}{{n.Prefix + "bc", n.ChainIP(1)}, {n.Prefix + "bk", n.ConsulIP(1)}} {
		n.links = append(n.links, br.name)
		attrs := netlink.NewLinkAttrs()
		attrs.Name = br.name
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			n.Close()
			return nil, fmt.Errorf("add bridge %s: %w", br.name, err)
		}
		if err := addAddr(rootHandle, br.name, br.addr+"/24"); err != nil {
			n.Close()
			return nil, err
		}
		if err := setUp(rootHandle, br.name, true); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// AddHost creates namespace <prefix>-<name> with loopback up and one veth
// per bridge asked for: chain (address ChainIP(host)) and/or consul
// (ConsulIP(host)). It returns the namespace's name.
func (n *Network) AddHost(ctx context.Context, name string, host int, chain, consul bool) (string, error) {
	ns := n.Prefix + "-" + name
	handle, err := newNamedNS(ns)
	if err != nil {
		return "", err
	}
	defer handle.Close()
	n.namespaces = append(n.namespaces, ns)
	in, err := netlink.NewHandleAt(handle)
	if err != nil {
		return "", fmt.Errorf("netlink in %s: %w", ns, err)
	}
	defer in.Close()
	if err := setUp(in, "lo", true); err != nil {
		return "", fmt.Errorf("%s: %w", ns, err)
	}
	add := func(suffix, bridge, addr string) error {
		host, peer := n.Prefix+name+suffix, "eth"+suffix
		n.links = append(n.links, host)
		attrs := netlink.NewLinkAttrs()
		attrs.Name = host
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: peer, PeerNamespace: netlink.NsFd(int(handle))}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s (peer %s in %s): %w", host, peer, ns, err)
		}
		hl, err := netlink.LinkByName(host)
		if err != nil {
			return fmt.Errorf("link %s: %w", host, err)
		}
		bl, err := netlink.LinkByName(bridge)
		if err != nil {
			return fmt.Errorf("link %s: %w", bridge, err)
		}
		if err := netlink.LinkSetMaster(hl, bl); err != nil {
			return fmt.Errorf("put %s on bridge %s: %w", host, bridge, err)
		}
		if err := setUp(rootHandle, host, true); err != nil {
			return err
		}
		if err := addAddr(in, peer, addr+"/24"); err != nil {
			return fmt.Errorf("%s: %w", ns, err)
		}
		if err := setUp(in, peer, true); err != nil {
			return fmt.Errorf("%s: %w", ns, err)
		}
		return nil
	}
	if chain {
		if err := add("c", n.Prefix+"bc", n.ChainIP(host)); err != nil {
			return "", err
		}
	}
	if consul {
		if err := add("k", n.Prefix+"bk", n.ConsulIP(host)); err != nil {
			return "", err
		}
	}
	return ns, nil
}

// SetLink takes the host-side veth of host name on the chain ("c") or
// Consul ("k") bridge down or up: a partition at the link layer.
func (n *Network) SetLink(ctx context.Context, name, bridge string, up bool) error {
	return setUp(rootHandle, n.Prefix+name+bridge, up)
}

// Mount mounts a tmpfs of size bytes on dir (created if missing) and
// records it for Close.
func (n *Network) Mount(ctx context.Context, dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), n.Prefix, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w: %s", dir, err, out)
	}
	n.mounts = append(n.mounts, dir)
	return nil
}

// NSPids lists the processes in namespace ns: those whose network
// namespace is the one bound at /run/netns/ns, as `ip netns pids` finds
// them.
func NSPids(ns string) []int {
	want, err := os.Stat(filepath.Join(netnsDir, ns))
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fi, err := os.Stat("/proc/" + e.Name() + "/ns/net"); err == nil && os.SameFile(fi, want) {
			pids = append(pids, p)
		}
	}
	return pids
}

// KillNS sends SIGKILL to every process in namespace ns.
func KillNS(ns string) {
	for _, p := range NSPids(ns) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// Close kills every process left in the run's namespaces, unmounts its
// mounts, deletes its namespaces and links and its run file. It is safe to
// call more than once.
func (n *Network) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ns := range n.namespaces {
		KillNS(ns)
	}
	for i := len(n.mounts) - 1; i >= 0; i-- {
		_ = exec.CommandContext(ctx, "umount", "-l", n.mounts[i]).Run()
	}
	n.mounts = nil
	for _, ns := range n.namespaces {
		_ = deleteNS(ns)
	}
	n.namespaces = nil
	for _, l := range n.links {
		delLink(l)
	}
	n.links = nil
	_ = os.Remove(filepath.Join(runDir, n.Prefix+".pid"))
}

// Sweep removes the namespaces, links and tmpfs mounts of earlier runs
// whose process is gone (their run file names a dead pid, or is missing).
// Live runs are left alone.
func Sweep(ctx context.Context) {
	dead := func(prefix string) bool {
		data, err := os.ReadFile(filepath.Join(runDir, prefix+".pid"))
		if err != nil {
			return true
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		return err != nil || syscall.Kill(pid, 0) == syscall.ESRCH
	}
	prefixOf := func(name string) string {
		if len(name) < len(namePrefix)+4 || !strings.HasPrefix(name, namePrefix) {
			return ""
		}
		p := name[:len(namePrefix)+4]
		if _, err := hex.DecodeString(p[len(namePrefix):]); err != nil {
			return ""
		}
		return p
	}
	swept := map[string]bool{}
	if entries, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range entries {
			if p := prefixOf(e.Name()); p != "" && dead(p) {
				KillNS(e.Name())
				swept[p] = true
				_ = deleteNS(e.Name())
			}
		}
	}
	if data, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 2 && f[2] == "tmpfs" {
				if p := prefixOf(f[0]); p != "" && dead(p) {
					_ = exec.CommandContext(ctx, "umount", "-l", f[1]).Run()
					swept[p] = true
				}
			}
		}
	}
	// An interrupted dump still lists most links; the next sweep gets the
	// rest.
	if links, err := netlink.LinkList(); err == nil || errors.Is(err, netlink.ErrDumpInterrupted) {
		for _, l := range links {
			name := l.Attrs().Name
			if p := prefixOf(name); p != "" && dead(p) {
				delLink(name)
				swept[p] = true
			}
		}
	}
	for p := range swept {
		_ = os.Remove(filepath.Join(runDir, p+".pid"))
	}
}
