package supervisor

import (
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/supervisor/proctree"
)

// wrappedNode is a fakeNode whose command runs through a wrapper.
type wrappedNode struct{ *fakeNode }

func (wrappedNode) Wrapped() bool { return true }

// In the key-file mode the daemon a wrapper (cosmovisor) runs loads the
// key and outlives a killed valguard unless a cgroup's guard kills it:
// New refuses such a node where no cgroup can be used, and only in that
// mode.
func TestWrappedNodeNeedsACgroup(t *testing.T) {
	saved := cgroupUsable
	t.Cleanup(func() { cgroupUsable = saved })
	cgroupUsable = func() error { return errors.New("no cgroup v2 here") }
	j := &journal{}
	for _, tc := range []struct {
		name    string
		node    Node
		signer  Signer
		refused bool
	}{
		{"wrapped, key-file mode", wrappedNode{newFakeNode(j)}, nil, true},
		{"wrapped, signer mode", wrappedNode{newFakeNode(j)}, &fakeSigner{j: j}, false},
		{"not wrapped, key-file mode", newFakeNode(j), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Node: tc.node, Elector: &fakeElector{}, Signer: tc.signer, Log: zerolog.Nop()})
			switch {
			case tc.refused && (err == nil || !strings.Contains(err.Error(), "no cgroup v2 here") || !strings.Contains(err.Error(), "signer mode")):
				t.Fatalf("error %v, want a refusal naming the cause and the way out", err)
			case !tc.refused && err != nil:
				t.Fatal(err)
			}
		})
	}
}

// A wrapped node's validator is started only in a cgroup (StartInCgroup);
// its voter, which holds no key, may fall back.
func TestWrappedValidatorStartsOnlyInACgroup(t *testing.T) {
	saved := startInCgroup
	t.Cleanup(func() { startInCgroup = saved })
	var mu sync.Mutex
	var inCgroup []string
	startInCgroup = func(cmd *exec.Cmd, stdout, stderr io.Writer) (*proctree.Process, error) {
		mu.Lock()
		inCgroup = append(inCgroup, strings.Join(cmd.Args, " "))
		mu.Unlock()
		return proctree.Start(cmd, stdout, stderr)
	}
	r := newRig(t, nil)
	r.node.argv[RoleVoter] = []string{"sleep", "601"}
	r.node.argv[RoleValidator] = []string{"sleep", "602"}
	r.sup.cfg.Node = wrappedNode{r.node}
	r.run()
	r.waitState(Voting)
	r.el.grant <- struct{}{}
	r.waitState(Validating)
	mu.Lock()
	defer mu.Unlock()
	if len(inCgroup) != 1 || inCgroup[0] != "sleep 602" {
		t.Fatalf("started in a cgroup only: %q, want the validator alone", inCgroup)
	}
}
