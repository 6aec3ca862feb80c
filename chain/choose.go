package chain

import (
	"fmt"
	"slices"
	"strings"
)

// Choose checks --node name and --sign-mode mode ("" for the kind's
// default) against the registry and the settings: a flag of another kind,
// or one of signerFlags (the signer mode's own) outside the signer mode,
// is refused rather than ignored.
func Choose(s Settings, name string, mode SignMode, signerFlags []string) (Kind, SignMode, error) {
	kind, ok := Lookup(name)
	if !ok {
		return kind, "", fmt.Errorf("--node %q: unknown node type; supported: %s", name, strings.Join(Names(), ", "))
	}
	if mode == "" {
		mode = kind.SignModes[0]
	}
	if !slices.Contains(kind.SignModes, mode) {
		modes := make([]string, len(kind.SignModes))
		for i, m := range kind.SignModes {
			modes[i] = string(m)
		}
		return kind, "", fmt.Errorf("--sign-mode %q is not supported with --node %s; it supports: %s", mode, name, strings.Join(modes, ", "))
	}
	for _, other := range Names() {
		if other == name {
			continue
		}
		for _, f := range kinds[other].Flags {
			if s.IsSet(f.Name) && !kind.takes(f.Name) {
				return kind, "", fmt.Errorf("--%s is a %s setting; this is --node %s", f.Name, other, name)
			}
		}
	}
	if mode != SignSigner {
		for _, f := range signerFlags {
			if s.IsSet(f) {
				return kind, "", fmt.Errorf("--%s is a --sign-mode signer setting; this is --sign-mode %s", f, mode)
			}
		}
	}
	return kind, mode, nil
}
