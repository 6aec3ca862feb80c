package main

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
	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/consulpath"
)

// consulFlags are shared by the subcommands that talk to Consul. The usual
// CONSUL_HTTP_* variables are honoured after the VALGUARD_* ones.
func consulFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "consul-url", Value: "http://127.0.0.1:8500", Usage: "Consul HTTP API address; several, comma-separated (servers or agents of one datacenter), " +
			"are used in turn: a call that cannot connect goes to the next at once, and after a call that failed once sent the next call goes to the next address; " +
			"every address that answers must name the same Raft servers (/v1/status/peers) at start, or the command refuses to run; " +
			"an address that fails and comes back with servers of another cluster is never used",
			EnvVars: append(env("consul-url"), "CONSUL_HTTP_ADDR")},
		&cli.StringFlag{Name: "consul-token", Usage: "Consul ACL token (prefer --consul-token-file)",
			EnvVars: append(env("consul-token"), "CONSUL_HTTP_TOKEN")},
		&cli.PathFlag{Name: "consul-token-file", Usage: "file holding the Consul ACL token",
			EnvVars: append(env("consul-token-file"), "CONSUL_HTTP_TOKEN_FILE")},
		&cli.PathFlag{Name: "consul-ca-file", Usage: "CA certificate to verify Consul's TLS certificate",
			EnvVars: append(env("consul-ca-file"), "CONSUL_CACERT")},
		&cli.DurationFlag{Name: "consul-timeout", Value: 2 * time.Second, Usage: "bound on every Consul call",
			EnvVars: env("consul-timeout")},
	}
}

// consulClient builds a Consul client from the flags.
func consulClient(c *cli.Context) (*api.Client, error) {
	client, _, err := consulClientPath(c)
	return client, err
}

// consulURLs parses --consul-url: one address or several, comma-separated,
// all http or all https. It returns the scheme and the host:port of each.
func consulURLs(flag string) (string, []string, error) {
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

// consulClientPath builds a Consul client from the flags whose calls go
// over every --consul-url address (consulpath), and returns that path.
// For valguard run it also checks that the token has every permission the
// run needs (checkConsulAccess); the other commands check theirs once
// they know the validator's lock id.
func consulClientPath(c *cli.Context) (*api.Client, *consulpath.Transport, error) {
	cfg := api.DefaultNonPooledConfig()
	scheme, hosts, err := consulURLs(c.String("consul-url"))
	if err != nil {
		return nil, nil, err
	}
	cfg.Scheme = scheme
	cfg.Token = c.String("consul-token")
	if f := c.Path("consul-token-file"); f != "" {
		if err := checkPrivate(f, "consul-token-file"); err != nil {
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
	if f := c.Path("consul-ca-file"); f != "" {
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
	// Every address that answers must be of one cluster before anything
	// is read or written: two clusters in one list are two locks.
	ctx, cancel := context.WithTimeout(c.Context, 3*c.Duration("consul-timeout")+time.Second)
	defer cancel()
	if err := path.Verify(ctx); err != nil {
		return nil, nil, fmt.Errorf("--consul-url: %w", err)
	}
	if c.Command.Name == "run" {
		// valguard run's lock id is the one validatorIDFromKey derives
		// from the key newNode has already loaded.
		id, err := validatorIDFromKey(c)
		if err != nil {
			return nil, nil, err
		}
		if err := checkConsulAccess(c, client, id, accessRun); err != nil {
			return nil, nil, err
		}
	}
	return client, path, nil
}
