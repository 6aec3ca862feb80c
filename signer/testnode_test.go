//go:build e2e

package signer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cmtconfig "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/privval"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"github.com/cometbft/cometbft/types"
	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/internal/testnet"
)

// testNode is a single-validator CometBFT chain (kvstore) on loopback
// whose node has no validator key: it listens on priv_validator_laddr and
// signs through whoever dials it. The validator key and its sign state
// live outside the home, in PV, the real FilePV.
type testNode struct {
	t       *testing.T
	Bin     string
	Dir     string // short: socket paths stay under sun_path's limit
	Home    string
	ChainID string
	RPC     string // http://127.0.0.1:port
	Address string // the validator's hex address
	Laddr   string // priv_validator_laddr the node is started with
	PV      *privval.FilePV
	starts  int
}

// newTestNode writes a chain with `cometbft init`, moves the validator key
// out of the home, and sets loopback ports of its own, proxy_app kvstore
// and fast timeouts (docs/testing.md, localnet facts). laddr builds priv_validator_laddr from
// the test's directory. It skips the test when no cometbft binary is
// installed (scripts/install-deps.sh).
func newTestNode(t *testing.T, laddr func(dir string) string) *testNode {
	t.Helper()
	bin, err := localnet.CometBFTBinary()
	if errors.Is(err, localnet.ErrNoBinary) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := shortDir(t)
	n := &testNode{t: t, Bin: bin, Dir: dir, Home: filepath.Join(dir, "home")}
	if out, err := exec.Command(bin, "init", "--home", n.Home).CombinedOutput(); err != nil {
		t.Fatalf("cometbft init: %v\n%s", err, out)
	}
	gen, err := types.GenesisDocFromFile(filepath.Join(n.Home, "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	n.ChainID = gen.ChainID
	keyFile, stateFile := filepath.Join(dir, "pv_key.json"), filepath.Join(dir, "pv_state.json")
	for from, to := range map[string]string{"config/priv_validator_key.json": keyFile, "data/priv_validator_state.json": stateFile} {
		if err := os.Rename(filepath.Join(n.Home, from), to); err != nil {
			t.Fatal(err)
		}
	}
	n.PV = privval.LoadFilePV(keyFile, stateFile)
	n.Address = n.PV.GetAddress().String()

	rpcPort, p2pPort := testnet.FreePort(t), testnet.FreePort(t)
	n.RPC = fmt.Sprintf("http://127.0.0.1:%d", rpcPort)
	cfg := cmtconfig.DefaultConfig()
	cfg.Moniker = "conformance"
	cfg.ProxyApp = "kvstore"
	cfg.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", rpcPort)
	cfg.RPC.PprofListenAddress = ""
	cfg.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p2pPort)
	cfg.Consensus.TimeoutCommit = 500 * time.Millisecond
	cfg.Consensus.TimeoutPropose = time.Second
	cfg.Consensus.DoubleSignCheckHeight = 0
	cfg.Instrumentation.Prometheus = false
	cmtconfig.WriteConfigFile(filepath.Join(n.Home, "config", "config.toml"), cfg)
	n.Laddr = laddr(dir)
	return n
}

// unixLaddr is a priv_validator_laddr on a socket in the test's directory.
func unixLaddr(dir string) string { return "unix://" + filepath.Join(dir, "privval.sock") }

// SocketPath is the unix socket's path ("" for tcp).
func (n *testNode) SocketPath() string {
	network, address, err := ParseAddr(n.Laddr)
	if err != nil || network != "unix" {
		return ""
	}
	return address
}

// Start starts the node with --priv_validator_laddr, logging to
// Dir/node<i>.log. It is killed when the test ends.
func (n *testNode) Start() *localnet.Process {
	n.t.Helper()
	n.starts++
	logPath := filepath.Join(n.Dir, fmt.Sprintf("node%d.log", n.starts))
	p, err := localnet.StartProcess(context.Background(), logPath, nil, n.Bin,
		"start", "--home", n.Home, "--priv_validator_laddr", n.Laddr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() {
		if err := p.Stop(localnet.DefaultStopTimeout); err != nil {
			n.t.Log(err)
		}
		if n.t.Failed() {
			n.t.Logf("%s (tail):\n%s", logPath, tail(logPath, 30))
		}
	})
	return p
}

// WaitHeight waits up to timeout for height h and returns when it was seen.
func (n *testNode) WaitHeight(h int64, timeout time.Duration) time.Time {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := localnet.WaitHeight(ctx, n.RPC, h); err != nil {
		n.t.Fatal(err)
	}
	return time.Now()
}

// Height is the node's latest height (0 when it does not answer).
func (n *testNode) Height() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h, _ := localnet.Height(ctx, n.RPC)
	return h
}

