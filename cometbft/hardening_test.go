package cometbft

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/libs/bytes"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/p2p"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/keylink"
	"github.com/valguard/valguard/supervisor"
)

func TestPrepareRefusesAfterAConfigChange(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, h string, old string) // rewrites the home's configuration
	}{
		{"key file path", func(t *testing.T, h, old string) {
			write(t, filepath.Join(h, "config", "config.toml"), "priv_validator_key_file = \"config/other_key.json\"\n"+old)
		}},
		{"state file path", func(t *testing.T, h, old string) {
			write(t, filepath.Join(h, "config", "config.toml"), "priv_validator_state_file = \"/tmp/other_state.json\"\n"+old)
		}},
		{"remote signer", func(t *testing.T, h, old string) {
			write(t, filepath.Join(h, "config", "config.toml"), "priv_validator_laddr = \"tcp://127.0.0.1:1234\"\n"+old)
		}},
		{"rpc address", func(t *testing.T, h, _ string) {
			write(t, filepath.Join(h, "config", "config.toml"), freeAddrsConfig(t))
		}},
		{"a config.json that shadows config.toml", func(t *testing.T, h, _ string) {
			write(t, filepath.Join(h, "config", "config.json"), "{}")
		}},
	}
	for _, tc := range cases {
		for _, role := range []supervisor.Role{supervisor.RoleVoter, supervisor.RoleValidator} {
			t.Run(tc.name+"/"+role.String(), func(t *testing.T) {
				h, key := home(t, "")
				n := newNode(t, h, key)
				if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
					t.Fatal(err)
				}
				n.seen.Store(10)
				cfgFile := filepath.Join(h, "config", "config.toml")
				tc.change(t, h, string(mustRead(t, cfgFile)))
				before := snapshot(t, filepath.Dir(h))
				err := n.Prepare(context.Background(), role, nil)
				if err == nil || !strings.Contains(err.Error(), "restart valguard") {
					t.Fatalf("Prepare(%s) after a config change = %v, want a refusal saying to restart valguard", role, err)
				}
				assertUnchanged(t, filepath.Dir(h), before)
				if ok, _ := keylink.Verify(n.p.key, key); ok {
					t.Fatal("validator key linked")
				}
			})
		}
	}
}

func TestPrepareVoterUnlinksTheKeyBeforeRefusingAConfigChange(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	n.seen.Store(10)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(h, "config", "config.toml")
	write(t, cfgFile, "priv_validator_key_file = \"config/other_key.json\"\n"+string(mustRead(t, cfgFile)))
	err := n.Prepare(context.Background(), supervisor.RoleVoter, nil)
	if err == nil || !strings.Contains(err.Error(), "restart valguard") {
		t.Fatalf("Prepare(voter) = %v, want a refusal saying to restart valguard", err)
	}
	if _, err := os.Lstat(n.p.key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the validator key link is still there (%v)", err)
	}
}

func TestPrepareVoterUnlinksTheKeyWhenTheStateCannotBeKept(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	n.seen.Store(10)
	if err := n.Prepare(context.Background(), supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	write(t, n.p.state, `{"height":"42","round":0,"step":3}`) // the node signed on
	// The kept validator state cannot be read or written: a directory is there.
	if err := os.Remove(n.p.vstate); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(n.p.vstate, 0o700); err != nil {
		t.Fatal(err)
	}
	err := n.Prepare(context.Background(), supervisor.RoleVoter, nil)
	if err == nil {
		t.Fatal("Prepare(voter) succeeded although the sign state could not be kept")
	}
	if _, err := os.Lstat(n.p.key); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the validator key is still linked after a failed voter preparation (%v)", err)
	}
	// The last sign state is not lost: the state file still holds it.
	if st, _ := readState(n.p.state); st != (SignState{42, 0, 3}) {
		t.Fatalf("state file %+v, want height 42 kept", st)
	}
	// And the watermark still reports it.
	if wm, err := n.Watermark(); err != nil || !strings.Contains(string(wm), `"42"`) {
		t.Fatalf("watermark %s (%v), want height 42", wm, err)
	}
}

