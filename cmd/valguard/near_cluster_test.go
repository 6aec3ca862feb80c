//go:build e2e

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/testnet"
)

const nearAccount = "pool.poolv1.near"

var (
	standinOnce sync.Once
	standinBin  string
	standinErr  error
)

// standin builds the neard stand-in (internal/neardstandin) once, as a
// binary named neard: neard itself cannot be built here.
func standin(t *testing.T) string {
	t.Helper()
	standinOnce.Do(func() {
		dir := filepath.Dir(valguardBin)
		standinBin = filepath.Join(dir, "neard")
		out, err := exec.Command("go", "build", "-o", standinBin, "../../internal/neardstandin").CombinedOutput()
		if err != nil {
			standinErr = fmt.Errorf("build the neard stand-in: %v\n%s", err, out)
		}
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	return standinBin
}

// nearCluster is a Consul agent, one NEAR validator's keys and a shared
// chain clock for stand-ins, for end-to-end tests.
type nearCluster struct {
	t       *testing.T
	dir     string
	consul  *consultest.Agent
	bin     string
	genesis time.Time
	journal string
	key     string // the validator key
	vnode   string // the validator's node key
	vnodePK string
}

func newNEARCluster(t *testing.T) *nearCluster {
	dir := t.TempDir()
	c := &nearCluster{
		t: t, dir: dir, consul: consultest.Start(t), bin: standin(t),
		genesis: time.Now(), journal: filepath.Join(dir, "journal"),
		key: filepath.Join(dir, "validator_key.json"), vnode: filepath.Join(dir, "validator_node_key.json"),
	}
	writeNEARKey(t, c.key, nearAccount)
	c.vnodePK = writeNEARKey(t, c.vnode, "node")
	return c
}

// nearReplica is a valguard replica beside a neard stand-in.
type nearReplica struct {
	*replica
	home                 string
	rpc                  string // host:port of the stand-in's RPC
	voterAddr, validAddr string
}

// replica creates a replica: `neard init` of its home, its own RPC and
// network ports, valguard started with standin the environment of its neard.
func (c *nearCluster) replica(id string, promotion string, standinEnv []string, extra ...string) *nearReplica {
	t := c.t
	home := filepath.Join(c.dir, id)
	if out, err := exec.Command(c.bin, "--home", home, "init", "--chain-id", "localnet").CombinedOutput(); err != nil {
		t.Fatalf("neard init: %v\n%s", err, out)
	}
	r := &nearReplica{
		home:      home,
		rpc:       fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t)),
		voterAddr: fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t)),
		validAddr: fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t)),
	}
	cfgPath := filepath.Join(home, "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if data, err = sjson.SetBytes(data, "rpc.addr", r.rpc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--node", "neard", "--node-home", home, "--node-binary", c.bin,
		"--validator-key", c.key, "--validator-node-key", c.vnode,
		"--voter-network-addr", r.voterAddr, "--validator-network-addr", r.validAddr,
		"--public-address", "127.0.0.1", "--promotion", promotion, "--promotion-timeout", "3s",
		"--consul-url", "http://" + c.consul.Addr, "--stop-timeout", "10s",
	}, extra...)
	r.replica = newReplica(t, id, c.dir, args...)
	r.env = append([]string{
		"STANDIN_GENESIS=" + strconv.FormatInt(c.genesis.UnixMilli(), 10),
		"STANDIN_BLOCK_INTERVAL=200ms", "STANDIN_JOURNAL=" + c.journal,
		"STANDIN_START_DELAY=300ms", "STANDIN_SYNC_DELAY=500ms", "STANDIN_SHUTDOWN_DELAY=1s",
		"CREDENTIALS_DIRECTORY=",
	}, standinEnv...)
	return r
}

// status is the stand-in's /status, "" when it does not answer.
func (r *nearReplica) status() string {
	return string(httpGet("http://" + r.rpc + "/status"))
}

func (r *nearReplica) validatorLoaded() bool {
	return gjson.Get(r.status(), "validator_account_id").String() == nearAccount
}

func (r *nearReplica) configGet(path string) gjson.Result {
	data, _ := os.ReadFile(filepath.Join(r.home, "config.json"))
	return gjson.GetBytes(data, path)
}

func (r *nearReplica) link(name string) string {
	target, _ := os.Readlink(filepath.Join(r.home, name))
	return target
}

// listening reports whether something accepts TCP connections at addr.
func listening(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// journalLines reads the stand-ins' production journal: height → pids.
func (c *nearCluster) journalLines() (map[int64][]string, int) {
	f, err := os.Open(c.journal)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	out := map[int64][]string{}
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			c.t.Fatalf("journal line %q is not 'height account pid'", sc.Text())
		}
		h, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			c.t.Fatalf("journal line %q: %v", sc.Text(), err)
		}
		out[h] = append(out[h], fields[1]+"/"+fields[2])
		n++
	}
	return out, n
}