// SignedAt reports whether the commit of height h carries the validator's
// signature.
func (n *testNode) SignedAt(h int64) bool {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := localnet.SignedAt(ctx, n.RPC, n.Address, h)
	if err != nil {
		n.t.Fatal(err)
	}
	return ok
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// seenReq is one request the node sent.
type seenReq struct {
	At    time.Time
	Kind  string // pubkey, ping, vote, proposal
	H     int64
	R     int32
	Step  int8 // 1 proposal, 2 prevote, 3 precommit (FilePV's steps)
	Reply string
}

func (r seenReq) hrs() string { return fmt.Sprintf("%d/%d/%d", r.H, r.R, r.Step) }

// pvHandler is the test's signer: the real FilePV behind Serve, a hook
// that may answer instead (refuse, park), and a record of every request.
type pvHandler struct {
	pv      *privval.FilePV
	chainID string

	mu   sync.Mutex
	reqs []seenReq
	// hook, if set, sees each request first; ok = its reply is sent.
	hook func(ctx context.Context, r seenReq) (reply privvalproto.Message, ok bool)
}

func newPVHandler(n *testNode) *pvHandler { return &pvHandler{pv: n.PV, chainID: n.ChainID} }

func (p *pvHandler) Handle(ctx context.Context, req privvalproto.Message) privvalproto.Message {
	r := seenReq{At: time.Now()}
	switch m := req.Sum.(type) {
	case *privvalproto.Message_PubKeyRequest:
		r.Kind = "pubkey"
	case *privvalproto.Message_PingRequest:
		r.Kind = "ping"
	case *privvalproto.Message_SignVoteRequest:
		v := m.SignVoteRequest.GetVote()
		r.Kind, r.H, r.R = "vote", v.GetHeight(), v.GetRound()
		r.Step = 2
		if v.GetType() == 2 { // SIGNED_MSG_TYPE_PRECOMMIT
			r.Step = 3
		}
	case *privvalproto.Message_SignProposalRequest:
		pr := m.SignProposalRequest.GetProposal()
		r.Kind, r.H, r.R, r.Step = "proposal", pr.GetHeight(), pr.GetRound(), 1
	}
	p.mu.Lock()
	hook := p.hook
	p.mu.Unlock()
	reply, ok := privvalproto.Message{}, false
	if hook != nil {
		reply, ok = hook(ctx, r)
	}
	if !ok {
		var err error
		reply, err = privval.DefaultValidationRequestHandler(p.pv, req, p.chainID)
		if err != nil {
			r.Reply = "error: " + err.Error()
		}
	}
	if r.Reply == "" {
		r.Reply = fmt.Sprintf("%T", reply.Sum)
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, r)
	p.mu.Unlock()
	return reply
}

// setHook replaces the hook.
func (p *pvHandler) setHook(h func(ctx context.Context, r seenReq) (privvalproto.Message, bool)) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

// seen returns the requests answered so far that match keep (all if nil).
func (p *pvHandler) seen(keep func(seenReq) bool) []seenReq {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seenReq
	for _, r := range p.reqs {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// waitFor waits up to timeout for a request matching keep, answered at or
// after since, and returns it.
func (p *pvHandler) waitFor(t *testing.T, since time.Time, timeout time.Duration, what string, keep func(seenReq) bool) seenReq {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if rs := p.seen(func(r seenReq) bool { return !r.At.Before(since) && keep(r) }); len(rs) > 0 {
			return rs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isPubKey(r seenReq) bool { return r.Kind == "pubkey" }
