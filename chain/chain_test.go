package chain

import (
	"strings"
	"testing"
	"time"
)

// settings is a command line: the flags set, with their values.
type settings map[string]string

func (s settings) String(n string) string      { return s[n] }
func (s settings) Path(n string) string        { return s[n] }
func (s settings) StringSlice(string) []string { return nil }
func (s settings) Duration(n string) time.Duration {
	d, _ := time.ParseDuration(s[n])
	return d
}
func (s settings) IsSet(n string) bool { _, ok := s[n]; return ok }

// withKinds runs f with only ks registered.
func withKinds(t *testing.T, ks ...Kind) {
	t.Helper()
	saved := kinds
	kinds = map[string]Kind{}
	t.Cleanup(func() { kinds = saved })
	for _, k := range ks {
		Register(k)
	}
}

func build(Settings, Input) (Setup, error) { return Setup{}, nil }

func TestChoose(t *testing.T) {
	withKinds(t,
		Kind{Name: "a", SignModes: []SignMode{SignRestart, SignSigner}, Build: build},
		Kind{Name: "b", SignModes: []SignMode{SignRestart}, Build: build, Flags: []Flag{{Name: "b-only"}, {Name: "shared"}}},
		Kind{Name: "c", SignModes: []SignMode{SignSigner}, Build: build, Flags: []Flag{{Name: "c-only"}}, Others: []string{"shared"}},
	)
	signer := []string{"signer-addr"}
	for _, tc := range []struct {
		name, node string
		mode       SignMode
		set        settings
		want       SignMode
		err        string
	}{
		{name: "default mode is the first", node: "a", want: SignRestart},
		{name: "a listed mode", node: "a", mode: SignSigner, want: SignSigner},
		{name: "only mode", node: "c", want: SignSigner},
		{name: "unknown kind", node: "z", err: `--node "z": unknown node type; supported: a, b, c`},
		{name: "unsupported mode", node: "b", mode: SignSigner, err: `--sign-mode "signer" is not supported with --node b; it supports: restart`},
		{name: "unknown mode", node: "a", mode: "hot", err: `--sign-mode "hot" is not supported with --node a; it supports: restart, signer`},
		{name: "another kind's flag", node: "a", set: settings{"b-only": "x"}, err: "--b-only is a b setting; this is --node a"},
		{name: "a flag it shares", node: "c", set: settings{"shared": "x"}, want: SignSigner},
		{name: "a flag of another kind it does not share", node: "c", set: settings{"b-only": "x"}, err: "--b-only is a b setting; this is --node c"},
		{name: "its own flag", node: "b", set: settings{"b-only": "x"}, want: SignRestart},
		{name: "signer flag in the restart mode", node: "a", set: settings{"signer-addr": "x"}, err: "--signer-addr is a --sign-mode signer setting; this is --sign-mode restart"},
		{name: "signer flag in the signer mode", node: "a", mode: SignSigner, set: settings{"signer-addr": "x"}, want: SignSigner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.set == nil {
				tc.set = settings{}
			}
			_, mode, err := Choose(tc.set, tc.node, tc.mode, signer)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Choose = %v; want the error %q", err, tc.err)
				}
				return
			}
			if err != nil || mode != tc.want {
				t.Fatalf("Choose = %q, %v; want %q", mode, err, tc.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	withKinds(t, Kind{Name: "a", SignModes: []SignMode{SignRestart}, Build: build, Flags: []Flag{{Name: "x"}, {Name: "y"}}},
		Kind{Name: "b", SignModes: []SignMode{SignRestart}, Build: build, Flags: []Flag{{Name: "x"}, {Name: "z"}}})
	var names []string
	for _, f := range Flags() {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "x,y,z" {
		t.Errorf("Flags = %s; want x,y,z (each once, in the order of the kinds)", got)
	}
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"twice", func() { Register(Kind{Name: "a", SignModes: []SignMode{SignRestart}, Build: build}) }},
		{"no name", func() { Register(Kind{SignModes: []SignMode{SignRestart}, Build: build}) }},
		{"no sign mode", func() { Register(Kind{Name: "n", Build: build}) }},
		{"no build", func() { Register(Kind{Name: "n", SignModes: []SignMode{SignRestart}}) }},
		{"replace of nothing", func() { Replace(Kind{Name: "n"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
}

func TestMaxBlockAge(t *testing.T) {
	if got := MaxBlockAge(settings{}, SignSigner); got != -1 {
		t.Errorf("signer mode, unset: %v; want no limit", got)
	}
	if got := MaxBlockAge(settings{}, SignRestart); got != -1 {
		t.Errorf("restart mode, 0: %v; want no limit", got)
	}
	if got := MaxBlockAge(settings{"max-block-age": "0s"}, SignSigner); got != -1 {
		t.Errorf("signer mode, 0: %v; want no limit", got)
	}
	for _, m := range []SignMode{SignRestart, SignSigner} {
		if got := MaxBlockAge(settings{"max-block-age": "30s"}, m); got != 30*time.Second {
			t.Errorf("%s mode, 30s: %v", m, got)
		}
	}
}
