package localnet

import (
	"fmt"
	"path/filepath"

	"github.com/cometbft/cometbft/p2p"

	"github.com/valguard/valguard/internal/freeport"
)

// pickPort returns a loopback TCP port held for this process and never
// handed out twice in it (freeport.Take).
func pickPort() (int, error) {
	port, err := freeport.Take()
	if err != nil {
		return 0, fmt.Errorf("localnet: %w", err)
	}
	return port, nil
}

// assignPorts gives every home two free loopback ports and reads its node id.
func (n *Net) assignPorts() error {
	for _, home := range n.allHomes() {
		nk, err := p2p.LoadNodeKey(filepath.Join(home, "config", "node_key.json"))
		if err != nil {
			return fmt.Errorf("localnet: %w", err)
		}
		p2pPort, err := pickPort()
		if err != nil {
			return err
		}
		rpcPort, err := pickPort()
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
