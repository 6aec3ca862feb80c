package localnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// persistentPeers reads [p2p] persistent_peers of a home's config.toml.
func persistentPeers(t *testing.T, home string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(home, "config", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "persistent_peers = "); ok {
			v = strings.Trim(v, `"`)
			if v == "" {
				return nil
			}
			return strings.Split(v, ",")
		}
	}
	t.Fatalf("%s: no persistent_peers", home)
	return nil
}

// TestWiring checks the persistent peers of each wiring: replica homes
// always list every validator and the other replicas; validator homes list
// the replicas in the mesh only.
func TestWiring(t *testing.T) {
	bin := binaryOrSkip(t)
	for _, tc := range []struct {
		wiring          Wiring
		want            Wiring
		validatorsDial  bool
		validatorsPeers int // per validator home: others + replicas dialled
	}{
		{wiring: "", want: WiringDialOut, validatorsPeers: DefaultValidators - 1},
		{wiring: WiringDialOut, want: WiringDialOut, validatorsPeers: DefaultValidators - 1},
		{wiring: WiringMesh, want: WiringMesh, validatorsDial: true, validatorsPeers: DefaultValidators - 1 + DefaultReplicas},
	} {
		t.Run(string(tc.want)+"/"+string(tc.wiring), func(t *testing.T) {
			n, err := Create(t.Context(), Config{Dir: filepath.Join(t.TempDir(), "net"), Binary: bin, Wiring: tc.wiring})
			if err != nil {
				t.Fatal(err)
			}
			if n.Wiring != tc.want {
				t.Errorf("Net.Wiring = %q, want %q", n.Wiring, tc.want)
			}
			for _, home := range n.Homes {
				peers := persistentPeers(t, home)
				if len(peers) != tc.validatorsPeers {
					t.Errorf("%s lists %d peers, want %d: %v", filepath.Base(home), len(peers), tc.validatorsPeers, peers)
				}
				for _, r := range n.ReplicaHomes {
					if listed := contains(peers, n.P2P(r)); listed != tc.validatorsDial {
						t.Errorf("%s lists replica %s: %v, want %v", filepath.Base(home), filepath.Base(r), listed, tc.validatorsDial)
					}
				}
			}
			for _, home := range n.ReplicaHomes {
				peers := persistentPeers(t, home)
				for _, other := range n.allHomes() {
					if other != home && !contains(peers, n.P2P(other)) {
						t.Errorf("replica %s does not list %s", filepath.Base(home), filepath.Base(other))
					}
				}
			}
		})
	}
	if _, err := Create(t.Context(), Config{Dir: t.TempDir(), Binary: bin, Wiring: "star"}); err == nil {
		t.Error(`Create accepted Wiring "star"`)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
