// Package broken is a deliberately broken node for the fault drills' own
// test (internal/chaos TestCheckerCatchesBrokenValguard): in the key-file
// mode the validator node leaves valguard's cgroup and process group as it
// starts, so stopping and reaping "the node" no longer stops the process
// that holds the key, and the lock is released — or expires — while that
// process still signs: the release-before-reap ordering (S3, S10) broken.
// The sign-state raise (S8), which would otherwise keep the next leader off
// the heights the old node may still sign, is undone too (a fresh state
// file). The drills' checker must report the double sign that follows.
//
// Only cmd/valguard's chaosbroken.go, built with the tag chaosbroken,
// imports it: the production binary does not contain it.
package broken

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/valguard/valguard/chain"
	"github.com/valguard/valguard/supervisor"
)

// Escaping wraps a node kind: in the key-file mode its node escapes the
// reap and starts from a fresh sign state.
func Escaping(k chain.Kind) chain.Kind {
	build := k.Build
	k.Build = func(s chain.Settings, in chain.Input) (chain.Setup, error) {
		st, err := build(s, in)
		if err == nil && in.Mode == chain.SignRestart {
			st.Node = escapingNode{Node: st.Node, cgroupRoot: cgroup2Root(), home: s.Path("node-home")}
		}
		return st, err
	}
	return k
}

// escapingNode runs the validator node through a shell that stays behind
// in valguard's reach while the node itself moves to the root cgroup and
// a session of its own.
type escapingNode struct {
	supervisor.Node
	cgroupRoot string
	home       string
}

// Prepare prepares the validator role, then replaces the raised sign
// state with a fresh one.
func (n escapingNode) Prepare(ctx context.Context, role supervisor.Role, watermark []byte) error {
	if err := n.Node.Prepare(ctx, role, watermark); err != nil || role != supervisor.RoleValidator {
		return err
	}
	return os.WriteFile(filepath.Join(n.home, "data", "priv_validator_state.json"), []byte(`{"height":"0","round":0,"step":0}`), 0o600)
}

func (n escapingNode) Command(role supervisor.Role) (*exec.Cmd, error) {
	cmd, err := n.Node.Command(role)
	if err != nil || role != supervisor.RoleValidator {
		return cmd, err
	}
	script := `setsid sh -c 'echo $$ > "$1/cgroup.procs" 2>/dev/null; shift; exec "$@"' node "$CHAOS_CGROUP_ROOT" "$@" & wait $!`
	out := exec.Command("sh", append([]string{"-c", script, "sh", cmd.Path}, cmd.Args[1:]...)...)
	out.Env = append(append([]string{}, cmd.Env...), "CHAOS_CGROUP_ROOT="+n.cgroupRoot)
	if cmd.Env == nil {
		out.Env = append(os.Environ(), "CHAOS_CGROUP_ROOT="+n.cgroupRoot)
	}
	out.Dir, out.Stdout, out.Stderr = cmd.Dir, cmd.Stdout, cmd.Stderr
	return out, nil
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted.
func cgroup2Root() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "/sys/fs/cgroup"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				return fields[4]
			}
		}
	}
	return "/sys/fs/cgroup"
}