// listen holds addr (host:port) open for the test.
func listen(t *testing.T, addr string) { accept(t, "tcp", addr) }

// accept accepts (and closes) connections on network address addr for the
// test.
func accept(t *testing.T, network, addr string) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func TestNewRefusesAnAddressThatAlreadyAnswers(t *testing.T) {
	for _, which := range []string{"rpc", "p2p"} {
		t.Run(which, func(t *testing.T) {
			rpcPort, p2pPort := freePort(t), freePort(t)
			rpc, p2pAddr := fmt.Sprintf("tcp://127.0.0.1:%d", rpcPort), fmt.Sprintf("tcp://0.0.0.0:%d", p2pPort)
			busy := rpc
			if which == "rpc" {
				listen(t, fmt.Sprintf("127.0.0.1:%d", rpcPort))
			} else {
				listen(t, fmt.Sprintf("127.0.0.1:%d", p2pPort)) // 0.0.0.0 is probed on loopback
				busy = p2pAddr
			}
			h, key := home(t, addrsConfig(rpc, p2pAddr))
			before := snapshot(t, filepath.Dir(h))
			_, err := New(Config{Home: h, ValidatorKey: key, Binary: "true", Environ: []string{}})
			if err == nil || !strings.Contains(err.Error(), busy) || !strings.Contains(err.Error(), "stop it") {
				t.Fatalf("New = %v, want a refusal naming %s and the fix", err, busy)
			}
			assertUnchanged(t, filepath.Dir(h), before)
		})
	}
}

func TestCommandRefusesAnAddressThatAlreadyAnswers(t *testing.T) {
	for _, which := range []string{"rpc", "p2p"} {
		t.Run(which, func(t *testing.T) {
			rpcPort, p2pPort := freePort(t), freePort(t)
			h, key := home(t, addrsConfig(fmt.Sprintf("tcp://127.0.0.1:%d", rpcPort), fmt.Sprintf("tcp://0.0.0.0:%d", p2pPort)))
			n := newNode(t, h, key)
			if _, err := n.Command(supervisor.RoleVoter); err != nil {
				t.Fatalf("Command with free addresses: %v", err)
			}
			port := rpcPort
			if which == "p2p" {
				port = p2pPort
			}
			listen(t, fmt.Sprintf("127.0.0.1:%d", port))
			before := snapshot(t, filepath.Dir(h))
			cmd, err := n.Command(supervisor.RoleValidator)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprint(port)) {
				t.Fatalf("Command = %v, %v; want a refusal naming port %d", cmd, err, port)
			}
			assertUnchanged(t, filepath.Dir(h), before)
		})
	}
}

func TestDialTarget(t *testing.T) {
	cases := []struct {
		laddr, network, addr string
		ok                   bool
	}{
		{"tcp://0.0.0.0:26656", "tcp", "127.0.0.1:26656", true},
		{"tcp://:26656", "tcp", "127.0.0.1:26656", true},
		{"tcp://[::]:26656", "tcp", "127.0.0.1:26656", true},
		{"0.0.0.0:26656", "tcp", "127.0.0.1:26656", true},
		{"tcp://10.1.2.3:26657", "tcp", "10.1.2.3:26657", true},
		{"tcp://0.0.0.0:0", "", "", false},
		{"unix:///run/node/rpc.sock", "unix", "/run/node/rpc.sock", true},
	}
	for _, tc := range cases {
		network, addr, ok, err := dialTarget(tc.laddr)
		if err != nil || network != tc.network || addr != tc.addr || ok != tc.ok {
			t.Errorf("dialTarget(%q) = %q %q %v %v; want %q %q %v", tc.laddr, network, addr, ok, err, tc.network, tc.addr, tc.ok)
		}
	}
}