// noDoubleSign asserts that no height was produced twice for the account.
func (c *nearCluster) noDoubleSign() {
	c.t.Helper()
	lines, n := c.journalLines()
	for h, who := range lines {
		if len(who) > 1 {
			c.t.Fatalf("height %d produced %d times: %v", h, len(who), who)
		}
	}
	c.t.Logf("journal: %d heights produced, none twice", n)
}

// producedBy counts the journal lines written by pid.
func (c *nearCluster) producedBy(pid int) int {
	lines, _ := c.journalLines()
	n := 0
	for _, who := range lines {
		for _, w := range who {
			if strings.HasSuffix(w, "/"+strconv.Itoa(pid)) {
				n++
			}
		}
	}
	return n
}

// producing waits until pid produces a height it had not produced before.
func (c *nearCluster) producing(pid int, d time.Duration) {
	c.t.Helper()
	before := c.producedBy(pid)
	if !within(c.t.Context(), d, func() bool { return c.producedBy(pid) > before }) {
		c.t.Fatalf("neard %d produced nothing within %s", pid, d)
	}
}

// oneValidator watches the replicas until the test ends and fails it if
// two of them may produce at once: a replica counts while it reports
// Validating and, whatever it reports, while the neard it gave the
// validator key to (started as validator or hot-promoted) is alive — a
// replica in Shutdown whose neard still runs is a producer (oneSigner).
func oneValidator(t *testing.T, rs ...*nearReplica) {
	var reps []*replica
	for _, r := range rs {
		reps = append(reps, r.replica)
	}
	oneSigner(t, reps...)
}

// activeValidator runs `valguard active-validator` and returns its output
// and exit code.
func (c *nearCluster) activeValidator() (string, int) {
	cmd := exec.Command(valguardBin, "active-validator", "--validator-key", c.key, "--consul-url", "http://"+c.consul.Addr)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return string(out), code
}

// httpGet returns the body of a 200 answer, nil otherwise.
func httpGet(url string) []byte {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(resp.Body)
	return body
}

func gjsonString(json, path string) string { return gjson.Get(json, path).String() }

// TestPossibleSigners: the signer check counts a replica whose validator
// node is alive whatever its state says (Shutdown here), and only that
// node: a live voter node, or a validator node that has exited, does not
// count. Checking states alone (Validating) would see one signer below.
func TestPossibleSigners(t *testing.T) {
	dir := t.TempDir()
	fake := func(id, state string) *replica {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "valguard_state{state=%q} 1\n", state)
		}))
		t.Cleanup(srv.Close)
		return &replica{t: t, id: id, logPath: filepath.Join(dir, id+".log"), metrics: strings.TrimPrefix(srv.URL, "http://")}
	}
	appendLog := func(r *replica, text string) {
		f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	started := func(role string, pid int) string {
		return fmt.Sprintf(`{"level":"info","role":%q,"pid":%d,"message":"node started"}`+"\n", role, pid)
	}

	stopping, leader := fake("a", "Shutdown"), fake("b", "Validating")
	ws := []*signerWatch{{r: stopping}, {r: leader}}
	node := sleeper()
	// A voter node that runs holds no key; the node's own output is skipped.
	appendLog(stopping, started("voter", node.Process.Pid)+"I[2026] some node output\n")
	if got := possibleSigners(ws); len(got) != 1 {
		t.Fatalf("voter node alive: possible signers %v, want only b", got)
	}
	// The validator node, its line not yet complete: not seen yet.
	node = sleeper()
	line := started("validator", node.Process.Pid)
	appendLog(stopping, line[:20])
	if got := possibleSigners(ws); len(got) != 1 {
		t.Fatalf("half a line: possible signers %v, want only b", got)
	}
	appendLog(stopping, line[20:])
	if got := possibleSigners(ws); len(got) != 2 || !strings.Contains(got[0], "alive") {
		t.Fatalf("a in Shutdown with its validator node alive: possible signers %v, want a and b", got)
	}
	_ = node.Process.Kill()
	_ = node.Wait()
	if got := possibleSigners(ws); len(got) != 1 {
		t.Fatalf("a's validator node reaped: possible signers %v, want only b", got)
	}
	// A hot promotion gives the key to the running node.
	hot := sleeper()
	appendLog(stopping, started("voter", hot.Process.Pid)+
		fmt.Sprintf(`{"level":"info","pid":%d,"message":"hot promotion: loading the validator key into the running node"}`+"\n", hot.Process.Pid))
	if got := possibleSigners(ws); len(got) != 2 {
		t.Fatalf("a's hot-promoted node alive: possible signers %v, want a and b", got)
	}
}
