package neard

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mr-tron/base58"

	"github.com/valguard/valguard/supervisor"
)

// statusAt polls n once at height h, as the supervisor does every second.
func statusAt(t *testing.T, n *Node, fs *fakeStatus, h int64) {
	t.Helper()
	fs.set(func(s *fakeStatus) { s.height = h })
	if _, err := n.Status(context.Background()); err != nil {
		t.Fatalf("Status at height %d: %v", h, err)
	}
}

func wantWatermark(t *testing.T, n *Node, want string) {
	t.Helper()
	wm, err := n.Watermark()
	if err != nil {
		t.Fatalf("Watermark: %v", err)
	}
	if string(wm) != want {
		t.Fatalf("Watermark = %q, want %q", wm, want)
	}
}

func TestWatermarkTracksValidatorHeights(t *testing.T) {
	ctx := context.Background()
	n, fs, f := newStatusNode(t, nil)
	if err := n.Prepare(ctx, supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	statusAt(t, n, fs, 100)
	wantWatermark(t, n, "") // a voter's heights are no one's production

	if err := n.Prepare(ctx, supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	statusAt(t, n, fs, 150)
	wantWatermark(t, n, `{"height":150}`)
	statusAt(t, n, fs, 140) // a lower head never lowers it
	wantWatermark(t, n, `{"height":150}`)
	statusAt(t, n, fs, 151)
	wantWatermark(t, n, `{"height":151}`)

	// Released: the node is reaped, /status no longer answers, and the
	// final publish still gets the last height.
	fs.set(func(s *fakeStatus) { s.down = true })
	if _, err := n.Status(ctx); err == nil {
		t.Fatal("Status of a reaped node succeeded")
	}
	wantWatermark(t, n, `{"height":151}`)

	// Back to voter: its heights do not count, the value stays.
	fs.set(func(s *fakeStatus) { s.down = false })
	if err := n.Prepare(ctx, supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	statusAt(t, n, fs, 300)
	wantWatermark(t, n, `{"height":151}`)

	fi, err := os.Stat(filepath.Join(f.home, "valguard", watermarkFile))
	if err != nil {
		t.Fatalf("watermark not persisted: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", fi.Name(), fi.Mode().Perm())
	}
}

func TestWatermarkSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	n, fs, f := newStatusNode(t, nil)
	if err := n.Prepare(ctx, supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	statusAt(t, n, fs, 500)

	// A restarted valguard publishes no lower value, before and after it
	// sees a lower head in the validator role.
	again, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	wantWatermark(t, again, `{"height":500}`)
	if err := again.Prepare(ctx, supervisor.RoleValidator, nil); err != nil {
		t.Fatal(err)
	}
	statusAt(t, again, fs, 90)
	wantWatermark(t, again, `{"height":500}`)
	statusAt(t, again, fs, 501)
	third, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	wantWatermark(t, third, `{"height":501}`)
}

func TestWatermarkHotPromotion(t *testing.T) {
	ctx := context.Background()
	n, fs, f := newStatusNode(t, nil)
	if err := n.Prepare(ctx, supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	statusAt(t, n, fs, 100)
	err := n.PromoteRunning(ctx, []byte(`{"height":100}`), func() error {
		acct, pk := f.validator.AccountID, f.validator.PublicKey
		fs.set(func(s *fakeStatus) { s.account, s.pubkey, s.height = &acct, &pk, 120 })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantWatermark(t, n, `{"height":120}`) // seen while confirming the key
	statusAt(t, n, fs, 130)               // hot promotion made the role validator
	wantWatermark(t, n, `{"height":130}`)
}

func TestPromoteRunningBehindWatermark(t *testing.T) {
	n, fs, f := newStatusNode(t, nil)
	if err := n.Prepare(context.Background(), supervisor.RoleVoter, nil); err != nil {
		t.Fatal(err)
	}
	fs.set(func(s *fakeStatus) { s.height = 99 })
	err := n.PromoteRunning(context.Background(), []byte(`{"height":100}`), func() error {
		t.Error("reload called for a node behind the watermark")
		return nil
	})
	if !errors.Is(err, errBehindWatermark) {
		t.Fatalf("PromoteRunning behind the watermark = %v, want errBehindWatermark", err)
	}
	if got := linkTarget(t, f.path("validator_key.json")); got != "" {
		t.Fatalf("validator key linked (-> %q) into a node behind the watermark", got)
	}
}

func TestWatermarkFiles(t *testing.T) {
	t.Run("another key's height is ignored", func(t *testing.T) {
		f := newFixture(t)
		other := writeKey(t, filepath.Join(f.keys, "other.json"), "other.near")
		dir := filepath.Join(f.home, "valguard")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeJSON(t, filepath.Join(dir, watermarkFile), savedHeight{Height: 9000, PublicKey: other.PublicKey})
		n, err := New(f.config(t))
		if err != nil {
			t.Fatal(err)
		}
		wantWatermark(t, n, "")
	})
	t.Run("damaged file is refused, unchanged", func(t *testing.T) {
		f := newFixture(t)
		dir := filepath.Join(f.home, "valguard")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, watermarkFile)
		if err := os.WriteFile(path, []byte(`{"height":`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(f.config(t))
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("New with a damaged %s = %v, want an error naming it", path, err)
		}
		if data, _ := os.ReadFile(path); string(data) != `{"height":` {
			t.Fatalf("damaged file changed to %q", data)
		}
	})
}

func TestAtWatermark(t *testing.T) {
	cases := []struct {
		name    string
		wm      string
		head    int64
		down    bool
		at      bool
		wantErr string
	}{
		{"nil", "", 5, false, true, ""},
		{"nil with the node down", "", 5, true, true, ""},
		{"blank", "  ", 5, false, true, ""},
		{"below", `{"height":100}`, 99, false, false, ""},
		{"equal", `{"height":100}`, 100, false, true, ""},
		{"above", `{"height":100}`, 101, false, true, ""},
		{"zero", `{"height":0}`, 1, true, true, ""},
		{"not JSON", "height=100", 500, false, false, `"height=100"`},
		{"height as text", `{"height":"100"}`, 500, false, false, ErrUnreadableWatermark.Error()},
		{"no height", `{"h":100}`, 500, false, false, ErrUnreadableWatermark.Error()},
		{"negative", `{"height":-1}`, 500, false, false, ErrUnreadableWatermark.Error()},
		{"status error", `{"height":100}`, 500, true, false, "503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, fs, _ := newStatusNode(t, nil)
			fs.set(func(s *fakeStatus) { s.height, s.down = tc.head, tc.down })
			wm := []byte(tc.wm)
			if strings.HasPrefix(tc.name, "nil") {
				wm = nil
			}
			at, err := n.AtWatermark(context.Background(), wm)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || at {
					t.Fatalf("AtWatermark(%q) = %v, %v; want false and an error containing %q", wm, at, err, tc.wantErr)
				}
				return
			}
			if err != nil || at != tc.at {
				t.Fatalf("AtWatermark(%q) at head %d = %v, %v; want %v", wm, tc.head, at, err, tc.at)
			}
		})
	}
	n, _, _ := newStatusNode(t, nil)
	if _, err := n.AtWatermark(context.Background(), []byte("x")); !errors.Is(err, ErrUnreadableWatermark) || !errors.Is(err, supervisor.ErrFatal) {
		t.Fatalf("AtWatermark of garbage = %v, want ErrUnreadableWatermark and supervisor.ErrFatal (waiting cannot fix it)", err)
	}
}

func TestCompareWatermarks(t *testing.T) {
	cases := []struct {
		a, b    string
		nilA    bool
		want    int
		wantErr string
	}{
		{"", "", true, 0, ""},
		{"", `{"height":1}`, true, -1, ""},
		{`{"height":1}`, "", false, 1, ""},
		{"", `{"height":0}`, false, -1, ""}, // empty is lower than any height
		{`{"height":7}`, `{"height":8}`, false, -1, ""},
		{`{"height":8}`, `{"height":7}`, false, 1, ""},
		{`{"height":8}`, `{"height": 8 }`, false, 0, ""},
		{`{"height":99}`, `{"height":100}`, false, -1, ""}, // numbers, not text
		{"garbage", `{"height":1}`, false, 0, "first"},
		{`{"height":1}`, `{"height":-5}`, false, 0, "second"},
	}
	for _, tc := range cases {
		t.Run(tc.a+" vs "+tc.b, func(t *testing.T) {
			a := []byte(tc.a)
			if tc.nilA {
				a = nil
			}
			got, err := CompareWatermarks(a, []byte(tc.b))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrUnreadableWatermark) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CompareWatermarks(%q, %q) error %v, want ErrUnreadableWatermark naming the %s", a, tc.b, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CompareWatermarks(%q, %q) = %d, %v; want %d", a, tc.b, got, err, tc.want)
			}
		})
	}
}

// TestLockID is a known-answer test: the public key of RFC 8032's first
// ed25519 test vector; the expected id was computed outside Go
// (sha256sum of the 32 raw bytes, first 40 hex digits, upper case).
func TestLockID(t *testing.T) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	const (
		public = "ed25519:FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z"
		want   = "21FE31DFA154A261626BF854046FD2271B7BED4B"
	)
	secret := ed25519.NewKeyFromSeed(seed)
	f := newFixture(t)
	writeJSON(t, f.validator.Path, keyFile{AccountID: "pool.poolv1.near", PublicKey: public, SecretKey: keyPrefix + base58.Encode(secret)})
	n, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if n.PublicKey() != public {
		t.Errorf("PublicKey = %q, want %q", n.PublicKey(), public)
	}
	if n.LockID() != want {
		t.Errorf("LockID = %q, want %q", n.LockID(), want)
	}
	// Another key of the same account has another lock.
	other := writeKey(t, f.validator.Path, "pool.poolv1.near")
	m, err := New(f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.LockID() == want || len(m.LockID()) != 40 || strings.ToUpper(m.LockID()) != m.LockID() {
		t.Errorf("LockID of %s = %q: want 40 upper-case hex digits, not %q", other.PublicKey, m.LockID(), want)
	}
}
