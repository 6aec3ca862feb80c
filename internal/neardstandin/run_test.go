package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testInterval = 100 * time.Millisecond

// testChain returns a genesis one minute ago and the environment giving it
// to a stand-in, so that tests can compute the head themselves.
func testChain() (chain, []string) {
	g := time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli())
	return chain{genesis: g, interval: testInterval}, []string{
		"STANDIN_GENESIS=" + strconv.FormatInt(g.UnixMilli(), 10),
		"STANDIN_BLOCK_INTERVAL=" + testInterval.String(),
	}
}

var blockTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestStatusRPCMetricsAndNetworkPort(t *testing.T) {
	t.Parallel()
	home := initHome(t, "--chain-id", "standin-net")
	c, env := testChain()
	p := startRun(t, home, env...)

	before := c.head(time.Now())
	raw := p.get("/status")
	after := c.head(time.Now())
	var top, sync map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(top["sync_info"], &sync); err != nil {
		t.Fatal(err)
	}
	wantTop := []string{"chain_id", "genesis_hash", "latest_protocol_version",
		"node_key", "node_public_key", "protocol_version", "rpc_addr", "sync_info", "uptime_sec",
		"validator_account_id", "validator_public_key", "validators", "version"}
	wantSync := []string{"earliest_block_hash", "earliest_block_height", "earliest_block_time", "epoch_id",
		"epoch_start_height", "latest_block_hash", "latest_block_height", "latest_block_time",
		"latest_state_root", "syncing"}
	if got := keysOf(top); !slices.Equal(got, wantTop) {
		t.Errorf("status keys %v, want %v", got, wantTop)
	}
	if got := keysOf(sync); !slices.Equal(got, wantSync) {
		t.Errorf("sync_info keys %v, want %v", got, wantSync)
	}
	for _, k := range []string{"validator_account_id", "validator_public_key", "node_key"} {
		if string(top[k]) != "null" {
			t.Errorf("%s = %s, want null for a non-validator", k, top[k])
		}
	}
	var s statusResponse
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	nk, err := readKey(filepath.Join(home, "node_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	si := s.SyncInfo
	switch {
	case s.ChainID != "standin-net", s.RPCAddr != p.rpc, s.NodePublicKey != nk.PublicKey,
		s.ProtocolVersion != 70, s.Version.Version != "2.1.1", s.Version.Commit != "standin":
		t.Errorf("status fields: %+v", s)
	case si.Syncing, si.LatestBlockHeight < before, si.LatestBlockHeight > after:
		t.Errorf("sync_info %+v, want height in [%d, %d], not syncing", si, before, after)
	case !blockTimeRE.MatchString(si.LatestBlockTime),
		si.LatestBlockTime != c.blockTime(si.LatestBlockHeight).UTC().Format(blockTimeLayout):
		t.Errorf("latest_block_time %q for height %d", si.LatestBlockTime, si.LatestBlockHeight)
	case si.LatestBlockHash != hashOf("block", si.LatestBlockHeight), s.GenesisHash != si.EarliestBlockHash:
		t.Errorf("hashes: %+v", s)
	}

	// JSON-RPC: the same status object, the id echoed.
	for _, id := range []string{`"dontcare"`, `42`} {
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"status","params":[]}`
		var resp struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  statusResponse  `json:"result"`
		}
		postJSON(t, p, body, &resp)
		if resp.JSONRPC != "2.0" || string(resp.ID) != id || resp.Result.ChainID != "standin-net" ||
			resp.Result.SyncInfo.LatestBlockHeight < si.LatestBlockHeight {
			t.Errorf("JSON-RPC status: %+v", resp)
		}
	}
	var rpcErr struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	postJSON(t, p, `{"jsonrpc":"2.0","id":1,"method":"block","params":{"finality":"final"}}`, &rpcErr)
	if rpcErr.Error.Code != -32601 || rpcErr.Error.Message != "Method not found" {
		t.Errorf("unknown method: %+v", rpcErr)
	}

	if got := string(p.get("/health")); strings.TrimSpace(got) != "null" {
		t.Errorf("/health = %q", got)
	}
	if h := p.metric("near_block_height_head"); h < si.LatestBlockHeight {
		t.Errorf("near_block_height_head %d < %d", h, si.LatestBlockHeight)
	}
	if v, sy := p.metric("near_is_validator"), p.metric("near_sync_status"); v != 0 || sy != 0 {
		t.Errorf("near_is_validator %d, near_sync_status %d; want 0, 0", v, sy)
	}

	conn, err := net.DialTimeout("tcp", p.network, 2*time.Second)
	if err != nil {
		t.Fatalf("network.addr %s does not accept: %v", p.network, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("network.addr: read %v, want EOF (accepted and closed)", err)
	}
	conn.Close()
}

func postJSON(t *testing.T, p *proc, body string, into any) {
	t.Helper()
	resp, err := http.Post("http://"+p.rpc+"/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

func TestTwoStandinsShareTheChain(t *testing.T) {
	t.Parallel()
	_, env := testChain()
	a := startRun(t, initHome(t), env...)
	b := startRun(t, initHome(t), env...)
	ha := a.status().SyncInfo.LatestBlockHeight
	hb := b.status().SyncInfo.LatestBlockHeight
	ha2 := a.status().SyncInfo.LatestBlockHeight
	if hb < ha || hb > ha2 {
		t.Errorf("heights a %d, b %d, a %d: the stand-ins disagree", ha, hb, ha2)
	}
}

func TestGenesisDefaultsToGenesisJSON(t *testing.T) {
	t.Parallel()
	home := initHome(t)
	g, err := readGenesis(filepath.Join(home, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := startRun(t, home, "STANDIN_BLOCK_INTERVAL=100ms")
	s := p.status()
	if want := g.GenesisTime.UTC().Format(blockTimeLayout); s.SyncInfo.EarliestBlockTime != want {
		t.Errorf("earliest_block_time %s, want genesis_time %s", s.SyncInfo.EarliestBlockTime, want)
	}
}

func TestSyncDelayReportsSyncingAndProducesNothing(t *testing.T) {
	t.Parallel()
	home := initHome(t, "--account-id", "alice")
	journal := filepath.Join(t.TempDir(), "journal")
	c, env := testChain()
	p := startRun(t, home, append(env, "STANDIN_SYNC_DELAY=700ms", "STANDIN_JOURNAL="+journal)...)

	asked := time.Now()
	s := p.status()
	if !s.SyncInfo.Syncing {
		t.Skip("the stand-in was already synced when first asked (a very slow machine)")
	}
	if h := s.SyncInfo.LatestBlockHeight; h > c.head(time.Now())/2+1 {
		t.Errorf("syncing at height %d, want about half the head %d", h, c.head(time.Now()))
	}
	if m := p.metric("near_sync_status"); m == 0 {
		t.Error("near_sync_status 0 while syncing")
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		return !p.status().SyncInfo.Syncing, "still syncing"
	})
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(readJournal(t, journal)) >= 3, "fewer than 3 heights produced"
	})
	// Production starts after the sync: every height is later than the
	// head when the node still said it was syncing.
	if first := readJournal(t, journal)[0]; first.height <= c.head(asked) {
		t.Errorf("produced height %d while syncing (head %d when asked)", first.height, c.head(asked))
	}
	if m := p.metric("near_sync_status"); m != 0 {
		t.Errorf("near_sync_status %d once synced", m)
	}
}

func TestStartDelayBindsNothingUntilItEnds(t *testing.T) {
	t.Parallel()
	start := time.Now()
	p := startRun(t, initHome(t), "STANDIN_START_DELAY=500ms")
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("healthy after %s, before the 500ms start delay", took)
	}
	if !strings.Contains(p.logs(), `"message":"opening database"`) {
		t.Errorf("no start-delay log line:\n%s", p.logs())
	}
}

func TestSIGTERMWaitsShutdownDelayAndKeepsProducing(t *testing.T) {
	t.Parallel()
	home := initHome(t, "--account-id", "alice")
	journal := filepath.Join(t.TempDir(), "journal")
	c, env := testChain()
	p := startRun(t, home, append(env, "STANDIN_SHUTDOWN_DELAY=600ms", "STANDIN_JOURNAL="+journal)...)
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(readJournal(t, journal)) > 0, "nothing produced"
	})
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.exitCode(5 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.logs())
	}
	if took := time.Since(sent); took < 600*time.Millisecond {
		t.Errorf("exited %s after SIGTERM, before the 600ms shutdown delay", took)
	}
	j := readJournal(t, journal)
	if last := j[len(j)-1].height; last <= c.head(sent)+2 {
		t.Errorf("last produced height %d: nothing produced during the shutdown delay (head %d at SIGTERM)",
			last, c.head(sent))
	}
	logs := p.logs()
	if i, k := strings.Index(logs, `"shutting down"`), strings.Index(logs, `"stopped"`); i < 0 || k < i {
		t.Errorf("want shutting down, then stopped:\n%s", logs)
	}
}
