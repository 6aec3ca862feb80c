package consulclient

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consulkey"
	"github.com/valguard/valguard/internal/consultest"
)

func TestExplainTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string // "" = not a TLS failure
	}{
		{"unknown authority", fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), "not signed by a CA this command trusts"},
		{"unknown authority as text", errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority"), "not signed by a CA"},
		{"host name", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "10.0.0.1"}, "does not name the address in --consul-url"},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, "is not valid (expired"},
		{"https to http", errors.New("http: server gave HTTP response to HTTPS client"), "--consul-url is https:// but Consul answers plain HTTP"},
		{"http to https", errors.New("Client sent an HTTP request to an HTTPS server."), "--consul-url is http:// but Consul answers HTTPS"},
		{"refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := explainTLS(tc.err)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("explained as %v", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Fatalf("= %v, want it to say %q", got, tc.want)
			case got != nil && !errors.Is(got, tc.err):
				t.Fatalf("%v does not wrap the error", got)
			}
		})
	}
}

func TestExplainAccess(t *testing.T) {
	p := accessProbe{perm: "key:write", what: "write valguard/X/", grant: `key_prefix "valguard/X/" { policy = "write" }`}
	for _, tc := range []struct {
		name string
		o    Options
		err  error
		want []string // nil = not a refusal
	}{
		{"denied without a token", Options{}, api.StatusError{Code: 403, Body: "Permission denied: token lacks key:write"},
			[]string{"may not write valguard/X/: permission key:write denied", "no token was given", `key_prefix "valguard/X/" { policy = "write" }`, "nothing was changed"}},
		{"denied with a token file", Options{TokenFile: "/t"}, api.StatusError{Code: 403, Body: "Permission denied"},
			[]string{"permission key:write denied (Consul: Permission denied);", "grant the token's policy"}},
		{"unknown token", Options{Token: "x"}, errors.New("Unexpected response code: 403 (ACL not found)"),
			[]string{"do not know the ACL token (--consul-token)", "has expired"}},
		{"unknown token from a file", Options{TokenFile: "/t"}, errors.New("ACL not found"), []string{"(--consul-token-file /t)"}},
		{"untrusted certificate", Options{}, x509.UnknownAuthorityError{}, []string{"--consul-ca-file"}},
		{"no leader", Options{}, api.StatusError{Code: 500, Body: "No cluster leader"}, nil},
		{"timeout", Options{}, errors.New("context deadline exceeded"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := explainAccess(tc.o, p, tc.err)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("a refusal: %v", got)
				}
				return
			}
			if got == nil {
				t.Fatal("not a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("%q does not say %q", got, w)
				}
			}
			if strings.Contains(got.Error(), "denied") && strings.Contains(got.Error(), "no token was given") != (tc.o.Token == "" && tc.o.TokenFile == "") {
				t.Errorf("%q: the anonymous note is wrong for %+v", got, tc.o)
			}
		})
	}
}

// TestCheckAccess: against a real agent with ACLs on (default deny), the
// management token passes every check, no token and an unknown one are
// refused with what to fix, a Consul that does not answer is no refusal,
// and no check writes anything.
func TestCheckAccess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Consul agent")
	}
	agent := consultest.StartWith(t, consultest.Options{ACL: true})
	ctx := t.Context()
	client := func(o Options) *api.Client {
		t.Helper()
		o.URL, o.Timeout = agent.URL, 2*time.Second
		c, _, err := New(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(agent.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mgmt := Options{TokenFile: tokenFile, Timeout: 2 * time.Second}
	for _, need := range []Access{AccessRead, AccessControl, AccessWrite, AccessRun} {
		if err := CheckAccess(ctx, client(mgmt), mgmt, "X", need); err != nil {
			t.Errorf("management token, access %d: %v", need, err)
		}
		anon := Options{Timeout: 2 * time.Second}
		if err := CheckAccess(ctx, client(anon), anon, "X", need); err == nil || !strings.Contains(err.Error(), "no token was given") {
			t.Errorf("no token, access %d: %v", need, err)
		}
		bogus := Options{Token: consultest.NewUUID(t), Timeout: 2 * time.Second}
		if err := CheckAccess(ctx, client(bogus), bogus, "X", need); err == nil || !strings.Contains(err.Error(), "do not know the ACL token (--consul-token)") {
			t.Errorf("unknown token, access %d: %v", need, err)
		}
	}
	pairs, _, err := client(mgmt).KV().List(consulkey.Root(), nil)
	if err != nil || len(pairs) != 0 {
		t.Fatalf("the checks wrote %d keys (%v)", len(pairs), err)
	}
	// An address where nothing answers: no refusal, the command goes on.
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = "127.0.0.1:1"
	dead, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAccess(ctx, dead, Options{Timeout: time.Second}, "X", AccessRun); err != nil {
		t.Fatalf("no Consul: %v", err)
	}
}
