package localnet

import (
	"fmt"
	"path/filepath"

	"github.com/cometbft/cometbft/p2p"

	"github.com/valguard/valguard/internal/freeport"
)

// pickPort returns a loopback TCP port (freeport.Take: held for this
// process, outside the kernel's ephemeral range) not in used, and adds it
// to used.
func pickPort(used map[int]bool) (int, error) {
	for range 100 {
		port, err := freeport.Take()
		if err != nil {
			return 0, fmt.Errorf("localnet: %w", err)
		}
		if !used[port] {
			used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("localnet: no unused free port after 100 tries")
}

// assignPorts gives every home two free loopback ports and reads its node id.
func (n *Net) assignPorts() error {
	used := map[int]bool{}
	for _, home := range n.allHomes() {
		nk, err := p2p.LoadNodeKey(filepath.Join(home, "config", "node_key.json"))
		if err != nil {
			return fmt.Errorf("localnet: %w", err)
		}
		p2pPort, err := pickPort(used)
		if err != nil {
			return err
		}
		rpcPort, err := pickPort(used)
		if err != nil {
			return err
		}
		n.nodes[home] = nodePorts{p2p: p2pPort, rpc: rpcPort, id: nk.ID()}
	}
	return nil
}

// RPC returns the RPC address (http://127.0.0.1:port) of a home of the
// network, or "" if home is not one of its homes.
func (n *Net) RPC(home string) string {
	p, ok := n.nodes[filepath.Clean(home)]
	if !ok {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d", p.rpc)
}

// P2P returns the peer address (id@127.0.0.1:port) of a home of the
// network, or "" if home is not one of its homes.
func (n *Net) P2P(home string) string {
	p, ok := n.nodes[filepath.Clean(home)]
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s@127.0.0.1:%d", p.id, p.p2p)
}