// fakeRPC answers the JSON-RPC status call as CometBFT does, reporting
// validator address *addr.
func fakeRPC(t *testing.T, addr *bytes.HexBytes) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(body, &req)
		res := ctypes.ResultStatus{
			NodeInfo: p2p.DefaultNodeInfo{},
			SyncInfo: ctypes.SyncInfo{LatestBlockHeight: 7, LatestBlockTime: time.Now()},
			ValidatorInfo: ctypes.ValidatorInfo{
				Address: *addr, PubKey: ed25519.GenPrivKey().PubKey(), VotingPower: 0,
			},
		}
		result, err := cmtjson.Marshal(&res)
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, result)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStatusOfAVoterReportingAnotherKey(t *testing.T) {
	foreign := ed25519.GenPrivKey().PubKey().Address()
	cases := []struct {
		name    string
		role    supervisor.Role
		address func(n *Node) string
		want    error
	}{
		{"voter with the validator key", supervisor.RoleVoter, func(n *Node) string { return n.Address() }, supervisor.ErrUnexpectedKey},
		{"voter with a foreign key", supervisor.RoleVoter, func(*Node) string { return foreign.String() }, supervisor.ErrUnexpectedKey},
		{"voter with its voter key", supervisor.RoleVoter, func(n *Node) string { return n.voterAddr }, nil},
		{"validator with the validator key", supervisor.RoleValidator, func(n *Node) string { return n.Address() }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, key := home(t, "")
			n := newNode(t, h, key)
			n.seen.Store(5)
			if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
				t.Fatal(err)
			}
			if tc.role == supervisor.RoleValidator {
				if err := n.Prepare(context.Background(), supervisor.RoleValidator, nil); err != nil {
					t.Fatal(err)
				}
			}
			addr := bytes.HexBytes(mustHex(t, tc.address(n)))
			rpc, err := rpchttp.New(fakeRPC(t, &addr), "/websocket")
			if err != nil {
				t.Fatal(err)
			}
			n.rpc = rpc
			st, err := n.Status(context.Background())
			if tc.want == nil {
				if err != nil || st.Height != 7 {
					t.Fatalf("Status = %+v, %v; want height 7", st, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Status = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.address(n)) {
				t.Fatalf("error %q does not name the reported address", err)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.HexBytes
	if err := json.Unmarshal([]byte(`"`+s+`"`), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCompareWatermarks(t *testing.T) {
	cases := []struct {
		a, b string
		want int
		bad  bool
	}{
		{"", "", 0, false},
		{"", `{"height":"0","round":0,"step":0}`, 0, false},
		{"", `{"height":"1","round":0,"step":0}`, -1, false},
		{`{"height":"1","round":0,"step":0}`, "", 1, false},
		{`{"height":"10","round":0,"step":3}`, `{"height":"11","round":0,"step":1}`, -1, false},
		{`{"height":"11","round":0,"step":1}`, `{"height":"10","round":5,"step":3}`, 1, false},
		{`{"height":"10","round":1,"step":1}`, `{"height":"10","round":2,"step":1}`, -1, false},
		{`{"height":"10","round":2,"step":3}`, `{"height":"10","round":2,"step":2}`, 1, false},
		{`{"height":"10","round":2,"step":2,"signature":"AA=="}`, `{"height":"10","round":2,"step":2}`, 0, false},
		{"garbage", "", 0, true},
		{"", `{"height":10}`, 0, true},
		{`{"height":"-1","round":0,"step":0}`, "", 0, true},
		{"null", "", 0, true},
	}
	for _, tc := range cases {
		var a, b []byte
		if tc.a != "" {
			a = []byte(tc.a)
		}
		if tc.b != "" {
			b = []byte(tc.b)
		}
		got, err := CompareWatermarks(a, b)
		if tc.bad {
			if err == nil {
				t.Errorf("CompareWatermarks(%s, %s) = %d, want an error", tc.a, tc.b, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CompareWatermarks(%s, %s) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	if got, err := CompareWatermarks([]byte{}, nil); err != nil || got != 0 {
		t.Errorf("empty and nil = %d, %v; want 0", got, err)
	}
}

func TestPublicKeyAndLockID(t *testing.T) {
	h, key := home(t, "")
	n := newNode(t, h, key)
	pub, err := parseKey(mustRead(t, key))
	if err != nil {
		t.Fatal(err)
	}
	if want := "tendermint/PubKeyEd25519:" + base64.StdEncoding.EncodeToString(pub.Bytes()); n.PublicKey() != want {
		t.Fatalf("PublicKey = %q, want %q", n.PublicKey(), want)
	}
	if n.LockID() != pub.Address().String() || n.LockID() != n.Address() || strings.ToUpper(n.LockID()) != n.LockID() {
		t.Fatalf("LockID = %q, want the upper-hex address %s", n.LockID(), pub.Address())
	}
	other, otherKey := home(t, "")
	if m := newNode(t, other, otherKey); m.LockID() == n.LockID() || m.PublicKey() == n.PublicKey() {
		t.Fatal("two keys with one LockID or PublicKey")
	}
}

// cometbftBinary is the CometBFT binary the test dependencies install
// (localnet.CometBFTBinary), or skips the test.
func cometbftBinary(t *testing.T) string {
	t.Helper()
	bin, err := localnet.CometBFTBinary()
	if errors.Is(err, localnet.ErrNoBinary) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// initRealHome runs cometbft init for home and sets in its config.toml
// free loopback RPC and P2P ports and the built-in kvstore app.
func initRealHome(t *testing.T, bin, h string) {
	t.Helper()
	if out, err := exec.Command(bin, "init", "--home", h).CombinedOutput(); err != nil {
		t.Fatalf("cometbft init: %v\n%s", err, out)
	}
	cfgFile := filepath.Join(h, "config", "config.toml")
	cfg := string(mustRead(t, cfgFile))
	for old, repl := range map[string]string{
		`laddr = "tcp://127.0.0.1:26657"`:     fmt.Sprintf(`laddr = "tcp://127.0.0.1:%d"`, freePort(t)),
		`laddr = "tcp://0.0.0.0:26656"`:       fmt.Sprintf(`laddr = "tcp://127.0.0.1:%d"`, freePort(t)),
		`proxy_app = "tcp://127.0.0.1:26658"`: `proxy_app = "kvstore"`,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("config.toml from cometbft init has no %s", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	write(t, cfgFile, cfg)
}

// A real CometBFT voter node, started with the command and environment
// the adapter builds, reports its voter key: the S7 check does not fire on
// a correct voter, and fires once the validator key is given to it.
func TestRealNodeVoterReportsItsVoterKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	bin := cometbftBinary(t)
	dir := t.TempDir()
	h := filepath.Join(dir, "home")
	initRealHome(t, bin, h)
	key := filepath.Join(dir, "validator_key.json")
	writeKey(t, key)
	n, err := New(Config{Home: h, ValidatorKey: key, Binary: bin, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	cmd, err := n.Command(supervisor.RoleVoter)
	if err != nil {
		t.Fatal(err)
	}
	stop := runNode(t, cmd)
	if err := firstStatus(t, n); err != nil {
		t.Fatalf("a correct voter node: %v", err)
	}
	// A second node start while this one runs is refused (its addresses answer).
	if _, err := n.Command(supervisor.RoleVoter); err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Fatalf("Command while a node runs = %v, want a refusal", err)
	}
	stop()
	// The validator key reaches the voter behind valguard's back.
	if err := os.Remove(n.p.key); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(key, n.p.key); err != nil {
		t.Fatal(err)
	}
	if cmd, err = n.Command(supervisor.RoleVoter); err != nil {
		t.Fatal(err)
	}
	runNode(t, cmd)
	if err := firstStatus(t, n); !errors.Is(err, supervisor.ErrUnexpectedKey) {
		t.Fatalf("a voter node with the validator key: %v, want ErrUnexpectedKey", err)
	}
}

// runNode starts cmd in its own process group and returns a function that
// kills the group and reaps it (also run at cleanup).
func runNode(t *testing.T, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// firstStatus polls Status until it answers or reports ErrUnexpectedKey,
// within 20 s.
func firstStatus(t *testing.T, n *Node) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := n.Status(ctx)
		cancel()
		if err == nil || errors.Is(err, supervisor.ErrUnexpectedKey) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("node status did not answer within 20s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
