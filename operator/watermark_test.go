package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valguard/valguard/signer"
)

// fakeWatermark is a WatermarkStore in memory.
type fakeWatermark struct {
	value   []byte
	index   uint64
	moveNow bool // the next check-and-set finds the key moved
	readErr error
}

func (f *fakeWatermark) WatermarkKey() string { return "valguard/X/watermark" }

func (f *fakeWatermark) ReadWatermark(context.Context) ([]byte, uint64, error) {
	return f.value, f.index, f.readErr
}

func (f *fakeWatermark) CASWatermark(_ context.Context, value []byte, index uint64) (bool, error) {
	if f.moveNow || index != f.index {
		return false, nil
	}
	f.value, f.index = value, f.index+1
	return true, nil
}

func stored(t *testing.T, w signer.Watermark) *fakeWatermark {
	t.Helper()
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeWatermark{value: b, index: 7}
}

func TestImportState(t *testing.T) {
	signed := func(chain string, h int64, bytes string) signer.Watermark {
		return signer.Watermark{ChainID: chain, Height: h, Step: 2, SignBytes: []byte(bytes), Signature: []byte("sig")}
	}
	for _, tc := range []struct {
		name    string
		store   func(t *testing.T) *fakeWatermark
		in      signer.Watermark
		chainID string
		want    string // in the error; "" = no error
		out     string // printed
		height  int64  // stored after
	}{
		{"into an empty store", func(*testing.T) *fakeWatermark { return &fakeWatermark{} }, signed("c", 10, "a"), "", "", "raised to chain \"c\" 10/0/2", 10},
		{"no chain id anywhere", func(*testing.T) *fakeWatermark { return &fakeWatermark{} }, signer.Watermark{Height: 10}, "", "set --chain-id", "", 0},
		{"chain id from the flag", func(*testing.T) *fakeWatermark { return &fakeWatermark{} }, signer.Watermark{Height: 10}, "c", "", "raised", 10},
		{"chain id from the store", func(t *testing.T) *fakeWatermark { return stored(t, signed("c", 5, "a")) }, signer.Watermark{Height: 10}, "", "", "raised to chain \"c\"", 10},
		{"flag and file differ", func(*testing.T) *fakeWatermark { return &fakeWatermark{} }, signed("c", 10, "a"), "d", "differs from the state file's", "", 0},
		{"store of another chain", func(t *testing.T) *fakeWatermark { return stored(t, signed("d", 5, "a")) }, signed("c", 10, "a"), "", "differs from the stored watermark's", "", 5},
		{"lower", func(t *testing.T) *fakeWatermark { return stored(t, signed("c", 10, "a")) }, signed("c", 5, "a"), "", "would lower the watermark", "", 10},
		{"equal", func(t *testing.T) *fakeWatermark { return stored(t, signed("c", 10, "a")) }, signed("c", 10, "a"), "", "", "already at 10/0/2", 10},
		{"equal with other bytes", func(t *testing.T) *fakeWatermark { return stored(t, signed("c", 10, "a")) }, signed("c", 10, "b"), "", "other sign bytes", "", 10},
		{"moved meanwhile", func(t *testing.T) *fakeWatermark { f := stored(t, signed("c", 5, "a")); f.moveNow = true; return f }, signed("c", 10, "a"), "", "run the import again", "", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := tc.store(t)
			var out bytes.Buffer
			err := ImportState(context.Background(), ws, &out, "state.json", tc.in, tc.chainID)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Fatalf("printed %q, want %q", out.String(), tc.out)
			}
			var h int64
			if ws.value != nil {
				w, err := signer.ParseWatermark(ws.value)
				if err != nil {
					t.Fatal(err)
				}
				h = w.Height
			}
			if h != tc.height {
				t.Fatalf("stored height %d, want %d", h, tc.height)
			}
		})
	}
	if err := ImportState(context.Background(), stored(t, signed("c", 10, "a")), nil, "f", signed("c", 5, "a"), ""); !errors.Is(err, ErrImportLower) {
		t.Fatalf("a lower import: %v, want ErrImportLower", err)
	}
}

func TestShowState(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := ShowState(ctx, &fakeWatermark{}, &out, false); err != nil || out.String() != "valguard/X/watermark: no watermark stored\n" {
		t.Fatalf("empty: %q %v", out.String(), err)
	}
	ws := stored(t, signer.Watermark{ChainID: "c", Height: 10, Round: 1, Step: 2, SignBytes: []byte("a"), Signature: []byte("s")})
	out.Reset()
	if err := ShowState(ctx, ws, &out, false); err != nil || !strings.HasPrefix(out.String(), `valguard/X/watermark: chain "c" height 10 round 1 step 2, sign bytes sha256 `) ||
		!strings.HasSuffix(out.String(), " (modify index 7)\n") {
		t.Fatalf("text: %q %v", out.String(), err)
	}
	out.Reset()
	if err := ShowState(ctx, ws, &out, true); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Key       string         `json:"key"`
		Watermark map[string]any `json:"watermark"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Key != "valguard/X/watermark" || v.Watermark["height"] != float64(10) || v.Watermark["signed"] != true {
		t.Fatalf("json: %s %v", out.String(), err)
	}
	if err := ShowState(ctx, &fakeWatermark{value: []byte(`{"height":"x"}`)}, &out, false); err == nil || !strings.Contains(err.Error(), "valguard/X/watermark in Consul") {
		t.Fatalf("malformed: %v", err)
	}
	if err := ShowState(ctx, &fakeWatermark{readErr: errors.New("down")}, &out, false); err == nil || !strings.Contains(err.Error(), "read valguard/X/watermark from Consul: down") {
		t.Fatalf("unreadable: %v", err)
	}
}

func TestReadStateFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tmkms.json")
	if err := os.WriteFile(good, []byte(`{"height":"12","round":"0","step":1,"block_id":null}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if w, err := ReadStateFile(good); err != nil || w.Height != 12 {
		t.Fatalf("tmkms file: %v %v", w, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"height":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStateFile(bad); err == nil || !strings.Contains(err.Error(), "give a priv_validator_state.json or a tmkms state file") {
		t.Fatalf("malformed: %v", err)
	}
	if _, err := ReadStateFile(filepath.Join(dir, "none")); err == nil || !strings.HasPrefix(err.Error(), "state file: ") {
		t.Fatalf("missing: %v", err)
	}
}
