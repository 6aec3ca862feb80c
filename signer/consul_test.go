package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/consultest"
)

// consulStore is a test-only Store over the consul API.
type consulStore struct {
	kv  *api.KV
	key string
}

func (c consulStore) Read(ctx context.Context) ([]byte, uint64, error) {
	p, _, err := c.kv.Get(c.key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil || p == nil {
		return nil, 0, err
	}
	return p.Value, p.ModifyIndex, nil
}

func (c consulStore) Watch(ctx context.Context, index uint64) ([]byte, uint64, error) {
	p, meta, err := c.kv.Get(c.key, (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second}).WithContext(ctx))
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, meta.LastIndex, nil
	}
	return p.Value, meta.LastIndex, nil
}

// consulFencer is a test-only Fencer: one transaction, check the lock
// session + check-and-set the watermark.
type consulFencer struct {
	c                     *api.Client
	lockKey, key, session string
}

func (f consulFencer) Fence(ctx context.Context, value []byte, index uint64) (uint64, error) {
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: f.lockKey, Session: f.session}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: f.key, Value: value, Index: index}},
	}
	ok, resp, _, err := f.c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, err
	}
	if !ok {
		var msgs []string
		lockFailed := false
		for _, e := range resp.Errors {
			msgs = append(msgs, e.What)
			lockFailed = lockFailed || e.OpIndex == 0
		}
		if !lockFailed {
			return 0, fmt.Errorf("%w: fence refused: %s", ErrMoved, strings.Join(msgs, "; "))
		}
		return 0, fmt.Errorf("fence refused: %s", strings.Join(msgs, "; "))
	}
	return resp.Results[1].KV.ModifyIndex, nil
}

// cluster is one Consul agent and the keys of one validator.
type cluster struct {
	c       *api.Client
	lockKey string
	wmKey   string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	a := consultest.Start(t)
	return &cluster{c: a.Client(t), lockKey: "valguard/test/leader", wmKey: "valguard/test/watermark"}
}

func (cl *cluster) store() Store { return consulStore{kv: cl.c.KV(), key: cl.wmKey} }

// lock creates a session (TTL 10s, lock-delay 1ms) that holds the lock key.
func (cl *cluster) lock(t *testing.T) (session string, f Fencer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	id, _, err := cl.c.Session().Create(&api.SessionEntry{TTL: "10s", LockDelay: time.Millisecond, Behavior: api.SessionBehaviorRelease, Checks: []string{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ok, _, err := cl.c.KV().Acquire(&api.KVPair{Key: cl.lockKey, Session: id}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return id, consulFencer{c: cl.c, lockKey: cl.lockKey, key: cl.wmKey, session: id}
		}
		if time.Now().After(deadline) {
			t.Fatal("lock not acquired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (cl *cluster) unlock(t *testing.T, session string) {
	t.Helper()
	if ok, _, err := cl.c.KV().Release(&api.KVPair{Key: cl.lockKey, Session: session}, nil); err != nil || !ok {
		t.Fatalf("release: %v %v", ok, err)
	}
}

func (cl *cluster) stored(t *testing.T) Watermark {
	t.Helper()
	p, _, err := cl.c.KV().Get(cl.wmKey, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		return Watermark{}
	}
	w, err := ParseWatermark(p.Value)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// logLines collects a signer's JSON log events.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// events returns the events whose message is msg.
func (l *logLines) events(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// node is one replica's signer under test.
type node struct {
	s    *Signer
	logs *logLines
	cfg  Config
}

// newNode starts a standby signer for cl with Run in the background.
func newNode(t *testing.T, cl *cluster, name string, edits ...func(*Config)) *node {
	t.Helper()
	logs := &logLines{}
	cfg := Config{
		Key: testKey, ChainID: testChain, Store: cl.store(),
		Log:      zerolog.New(logs).With().Str("replica", name).Logger(),
		ParkHold: 1500 * time.Millisecond, FenceTimeout: 500 * time.Millisecond,
		FloorFile: filepath.Join(t.TempDir(), "floor-"+name+".json"),
	}
	for _, e := range edits {
		e(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logs.buf.String())
		}
	})
	return &node{s: s, logs: logs, cfg: s.cfg}
}

// waitWatermark waits until n's watermark in memory is at least w.
func (n *node) waitWatermark(t *testing.T, w Watermark) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for Compare(n.s.Watermark(), w) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("watermark %s not reached (at %s)", w, n.s.Watermark())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (cl *cluster) putRaw(v string) error {
	_, err := cl.c.KV().Put(&api.KVPair{Key: cl.wmKey, Value: []byte(v)}, nil)
	return err
}
