package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/valguard/valguard/internal/consulclient"
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

// consulOptions are the Consul flags of command c.
func consulOptions(c *cli.Context) consulclient.Options {
	return consulclient.Options{URL: c.String("consul-url"), Token: c.String("consul-token"), TokenFile: c.Path("consul-token-file"),
		CAFile: c.Path("consul-ca-file"), Timeout: c.Duration("consul-timeout")}
}
