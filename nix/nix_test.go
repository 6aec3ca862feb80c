package nix_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/tooltest"
	"github.com/valguard/valguard/systemd"
)

// eval evaluates a Nix expression in this directory with
// nix-instantiate --eval --strict --json and decodes the result into v.
func eval(t *testing.T, expr string, v any) error {
	t.Helper()
	cmd := exec.Command(tooltest.Tool(t, "nix-instantiate"), "--eval", "--strict", "--json", "-E", expr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nix-instantiate: %v: %s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("nix-instantiate output %q: %v", stdout.String(), err)
	}
	return nil
}

// stubLib is the part of nixpkgs' lib that module.nix uses, with option
// declarations kept as plain attribute sets. It lets module.nix be
// evaluated without nixpkgs: its option names and defaults, and the
// service it defines for a given configuration. It does not type-check
// values as the real module system does.
const stubLib = `
  let
    types = {
      str = "str"; bool = "bool"; package = "package"; port = "port";
      ints = { positive = "ints.positive"; };
      enum = vs: { enum = vs; };
      nullOr = t: { nullOr = t; };
      listOf = t: { listOf = t; };
    };
  in {
    inherit types;
    mkOption = o: o // { _type = "option"; };
    mkEnableOption = d: { _type = "option"; type = types.bool; default = false; description = d; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
  }`

// module evaluates module.nix with the stub lib and cfg (a Nix attribute
// set of settings; every other option takes its declared default, and
// the package is /usr, so ExecStart runs /usr/bin/valguard).
func moduleExpr(cfg string) string {
	return `
	  let
	    lib = ` + stubLib + `;
	    eval = cfg: import ./module.nix { config.services.valguard = cfg; inherit lib; pkgs = { }; };
	    options = (eval { }).options.services.valguard;
	    defaults = builtins.mapAttrs (_: o: o.default) (removeAttrs options [ "package" ]);
	    m = eval (defaults // { enable = true; package = "/usr"; } // (` + cfg + `));
	    unit = import ./unit.nix;
	  in {
	    options = builtins.attrNames options;
	    service = m.config.content.systemd.services.valguard;
	    enabled = m.config.condition;
	    optionFlags = unit.optionFlags;
	    nonFlagOptions = builtins.attrNames unit.nonFlagOptions;
	  }`
}

type moduleEval struct {
	Options        []string          `json:"options"`
	Enabled        bool              `json:"enabled"`
	OptionFlags    map[string]string `json:"optionFlags"`
	NonFlagOptions []string          `json:"nonFlagOptions"`
	Service        struct {
		Description   string         `json:"description"`
		Documentation []string       `json:"documentation"`
		Wants         []string       `json:"wants"`
		After         []string       `json:"after"`
		WantedBy      []string       `json:"wantedBy"`
		ServiceConfig map[string]any `json:"serviceConfig"`
	} `json:"service"`
}

// Every .nix file parses.
func TestNixFilesParse(t *testing.T) {
	nix := tooltest.Tool(t, "nix-instantiate")
	files, err := filepath.Glob("*.nix")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flake.nix", "module.nix", "package.nix", "unit.nix"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s missing", want)
		}
	}
	for _, f := range files {
		if out, err := exec.Command(nix, "--parse", f).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	tooltest.Cleanup()
	os.Exit(code)
}

// Every module option is either a `valguard run` flag that
// `valguard run --help` lists (unit.nix's optionFlags) or one of the
// declared non-flag options (unit.nix's nonFlagOptions), and the
// settings the NixOS module must offer are there.
func TestOptionsMapToFlags(t *testing.T) {
	var m moduleEval
	if err := eval(t, moduleExpr("{ nodeHome = \"/h\"; validatorKeyFile = \"/k\"; }"), &m); err != nil {
		t.Fatal(err)
	}
	help := tooltest.RunFlags(t)
	for _, opt := range m.Options {
		flag, isFlag := m.OptionFlags[opt]
		switch {
		case isFlag && !help[flag]:
			t.Errorf("option %s maps to --%s, which valguard run does not have", opt, flag)
		case !isFlag && !slices.Contains(m.NonFlagOptions, opt):
			t.Errorf("option %s is neither a flag in unit.nix's optionFlags nor in its nonFlagOptions", opt)
		}
	}
	for opt := range m.OptionFlags {
		if !slices.Contains(m.Options, opt) {
			t.Errorf("unit.nix maps %s to a flag, but module.nix has no such option", opt)
		}
	}
	for _, opt := range m.NonFlagOptions {
		if !slices.Contains(m.Options, opt) {
			t.Errorf("unit.nix lists non-flag option %s, but module.nix has no such option", opt)
		}
	}
	required := map[string]string{
		"node": "node", "nodeHome": "node-home", "nodeBinary": "node-binary", "validatorKeyFile": "validator-key",
		"validatorNodeKeyFile": "validator-node-key", "voterNodeKeyFile": "voter-node-key", "consulUrl": "consul-url",
		"consulTokenFile": "consul-token-file", "replicaId": "replica-id", "sessionTtl": "session-ttl",
		"metricsAddr": "metrics-addr", "publicAddresses": "public-address", "signMode": "sign-mode",
	}
	for opt, flag := range required {
		if got := m.OptionFlags[opt]; got != flag {
			t.Errorf("option %s maps to %q, want --%s", opt, got, flag)
		}
	}
	if !slices.Contains(m.Options, "openFirewall") {
		t.Error("no openFirewall option")
	}
	t.Logf("%d options: %d flags, %d others", len(m.Options), len(m.OptionFlags), len(m.NonFlagOptions))
}

