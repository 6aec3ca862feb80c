package cometbft

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// probeTimeout bounds one connect attempt to a listen address.
const probeTimeout = 300 * time.Millisecond

// dialTarget turns a CometBFT listen address (tcp://0.0.0.0:26656,
// 127.0.0.1:26657, unix:///run/rpc.sock) into what to dial to find out
// whether something listens there. An unspecified host is loopback. ok is
// false for an address that cannot be probed (port 0: any port).
func dialTarget(laddr string) (network, addr string, ok bool, err error) {
	if !strings.Contains(laddr, "://") {
		laddr = "tcp://" + laddr
	}
	u, err := url.Parse(laddr)
	if err != nil {
		return "", "", false, err
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Host
		}
		return "unix", path, path != "", nil
	case "tcp", "http":
	default:
		return "", "", false, fmt.Errorf("%q: unsupported scheme %q", laddr, u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		return "", "", false, fmt.Errorf("%q has no port", laddr)
	}
	if port == "0" {
		return "", "", false, nil
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "tcp", net.JoinHostPort(host, port), true, nil
}

// answers reports whether something accepts connections at laddr.
func answers(laddr string) (bool, error) {
	network, addr, ok, err := dialTarget(laddr)
	if err != nil || !ok {
		return false, err
	}
	c, err := net.DialTimeout(network, addr, probeTimeout)
	if err != nil {
		return false, nil
	}
	c.Close()
	return true, nil
}

// checkNoListener refuses to go on when something already listens on the
// node's RPC or P2P address: a node left running (by a valguard that was
// killed, or started by hand) would be read as the one valguard starts,
// and it may hold the validator key.
func (n *Node) checkNoListener() error {
	for _, a := range []struct{ name, laddr string }{{"[rpc] laddr", n.p.rpcLaddr}, {"[p2p] laddr", n.p.p2pLaddr}} {
		busy, err := answers(a.laddr)
		if err != nil {
			return fmt.Errorf("%s: %s %q: %w", n.p.config, a.name, a.laddr, err)
		}
		if busy {
			return fmt.Errorf("something already listens on %s (%s in %s): a node left running there would be read as the one valguard starts, and it may hold the validator key: find the process listening there (ss -ltnp, or ss -lxp for a socket) and stop it, then start valguard again",
				a.laddr, a.name, n.p.config)
		}
	}
	return nil
}
