// Package consultest starts real Consul agents for tests.
//
// Every agent runs in dev mode (in-memory, a single server that elects
// itself) on loopback ports of its own, so tests may start as many as they
// like in parallel. The agent itself is started by internal/localnet (which
// the demo uses too); this package adds what tests need: skip or fail when
// consul is missing, a retry with new ports, cleanup. The consul binary
// comes from scripts/install-deps.sh.
package consultest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/internal/testnet"
)

// Binary returns the path of the consul binary: $VALGUARD_CONSUL if set,
// else ${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}/bin/consul
// if it exists, else consul on $PATH. When none is found the test fails if
// $CI is "true" (CI must run the integration tests) and is skipped
// otherwise.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := localnet.ConsulBinary()
	switch {
	case err == nil:
		return bin
	case os.Getenv("VALGUARD_CONSUL") != "":
		t.Fatalf("VALGUARD_CONSUL: %v", err)
	case os.Getenv("CI") == "true":
		t.Fatal(err)
	default:
		t.Skip(err)
	}
	return ""
}

// Agent is a running dev-mode Consul agent.
type Agent struct {
	// Addr is the host:port of the agent's HTTP API.
	Addr string
	// Node is the agent's node name.
	Node string
	// LogPath is the file that holds the agent's output.
	LogPath string
	// URL is the agent's HTTP API as --consul-url takes it: http://Addr,
	// or https://Addr for an agent started with Options.TLS.
	URL string
	// Token is the management token of an agent started with
	// Options.ACL ("" otherwise).
	Token string
	// CAFile is the PEM certificate of the CA that signed the HTTPS
	// certificate of an agent started with Options.TLS ("" otherwise).
	CAFile string

	p        *localnet.Process
	stopOnce sync.Once
}

// Start starts a dev-mode agent on free loopback ports, waits until it has
// elected itself leader and registered its node (so sessions can be
// created at once), and registers its stop with t.Cleanup. A start that
// fails, for instance because another process took one of the ports in the
// meantime, is retried once with new ports.
func Start(t testing.TB) *Agent {
	t.Helper()
	return StartWith(t, Options{})
}

// Options turn on what a plain dev agent lacks; the zero value is the
// agent Start starts.
type Options struct {
	// ACL turns ACLs on with default_policy "deny" (and down_policy
	// "deny"); Agent.Token is the management token.
	ACL bool
	// TLS serves the HTTP API over HTTPS only, with a certificate for
	// 127.0.0.1 signed by a CA of the agent's own (Agent.CAFile).
	TLS bool
}

// StartWith is Start with ACLs and TLS as opts says.
func StartWith(t testing.TB, opts Options) *Agent {
	t.Helper()
	bin := Binary(t)
	port := func() (int, error) { return testnet.FreePort(t), nil }
	var lopts localnet.ConsulOptions
	if opts.ACL {
		lopts.ManagementToken = NewUUID(t)
	}
	if opts.TLS {
		ca := NewCA(t, filepath.Join(t.TempDir(), "ca"))
		cert, key := ca.ServerCert(t, "127.0.0.1")
		lopts.TLS = &localnet.ConsulTLS{CAFile: ca.CertFile, CertFile: cert, KeyFile: key}
	}
	var errs []error
	for attempt := 1; attempt <= 2; attempt++ {
		dir := filepath.Join(t.TempDir(), "consul-"+strconv.Itoa(attempt))
		c, err := localnet.StartConsulWith(context.Background(), bin, dir, port, lopts)
		if err == nil {
			a := &Agent{Addr: c.Addr, Node: c.Node, LogPath: c.LogPath, URL: c.Scheme + "://" + c.Addr, Token: c.Token, p: c.Process}
			if lopts.TLS != nil {
				a.CAFile = lopts.TLS.CAFile
			}
			t.Cleanup(a.Stop)
			return a
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	t.Fatalf("start consul agent: %v", errors.Join(errs...))
	return nil
}

// Client returns a new API client for the agent; for an agent started
// with Options.ACL it holds the management token, with Options.TLS it
// trusts the agent's CA.
func (a *Agent) Client(t testing.TB) *api.Client {
	t.Helper()
	if a.Token == "" && a.CAFile == "" {
		return NewClient(t, a.Addr)
	}
	cfg := &api.Config{Address: a.Addr, Scheme: "http", Token: a.Token}
	if a.CAFile != "" {
		cfg.Scheme = "https"
		cfg.TLSConfig.CAFile = a.CAFile
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("consul client for %s: %v", a.Addr, err)
	}
	return c
}

// NewClient returns an API client for the Consul HTTP API at addr
// (host:port), for instance a fault proxy in front of an agent. It ignores
// CONSUL_* environment variables.
func NewClient(t testing.TB, addr string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: addr, Scheme: "http"})
	if err != nil {
		t.Fatalf("consul client for %s: %v", addr, err)
	}
	return c
}