// renderUnit writes the service the module defines as the unit file NixOS
// would write for it: [Unit] from description, documentation, wants and
// after (lists joined with spaces), [Service] from serviceConfig (a list
// repeats the key, numbers as text), and wantedBy as [Install] WantedBy=
// (NixOS makes symlinks instead; the target is what is compared).
func renderUnit(t *testing.T, m moduleEval) systemd.Unit {
	t.Helper()
	var u systemd.Unit
	add := func(section, key, value string) {
		u.Settings = append(u.Settings, systemd.Setting{Section: section, Key: key, Value: value})
	}
	s := m.Service
	add("Unit", "Description", s.Description)
	add("Unit", "Documentation", strings.Join(s.Documentation, " "))
	add("Unit", "Wants", strings.Join(s.Wants, " "))
	add("Unit", "After", strings.Join(s.After, " "))
	for _, k := range slices.Sorted(maps.Keys(s.ServiceConfig)) {
		switch v := s.ServiceConfig[k].(type) {
		case string:
			add("Service", k, v)
		case float64:
			add("Service", k, fmt.Sprint(v))
		case bool:
			add("Service", k, fmt.Sprint(v))
		case []any:
			for _, x := range v {
				add("Service", k, fmt.Sprint(x))
			}
		default:
			t.Fatalf("serviceConfig.%s: unexpected %T", k, v)
		}
	}
	add("Install", "WantedBy", strings.Join(s.WantedBy, " "))
	return u
}

// lines returns a unit's settings other than ExecStart as sorted
// Section.Key=Value lines.
func lines(u systemd.Unit) []string {
	var out []string
	for _, s := range u.Settings {
		if s.Key != "ExecStart" {
			out = append(out, s.Section+"."+s.Key+"="+s.Value)
		}
	}
	slices.Sort(out)
	return out
}

// The service module.nix defines, for the settings of each shipped unit,
// is that unit: the same settings in every section, and an ExecStart that
// runs the same binary with the same flags and values (in any order).
func TestModuleRendersShippedUnits(t *testing.T) {
	cometbft := `nodeHome = "/var/lib/cometbft"; nodeBinary = "/usr/bin/cometbft"; user = "cometbft"; group = "cometbft";
	  validatorKeyFile = "/etc/valguard/priv_validator_key.json"; consulTokenFile = "/etc/valguard/consul-token";`
	cases := []struct{ unit, cfg string }{
		{"valguard.service", "{ " + cometbft + " }"},
		{"valguard-signer.service", "{ " + cometbft + ` signMode = "signer"; }`},
		{"valguard-neard.service", `{ node = "neard"; nodeHome = "/var/lib/neard"; nodeBinary = "/usr/bin/neard";
		  user = "neard"; group = "neard"; environmentFile = "-/etc/valguard/neard.env";
		  validatorKeyFile = "/etc/valguard/validator_key.json"; validatorNodeKeyFile = "/etc/valguard/validator_node_key.json";
		  consulTokenFile = "/etc/valguard/consul-token"; }`},
	}
	for _, tc := range cases {
		t.Run(tc.unit, func(t *testing.T) {
			var m moduleEval
			if err := eval(t, moduleExpr(tc.cfg), &m); err != nil {
				t.Fatal(err)
			}
			if !m.Enabled {
				t.Fatal("the module's config is not conditional on enable")
			}
			got := renderUnit(t, m)
			want, err := systemd.ParseFile(filepath.Join("..", "systemd", tc.unit))
			if err != nil {
				t.Fatal(err)
			}
			gl, wl := lines(got), lines(want)
			for _, l := range wl {
				if !slices.Contains(gl, l) {
					t.Errorf("shipped %s has %s; the module does not", tc.unit, l)
				}
			}
			for _, l := range gl {
				if !slices.Contains(wl, l) {
					t.Errorf("the module has %s; shipped %s does not", l, tc.unit)
				}
			}
			gc, err := got.RunCommand()
			if err != nil {
				t.Fatal(err)
			}
			wc, err := want.RunCommand()
			if err != nil {
				t.Fatal(err)
			}
			if gc.Binary != wc.Binary || !maps.EqualFunc(gc.Flags, wc.Flags, slices.Equal) {
				t.Errorf("ExecStart differs:\nmodule:  %s %v\nshipped: %s %v", gc.Binary, gc.Flags, wc.Binary, wc.Flags)
			}
		})
	}
}

