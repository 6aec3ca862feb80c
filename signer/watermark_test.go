package signer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/valguard/valguard/cometbft"
)

func TestWatermarkJSONShape(t *testing.T) {
	w := Watermark{ChainID: "c", Height: 12, Round: 0, Step: 2, SignBytes: []byte{0xab, 0x01}, Signature: []byte{1, 2, 3}}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"chain_id":"c","height":"12","round":0,"step":2,"signature":"AQID","signbytes":"AB01"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	back, err := ParseWatermark(b)
	if err != nil || !back.Equal(w) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

// A priv_validator_state.json written by CometBFT's FilePV parses, and the
// watermark written back is read by FilePV's own state type.
func TestWatermarkFilePVRoundTrip(t *testing.T) {
	dir := t.TempDir()
	statePath := filepath.Join(dir, "priv_validator_state.json")
	pv := privval.NewFilePV(testKey, filepath.Join(dir, "priv_validator_key.json"), statePath)
	v := vote(cmtproto.PrecommitType, 42, 3, &blockA, t0)
	if err := pv.SignVote(testChain, v); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FilePV state: %s", data)
	for _, parse := range []func([]byte) (Watermark, error){ParseWatermark, ParseState} {
		w, err := parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if w.Height != 42 || w.Round != 3 || w.Step != StepPrecommit || w.ChainID != "" {
			t.Fatalf("parsed %+v", w)
		}
		if !bytes.Equal(w.SignBytes, types.VoteSignBytes(testChain, v)) || !bytes.Equal(w.Signature, v.Signature) {
			t.Fatal("sign bytes or signature differ from what FilePV signed")
		}
		w.ChainID = testChain
		out, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		var lss privval.FilePVLastSignState
		if err := cmtjson.Unmarshal(out, &lss); err != nil { // as LoadFilePV reads it
			t.Fatalf("FilePV state type cannot read %s: %v", out, err)
		}
		if lss.Round != 3 || lss.Step != 3 || !bytes.Equal(lss.Signature, v.Signature) || !bytes.Equal(lss.SignBytes, w.SignBytes) {
			t.Fatalf("FilePV read back %+v", lss)
		}
	}
}

// The restart mode's watermark (height/round/step only) parses; the same
// height/round/step is then refused, and ours is readable by its reader.
func TestWatermarkRestartModeFormat(t *testing.T) {
	old, err := json.Marshal(cometbft.SignState{Height: 77, Round: 1, Step: 2})
	if err != nil {
		t.Fatal(err)
	}
	w, err := ParseWatermark(old)
	if err != nil {
		t.Fatalf("parse %s: %v", old, err)
	}
	if w.Height != 77 || w.Round != 1 || w.Step != 2 || len(w.SignBytes) != 0 {
		t.Fatalf("parsed %+v", w)
	}
	w.ChainID = testChain
	req := mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 77, 1, &blockA, t0))
	if d := Decide(true, w, req); d.Result != Refuse {
		t.Fatalf("equal HRS without sign bytes: %v, want refuse", d.Result)
	}
	ours, _ := json.Marshal(Watermark{ChainID: testChain, Height: 78, Step: 1, SignBytes: []byte{1}, Signature: []byte{2}})
	c, err := cometbft.CompareWatermarks(ours, old)
	if err != nil || c != 1 {
		t.Fatalf("restart mode's reader: compare %s with %s = %d, %v", ours, old, c, err)
	}
}

func TestParseStateTmkms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Watermark
	}{
		{`{"height":"1234","round":"2","step":2,"block_id":{"hash":"26C0A41F3243C6BCD7AD2DFF8A8D83A71D29D307B5326C227F734A1A512FE47D","part_set_header":{"total":1,"hash":"26C0A41F3243C6BCD7AD2DFF8A8D83A71D29D307B5326C227F734A1A512FE47D"}}}`,
			Watermark{Height: 1234, Round: 2, Step: StepPrecommit}},
		{`{"height":"9","round":"0","step":0,"block_id":null}`, Watermark{Height: 9, Round: 0, Step: StepPropose}},
		{`{"height":"9","round":"0","step":1}`, Watermark{Height: 9, Round: 0, Step: StepPrevote}},
	} {
		w, err := ParseState([]byte(tc.in))
		if err != nil || !w.Equal(tc.want) {
			t.Errorf("ParseState(%s) = %+v, %v; want %+v", tc.in, w, err, tc.want)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range []string{
		``, `{`, `[]`, `{"height":12,"round":0,"step":1}`, `{"height":"x","round":0,"step":1}`,
		`{"height":"-1","round":0,"step":1}`, `{"height":"1","round":-1,"step":1}`, `{"height":"1","round":0,"step":4}`,
		`{"height":"1","round":0,"step":1,"signbytes":"AB"}`, `{"height":"1","round":0,"step":1,"signature":"AQID"}`,
		`{"height":"1","round":0,"step":1,"signbytes":"XYZ","signature":"AQID"}`,
		`{"height":"1","round":"0","step":3}`, `{"height":"1","round":"x","step":1}`, `{"height":"","round":"0","step":1}`,
	} {
		_, err := ParseState([]byte(in))
		if err == nil {
			t.Errorf("ParseState(%q) accepted", in)
			continue
		}
		if !errors.Is(err, ErrWatermark) {
			t.Errorf("ParseState(%q): %v does not wrap ErrWatermark", in, err)
		}
		if _, err := ParseWatermark([]byte(in)); err == nil && !strings.Contains(in, `"round":"`) {
			t.Errorf("ParseWatermark(%q) accepted", in)
		}
	}
}

func TestCompare(t *testing.T) {
	base := Watermark{Height: 5, Round: 2, Step: 2}
	for _, tc := range []struct {
		w    Watermark
		want int
	}{
		{Watermark{Height: 4, Round: 9, Step: 3}, -1},
		{Watermark{Height: 5, Round: 1, Step: 3}, -1},
		{Watermark{Height: 5, Round: 2, Step: 1}, -1},
		{Watermark{Height: 5, Round: 2, Step: 2, ChainID: "other", SignBytes: []byte{1}}, 0},
		{Watermark{Height: 5, Round: 2, Step: 3}, 1},
		{Watermark{Height: 5, Round: 3, Step: 1}, 1},
		{Watermark{Height: 6}, 1},
	} {
		if got := Compare(tc.w, base); got != tc.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", tc.w, base, got, tc.want)
		}
		if got := Compare(base, tc.w); got != -tc.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", base, tc.w, got, -tc.want)
		}
	}
}
