package neard

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/sjson"

	"github.com/valguard/valguard/supervisor"
)

func TestReloadsKeyOnSIGHUP(t *testing.T) {
	cases := []struct {
		v       string
		hot     bool
		wantErr bool
	}{
		{"2.1.0", true, false}, {"2.1.1", true, false}, {"2.3.0", true, false}, {"3.0.0", true, false},
		{"2.2.0-rc.1", true, false}, {"v2.1.0", true, false}, {"2.0.9", false, false}, {"2.1.0-rc.1", true, false},
		{"1.40.0", false, false}, {"trunk", false, true}, {"", false, true}, {"2.x", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.v, func(t *testing.T) {
			hot, err := reloadsKeyOnSIGHUP(tc.v)
			if hot != tc.hot || (err != nil) != tc.wantErr {
				t.Fatalf("reloadsKeyOnSIGHUP(%q) = %v, %v; want %v, err %v", tc.v, hot, err, tc.hot, tc.wantErr)
			}
		})
	}
}

// fakeStatus serves GET /status like neard, from a mutable answer.
type fakeStatus struct {
	mu      sync.Mutex
	version string
	height  int64
	age     time.Duration
	syncing bool
	account *string
	pubkey  *string
	down    bool // answer 503, as a node that is gone or starting
}

func (f *fakeStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/status" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		http.Error(w, "node is gone", http.StatusServiceUnavailable)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"version":  map[string]any{"version": f.version, "build": f.version, "commit": "x", "rustc_version": "1.79.0"},
		"chain_id": "localnet",
		"sync_info": map[string]any{
			"latest_block_height": f.height,
			"latest_block_time":   time.Now().Add(-f.age).UTC().Format(time.RFC3339Nano),
			"syncing":             f.syncing,
		},
		"validator_account_id": f.account,
		"validator_public_key": f.pubkey,
		"node_public_key":      "ed25519:x",
	})
}

func (f *fakeStatus) set(fn func(*fakeStatus)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

// newStatusNode points a fixture's rpc.addr at a fake /status server.
func newStatusNode(t *testing.T, tune func(*Config)) (*Node, *fakeStatus, *fixture) {
	t.Helper()
	fs := &fakeStatus{version: "2.1.1", height: 100}
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	f := newFixture(t)
	conf, _ := sjson.SetBytes(f.originalConfigJSON, "rpc.addr", strings.TrimPrefix(srv.URL, "http://"))
	if err := os.WriteFile(f.path("config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	c := f.config(t)
	c.PromotionTimeout = 300 * time.Millisecond
	if tune != nil {
		tune(&c)
	}
	n, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return n, fs, f
}

func TestStatus(t *testing.T) {
	acct := "pool.poolv1.near"
	cases := []struct {
		name       string
		set        func(*fakeStatus)
		synced     bool
		wantErr    string
		catchingUp bool
	}{
		{"synced", func(*fakeStatus) {}, true, "", false},
		{"syncing", func(f *fakeStatus) { f.syncing = true }, false, "", true},
		{"stale head", func(f *fakeStatus) { f.age = 2 * time.Minute }, false, "", false},
		{"no height", func(f *fakeStatus) { f.height = 0 }, false, "", false},
		{"voter with a validator key", func(f *fakeStatus) { f.account = &acct }, false, supervisor.ErrUnexpectedKey.Error(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, fs, _ := newStatusNode(t, nil)
			if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
				t.Fatal(err)
			}
			fs.set(tc.set)
			st, err := n.Status(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Status error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Synced != tc.synced || st.CatchingUp != tc.catchingUp {
				t.Fatalf("Status = %+v, want synced %v catching up %v", st, tc.synced, tc.catchingUp)
			}
		})
	}
}

func TestStatusUnreachable(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf, _ := sjson.SetBytes(f.originalConfigJSON, "rpc.addr", addr)
	if err := os.WriteFile(f.path("config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Status(context.Background()); err == nil {
		t.Fatal("Status of a node that does not answer succeeded")
	}
}

func TestHotPromotionChoice(t *testing.T) {
	cases := []struct {
		mode    Promotion
		version string
		hot     bool
	}{
		{PromotionAuto, "2.1.1", true}, {PromotionAuto, "2.0.0", false}, {PromotionAuto, "trunk", false},
		{PromotionHot, "2.0.0", true}, {PromotionRestart, "2.4.0", false},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode)+"/"+tc.version, func(t *testing.T) {
			n, fs, _ := newStatusNode(t, func(c *Config) { c.Promotion = tc.mode })
			fs.set(func(f *fakeStatus) { f.version = tc.version })
			hot, err := n.HotPromotion(context.Background())
			if err != nil || hot != tc.hot {
				t.Fatalf("HotPromotion = %v, %v; want %v", hot, err, tc.hot)
			}
		})
	}
}

func TestPromoteRunning(t *testing.T) {
	n, fs, f := newStatusNode(t, nil)
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	reloaded := false
	err := n.PromoteRunning(context.Background(), nil, func() error {
		if got := linkTarget(t, f.path("validator_key.json")); got != f.validator.Path {
			t.Errorf("reload before the key was linked (link -> %q)", got)
		}
		reloaded = true
		acct, pk := f.validator.AccountID, f.validator.PublicKey
		fs.set(func(s *fakeStatus) { s.account, s.pubkey = &acct, &pk })
		return nil
	})
	if err != nil || !reloaded {
		t.Fatalf("PromoteRunning = %v (reloaded %v)", err, reloaded)
	}
	// Hot promotion keeps the voter's node key and address.
	if got := linkTarget(t, f.path("node_key.json")); got != f.voterNode.Path {
		t.Fatalf("node_key.json -> %q, want the voter's", got)
	}
	if _, err := n.Status(context.Background()); err != nil {
		t.Fatalf("Status of the promoted node: %v", err)
	}
}

const nearAccount = "pool.poolv1.near"

func TestPromoteRunningUnconfirmed(t *testing.T) {
	other := "someone.else.near"
	cases := []struct {
		name  string
		after func(*fakeStatus)
	}{
		{"key never reported", func(*fakeStatus) {}},
		{"another account reported", func(s *fakeStatus) { s.account = &other }},
		{"another public key reported", func(s *fakeStatus) { acct, pk := nearAccount, "ed25519:other"; s.account, s.pubkey = &acct, &pk }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, fs, _ := newStatusNode(t, nil)
			start := time.Now()
			err := n.PromoteRunning(context.Background(), nil, func() error { fs.set(tc.after); return nil })
			if !errors.Is(err, errNotConfirmed) {
				t.Fatalf("PromoteRunning = %v, want errNotConfirmed", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("unconfirmed promotion took %s; its bound is 300ms", took)
			}
		})
	}
	n, _, _ := newStatusNode(t, nil)
	boom := errors.New("no such process")
	if err := n.PromoteRunning(context.Background(), nil, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("PromoteRunning with a failing reload = %v", err)
	}
}
