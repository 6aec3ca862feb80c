// Package consulclient is the Consul client every valguard command uses:
// its calls go over several addresses of one cluster (consulpath), the
// ACL token may come from a private file, and CheckAccess asks Consul,
// before a command acts, whether the token allows what it needs.
//
// Its messages name the command-line settings (--consul-url,
// --consul-token-file, ...) an operator gives.
package consulclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consulpath"
	"github.com/valguard/valguard/internal/secretfile"
)

// Options are the Consul settings of a command.
type Options struct {
	// URL is one address or several, comma-separated (--consul-url).
	URL string
	// Token is the ACL token (--consul-token); TokenFile, a file holding
	// it, wins (--consul-token-file).
	Token, TokenFile string
	// CAFile verifies Consul's TLS certificate (--consul-ca-file).
	CAFile string
	// Timeout bounds every call (--consul-timeout).
	Timeout time.Duration
}

// ParseURLs parses --consul-url: one address or several, comma-separated,
// all http or all https. It returns the scheme and the host:port of each.
func ParseURLs(flag string) (string, []string, error) {
	var scheme string
	var hosts []string
	for _, raw := range strings.Split(flag, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return "", nil, fmt.Errorf("--consul-url %q: an empty address in the list", flag)
		}
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			return "", nil, fmt.Errorf("--consul-url %q: want http://host:port or https://host:port (several: comma-separated)", raw)
		}
		if scheme != "" && u.Scheme != scheme {
			return "", nil, fmt.Errorf("--consul-url %q: every address must use the same scheme (%s and %s given)", flag, scheme, u.Scheme)
		}
		if slices.Contains(hosts, u.Host) {
			return "", nil, fmt.Errorf("--consul-url %q: %s is given twice", flag, u.Host)
		}
		scheme, hosts = u.Scheme, append(hosts, u.Host)
	}
	return scheme, hosts, nil
}

// New builds a Consul client whose calls go over every address of o.URL
// (consulpath), and returns that path. Before it returns, every address
// that answers must be of one cluster: two clusters in one list are two
// locks.
func New(ctx context.Context, o Options) (*api.Client, *consulpath.Transport, error) {
	cfg := api.DefaultNonPooledConfig()
	scheme, hosts, err := ParseURLs(o.URL)
	if err != nil {
		return nil, nil, err
	}
	cfg.Scheme = scheme
	cfg.Token = o.Token
	if f := o.TokenFile; f != "" {
		if err := secretfile.CheckPrivate(f, "consul-token-file"); err != nil {
			return nil, nil, err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--consul-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return nil, nil, fmt.Errorf("--consul-token-file %s is empty", f)
		}
		cfg.Token, cfg.TokenFile = tok, ""
	}
	if f := o.CAFile; f != "" {
		if _, err := os.Stat(f); err != nil {
			return nil, nil, fmt.Errorf("--consul-ca-file: %w", err)
		}
		cfg.TLSConfig.CAFile = f
		if scheme != "https" {
			return nil, nil, errors.New("--consul-ca-file is set but --consul-url is not https://")
		}
	}
	client, path, err := consulpath.NewClient(cfg, hosts)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*o.Timeout+time.Second)
	defer cancel()
	if err := path.Verify(ctx); err != nil {
		return nil, nil, fmt.Errorf("--consul-url: %w", err)
	}
	return client, path, nil
}