// Stop kills the agent's process group and waits for it to be reaped. It
// is safe to call more than once; Start already registers it with
// t.Cleanup.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		if a.p != nil {
			_ = a.p.Kill()
		}
	})
}

// Cluster is a running Consul cluster of server agents (see
// localnet.StartConsulCluster), for tests that need Raft: a leader that
// can be killed, a quorum that can be lost.
type Cluster struct {
	*localnet.ConsulCluster
	t testing.TB
}

// StartCluster starts n server agents on free loopback ports, waits until
// they have a leader and every one is in the catalog, and registers their
// stop with t.Cleanup. On failure the test fails (or is skipped, see
// Binary).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Binary(t)
	port := func() (int, error) { return testnet.FreePort(t), nil }
	var errs []error
	for attempt := 1; attempt <= 2; attempt++ {
		dir := filepath.Join(t.TempDir(), "consul-cluster-"+strconv.Itoa(attempt))
		c, err := localnet.StartConsulCluster(context.Background(), bin, dir, n, port)
		if err == nil {
			t.Cleanup(c.Kill)
			return &Cluster{ConsulCluster: c, t: t}
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
	}
	t.Fatalf("start consul cluster: %v", errors.Join(errs...))
	return nil
}

// KillLeader SIGKILLs the server that is the Raft leader and returns its
// index.
func (c *Cluster) KillLeader() int {
	c.t.Helper()
	i, err := c.Leader(c.t.Context())
	if err != nil {
		c.t.Fatalf("find the consul leader: %v", err)
	}
	if err := c.Servers[i].Kill(); err != nil {
		c.t.Fatalf("kill consul server %d: %v", i, err)
	}
	return i
}

// Restart starts server i again with its data and waits until the cluster
// is whole (a leader, every running server in the catalog).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.Start(context.Background(), i); err != nil {
		c.t.Fatal(err)
	}
	if err := c.WaitReady(c.t.Context(), localnet.ConsulStartTimeout); err != nil {
		c.t.Fatal(err)
	}
}

// Agent returns server i as an Agent, for code that takes one (its Stop
// does nothing: the cluster owns the process).
func (c *Cluster) Agent(i int) *Agent {
	s := c.Servers[i]
	return &Agent{Addr: s.Addr, Node: s.Node, LogPath: s.LogPath, URL: "http://" + s.Addr}
}

// NewUUID returns a random UUID, the form Consul wants for token secrets.
func NewUUID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// CA is a certificate authority made for one test.
type CA struct {
	// CertFile is the CA's PEM certificate.
	CertFile string

	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA valid for a day and writes its certificate
// to dir/ca.pem.
func NewCA(t testing.TB, dir string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "valguard test CA " + NewUUID(t)[:8]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := &CA{CertFile: filepath.Join(dir, "ca.pem"), dir: dir, cert: cert, key: key}
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// ServerCert issues a server certificate for the IP address ip (valid for
// a day) and writes it and its key to the CA's directory.
func (ca *CA) ServerCert(t testing.TB, ip string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "server.dc1.consul"},
		DNSNames:     []string{"server.dc1.consul", "localhost"},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, "server.pem"), filepath.Join(ca.dir, "server-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
