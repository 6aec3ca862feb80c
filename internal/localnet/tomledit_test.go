package localnet

import (
	"strings"
	"testing"
)

const sampleConfig = `# top comment
proxy_app = "tcp://127.0.0.1:26658"
moniker = "node0"

[rpc]
# laddr = "commented out"
laddr = "tcp://127.0.0.1:26657"
pprof_laddr = "localhost:6060"

[p2p]
laddr = "tcp://0.0.0.0:26656"
persistent_peers = ""
addr_book_strict = true

[instrumentation]
prometheus = true
`

// v1Config has an array of tables, as CometBFT v1's config.toml does.
const v1Config = `[p2p]
laddr = "tcp://0.0.0.0:26656"

[[p2p.libp2p.scaler.overrides]]
laddr = "not this one"
min = 4

[rpc]
laddr = "tcp://127.0.0.1:26657"
`

func TestEditTOML(t *testing.T) {
	tests := []struct {
		name     string
		settings []setting
		want     []string // lines the result must contain
		wantErr  string
		v1       bool // edit v1Config
	}{
		{
			name: "an array of tables is passed over",
			v1:   true,
			settings: []setting{
				{"p2p", "laddr", "tcp://127.0.0.1:2"},
				{"rpc", "laddr", "tcp://127.0.0.1:1"},
			},
			want: []string{"[p2p]\nladdr = \"tcp://127.0.0.1:2\"", "[[p2p.libp2p.scaler.overrides]]\nladdr = \"not this one\"", "[rpc]\nladdr = \"tcp://127.0.0.1:1\""},
		},
		{
			name: "same key in two sections",
			settings: []setting{
				{"rpc", "laddr", "tcp://127.0.0.1:1"},
				{"p2p", "laddr", "tcp://127.0.0.1:2"},
			},
			want: []string{"[rpc]\n# laddr = \"commented out\"\nladdr = \"tcp://127.0.0.1:1\"", "[p2p]\nladdr = \"tcp://127.0.0.1:2\""},
		},
		{
			name: "top level, bool and quoting",
			settings: []setting{
				{"", "proxy_app", "kvstore"},
				{"p2p", "addr_book_strict", false},
				{"p2p", "persistent_peers", `a@127.0.0.1:1,b"c`},
				{"instrumentation", "prometheus", false},
			},
			want: []string{`proxy_app = "kvstore"`, "addr_book_strict = false", `persistent_peers = "a@127.0.0.1:1,b\"c"`, "prometheus = false"},
		},
		{
			name:     "missing key",
			settings: []setting{{"consensus", "timeout_commit", "1s"}},
			wantErr:  "found 0 times",
		},
		{
			name:     "key of another section",
			settings: []setting{{"rpc", "addr_book_strict", false}},
			wantErr:  "found 0 times",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := sampleConfig
			if tc.v1 {
				text = v1Config
			}
			got, err := editTOML(text, tc.settings)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("result lacks %q:\n%s", w, got)
				}
			}
			if err := verifyTOML([]byte(got), tc.settings); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMatchLines(t *testing.T) {
	long := strings.Repeat("x", 200_000)
	in := "a\nE[..] found conflicting vote from ourselves height=6\n" + long + "\nconflicting votes from validator ABC\nno newline at end"
	got, err := matchLines(strings.NewReader(in), conflictingVoteMarkers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasSuffix(got[0], "height=6") || !strings.HasSuffix(got[1], "ABC") {
		t.Errorf("got %q", got)
	}
}