// unit.nix refuses at evaluation what valguard or safety would refuse: a
// WatchdogSec valguard's start-up check rejects (WatchdogSec + TTL/3 <
// TTL − 3 s with the default renew interval and kill timeout), a TTL below
// 10 s, secrets in the world-readable store, a missing node home or key.
// The watchdog rule is compared with that inequality, evaluated exactly.
func TestUnitRefusals(t *testing.T) {
	render := func(cfg string) error {
		var v any
		return eval(t, `((import ./unit.nix).render { valguard = "/usr/bin/valguard"; cfg = { nodeHome = "/h"; validatorKeyFile = "/k"; } // (`+cfg+`); }).serviceConfig`, &v)
	}
	for _, tc := range []struct{ ttl, wd int }{{10, 1}, {10, 2}, {10, 3}, {10, 4}, {12, 4}, {12, 5}, {15, 6}, {15, 7}, {30, 16}, {30, 17}} {
		// WatchdogSec + TTL/3 < TTL - 3, times 3.
		valguardAccepts := 3*tc.wd+tc.ttl < 3*tc.ttl-9
		err := render(fmt.Sprintf("{ sessionTtl = %d; watchdogSec = %d; }", tc.ttl, tc.wd))
		if (err == nil) != valguardAccepts {
			t.Errorf("TTL %ds, WatchdogSec %ds: unit.nix error %v, valguard accepts %v", tc.ttl, tc.wd, err, valguardAccepts)
		}
		if err != nil && !strings.Contains(err.Error(), "is too long") {
			t.Errorf("TTL %ds, WatchdogSec %ds: %v", tc.ttl, tc.wd, err)
		}
	}
	for _, tc := range []struct{ cfg, want string }{
		{`{ sessionTtl = 9; }`, "refuses a TTL below 10 s"},
		{`{ validatorKeyFile = builtins.storeDir + "/abc-key.json"; }`, "world-readable Nix store"},
		{`{ consulTokenFile = ./nix_test.go; }`, "is a Nix path"},
		{`{ nodeHome = null; }`, "nodeHome is required"},
		{`{ validatorKeyFile = null; }`, "validatorKeyFile is required"},
		{`{ node = "external"; }`, "want cometbft or neard"},
	} {
		if err := render(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.cfg, err, tc.want)
		}
	}
	var ports []int
	if err := eval(t, `((import ./unit.nix).render { valguard = "v"; cfg = { node = "neard"; nodeHome = "/h"; validatorKeyFile = "/k"; voterNetworkAddr = "0.0.0.0:24600"; }; }).firewallPorts`, &ports); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ports, []int{24567, 24600}) {
		t.Errorf("neard firewall ports %v, want [24567 24600]", ports)
	}
}

// package.nix's vendorHash is the NAR hash (nix-hash) of `go mod vendor`
// for the current go.mod and go.sum, as buildGoModule computes it; a
// dependency change without a new hash fails here rather than in a Nix
// build.
func TestVendorHash(t *testing.T) {
	nixHash := tooltest.Tool(t, "nix-hash")
	data, err := os.ReadFile("package.nix")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`vendorHash = "(sha256-[A-Za-z0-9+/=]+)"`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no vendorHash = \"sha256-...\" in package.nix")
	}
	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command("go", "mod", "vendor", "-o", vendor)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	hc := exec.Command(nixHash, "--type", "sha256", vendor)
	hc.Stdout, hc.Stderr = &stdout, &stderr
	if err := hc.Run(); err != nil {
		t.Fatalf("nix-hash: %v\n%s", err, stderr.String())
	}
	sum, err := hex.DecodeString(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	want := "sha256-" + base64.StdEncoding.EncodeToString(sum)
	if string(m[1]) != want {
		t.Fatalf("package.nix vendorHash = %q, but go mod vendor hashes to %q: update package.nix", m[1], want)
	}
}
