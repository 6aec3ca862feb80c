package flagenv

import (
	"slices"
	"testing"
)

// environ is an environment: the names set, with their values.
type environ map[string]string

func (e environ) lookup(name string) (string, bool) { v, ok := e[name]; return v, ok }

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want []string
	}{
		{"max-lag", []string{"VALGUARD_MAX_LAG"}},
		{"consul-url", []string{"VALGUARD_CONSUL_URL", "KUUTAMO_CONSUL_URL"}},
		{"public-address", []string{"VALGUARD_PUBLIC_ADDRESS", "KUUTAMO_PUBLIC_ADDRESS", "KUUTAMO_PUBLIC_ADDRESSES"}},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			if got := Names(tc.flag); !slices.Equal(got, tc.want) {
				t.Fatalf("Names(%q) = %q, want %q", tc.flag, got, tc.want)
			}
		})
	}
}

func TestDeprecated(t *testing.T) {
	flags := []string{"node-home", "validator-key", "public-address", "max-lag"}
	for _, tc := range []struct {
		name string
		env  environ
		want []Deprecation
	}{
		{name: "none set", env: environ{}},
		{name: "only valguard's names", env: environ{"VALGUARD_NODE_HOME": "/h", "VALGUARD_MAX_LAG": "3"}},
		{name: "a kuutamod name for a flag not taken", env: environ{"KUUTAMO_CONSUL_URL": "x"}},
		{name: "a kuutamod name", env: environ{"KUUTAMO_NEARD_HOME": "/h"}, want: []Deprecation{
			{"KUUTAMO_NEARD_HOME", "node-home", "KUUTAMO_NEARD_HOME is kuutamod's name: rename it VALGUARD_NODE_HOME (or use --node-home)"},
		}},
		{name: "both names", env: environ{"VALGUARD_VALIDATOR_KEY": "a", "KUUTAMO_VALIDATOR_KEY": "b"}, want: []Deprecation{
			{"KUUTAMO_VALIDATOR_KEY", "validator-key", "KUUTAMO_VALIDATOR_KEY is ignored: VALGUARD_VALIDATOR_KEY is set and takes precedence"},
		}},
		{name: "two kuutamod names of one flag, sorted", env: environ{"KUUTAMO_PUBLIC_ADDRESSES": "a", "KUUTAMO_PUBLIC_ADDRESS": "b", "KUUTAMO_NEARD_HOME": "/h"}, want: []Deprecation{
			{"KUUTAMO_NEARD_HOME", "node-home", "KUUTAMO_NEARD_HOME is kuutamod's name: rename it VALGUARD_NODE_HOME (or use --node-home)"},
			{"KUUTAMO_PUBLIC_ADDRESS", "public-address", "KUUTAMO_PUBLIC_ADDRESS is kuutamod's name: rename it VALGUARD_PUBLIC_ADDRESS (or use --public-address)"},
			{"KUUTAMO_PUBLIC_ADDRESSES", "public-address", "KUUTAMO_PUBLIC_ADDRESSES is ignored: KUUTAMO_PUBLIC_ADDRESS is set and takes precedence"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Deprecated(flags, tc.env.lookup); !slices.Equal(got, tc.want) {
				t.Fatalf("Deprecated = %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestKuutamod(t *testing.T) {
	if Kuutamod(environ{"KUUTAMO_CONSUL_URL": "x"}.lookup) {
		t.Fatal("without KUUTAMO_NEARD_HOME: kuutamod's environment")
	}
	if !Kuutamod(environ{"KUUTAMO_NEARD_HOME": ""}.lookup) {
		t.Fatal("with KUUTAMO_NEARD_HOME set (empty): not kuutamod's environment")
	}
}
