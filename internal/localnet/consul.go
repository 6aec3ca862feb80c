package localnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ConsulStartTimeout bounds how long StartConsul waits for the agent.
const ConsulStartTimeout = 30 * time.Second

// Consul is a dev-mode Consul agent on loopback (for the demo and tests).
type Consul struct {
	Addr    string // host:port of the HTTP API
	Node    string // the agent's node name
	LogPath string
	Scheme  string // "http", or "https" with ConsulOptions.TLS
	Token   string // the management token with ConsulOptions.ManagementToken
	*Process
}

// ConsulBinary finds consul: $VALGUARD_CONSUL, the cache, then PATH.
func ConsulBinary() (string, error) {
	if p := os.Getenv("VALGUARD_CONSUL"); p != "" {
		return p, checkExecutable(p)
	}
	if dir, err := cacheDir(); err == nil {
		if p := filepath.Join(dir, "bin", "consul"); checkExecutable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("consul not installed: run scripts/install-deps.sh (make demo and make test do)")
}

// StartConsul starts `consul agent -dev` on loopback, its data and log
// under dir, and waits (at most ConsulStartTimeout) until it has elected
// itself leader and registered its node, so sessions can be created at
// once. freePort picks each port (nil: a free loopback port). The agent is
// stopped when ctx is done; on error it has been killed.
func StartConsul(ctx context.Context, bin, dir string, freePort func() (int, error)) (*Consul, error) {
	return StartConsulWith(ctx, bin, dir, freePort, ConsulOptions{})
}

// ConsulOptions turn on what a plain dev agent lacks. The zero value is
// the plain agent StartConsul starts.
type ConsulOptions struct {
	// ManagementToken, when set, turns ACLs on with default_policy
	// "deny"; the token is the initial management token and the agent's
	// own token (so that it can register its node).
	ManagementToken string
	// TLS, when set, serves the HTTP API over HTTPS only (no plain HTTP
	// port) with these files.
	TLS *ConsulTLS
}

// ConsulTLS names the PEM files of an agent's HTTPS API.
type ConsulTLS struct {
	CAFile, CertFile, KeyFile string
}

// StartConsulWith is StartConsul with ACLs and TLS as opts says. The
// agent's readiness is checked with the management token and over TLS
// with opts.TLS.CAFile.
func StartConsulWith(ctx context.Context, bin, dir string, freePort func() (int, error), opts ConsulOptions) (*Consul, error) {
	if freePort == nil {
		freePort = pickPort
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	ports := make([]int, 4) // http (https with TLS), serf-lan, serf-wan, server
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	node := "valguard-" + strconv.Itoa(ports[0])
	logPath := filepath.Join(dir, "consul.log")
	args := []string{"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", node, "-data-dir", filepath.Join(dir, "data"),
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1"}
	var conf strings.Builder
	if t := opts.ManagementToken; t != "" {
		fmt.Fprintf(&conf, "acl {\n  enabled = true\n  default_policy = \"deny\"\n  down_policy = \"deny\"\n"+
			"  tokens {\n    initial_management = %q\n    agent = %q\n  }\n}\n", t, t)
	}
	scheme := "http"
	if t := opts.TLS; t != nil {
		scheme = "https"
		fmt.Fprintf(&conf, "ports {\n  http = -1\n  https = %d\n}\n"+
			"tls {\n  defaults {\n    ca_file = %q\n    cert_file = %q\n    key_file = %q\n    verify_incoming = false\n  }\n}\n",
			ports[0], t.CAFile, t.CertFile, t.KeyFile)
	} else {
		args = append(args, "-http-port", strconv.Itoa(ports[0]))
	}
	if conf.Len() > 0 {
		file := filepath.Join(dir, "extra.hcl")
		if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-config-file", file)
	}
	p, err := StartProcess(ctx, logPath, []string{"CHECKPOINT_DISABLE=1"}, bin, args...)
	if err != nil {
		return nil, fmt.Errorf("start consul: %w", err)
	}
	c := &Consul{Addr: "127.0.0.1:" + strconv.Itoa(ports[0]), Node: node, LogPath: logPath, Process: p,
		Scheme: scheme, Token: opts.ManagementToken}
	client := &http.Client{Timeout: time.Second}
	if opts.TLS != nil {
		pem, err := os.ReadFile(opts.TLS.CAFile)
		if err != nil {
			_ = p.Kill()
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			_ = p.Kill()
			return nil, fmt.Errorf("%s holds no PEM certificate", opts.TLS.CAFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	}
	if err := c.waitReady(ctx, client); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%w; agent log %s:\n%s", err, logPath, logTail(logPath, 30))
	}
	return c, nil
}

// waitReady polls the agent until it names a leader and its own node is
// in the catalog (sessions are bound to a node: before that, creating one
// fails with "Missing node registration"), the agent exits, or the
// timeout passes.
func (c *Consul) waitReady(ctx context.Context, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, ConsulStartTimeout)
	defer cancel()
	base := c.Scheme + "://" + c.Addr
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var leader string
		var node *struct{ Node struct{ Node string } }
		if getJSONToken(ctx, client, base+"/v1/status/leader", c.Token, &leader) == nil && leader != "" &&
			getJSONToken(ctx, client, base+"/v1/catalog/node/"+c.Node, c.Token, &node) == nil && node != nil && node.Node.Node == c.Node {
			return nil
		}
		select {
		case <-c.Done():
			return fmt.Errorf("consul agent exited before it was ready: %v", c.Wait())
		case <-ctx.Done():
			return fmt.Errorf("consul agent on %s not ready (leader elected, node registered) within %s", c.Addr, ConsulStartTimeout)
		case <-tick.C:
		}
	}
}

// getJSON decodes the JSON answer to GET url into v.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	return getJSONToken(ctx, client, url, "", v)
}

// getJSONToken is getJSON with a Consul ACL token ("" sends none).
func getJSONToken(ctx context.Context, client *http.Client, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// logTail returns the last n lines of the file at path, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
