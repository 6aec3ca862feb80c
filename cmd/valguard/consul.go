package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/urfave/cli/v2"
)

// consulFlags are shared by the subcommands that talk to Consul. The usual
// CONSUL_HTTP_* variables are honoured after the VALGUARD_* ones.
func consulFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "consul-url", Value: "http://127.0.0.1:8500", Usage: "Consul HTTP API address",
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
	cfg := api.DefaultNonPooledConfig()
	raw := c.String("consul-url")
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--consul-url %q: want http://host:port or https://host:port", c.String("consul-url"))
	}
	cfg.Address, cfg.Scheme = u.Host, u.Scheme
	cfg.Token = c.String("consul-token")
	if f := c.Path("consul-token-file"); f != "" {
		if err := checkPrivate(f, "consul-token-file"); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--consul-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return nil, fmt.Errorf("--consul-token-file %s is empty", f)
		}
		cfg.Token, cfg.TokenFile = tok, ""
	}
	if f := c.Path("consul-ca-file"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("--consul-ca-file: %w", err)
		}
		cfg.TLSConfig.CAFile = f
		if u.Scheme != "https" {
			return nil, errors.New("--consul-ca-file is set but --consul-url is not https://")
		}
	}
	return api.NewClient(cfg)
}
