package signer

import (
	"bytes"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

const testChain = "test-chain"

var (
	t0      = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	blockA  = cmtproto.BlockID{Hash: bytes.Repeat([]byte{0xa}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{0xa1}, 32)}}
	blockB  = cmtproto.BlockID{Hash: bytes.Repeat([]byte{0xb}, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: bytes.Repeat([]byte{0xb1}, 32)}}
	testKey = ed25519.GenPrivKeyFromSecret([]byte("valguard signer test"))
)

// vote builds a vote; blk nil is a nil vote.
func vote(typ cmtproto.SignedMsgType, h int64, r int32, blk *cmtproto.BlockID, ts time.Time) *cmtproto.Vote {
	v := &cmtproto.Vote{Type: typ, Height: h, Round: r, Timestamp: ts, ValidatorAddress: testKey.PubKey().Address(), ValidatorIndex: 1}
	if blk != nil {
		v.BlockID = *blk
	}
	return v
}

func proposal(h int64, r, pol int32, blk cmtproto.BlockID, ts time.Time) *cmtproto.Proposal {
	return &cmtproto.Proposal{Type: cmtproto.ProposalType, Height: h, Round: r, PolRound: pol, BlockID: blk, Timestamp: ts}
}

func mustVoteReq(t *testing.T, chain string, v *cmtproto.Vote) Request {
	t.Helper()
	r, err := voteRequest(chain, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustPropReq(t *testing.T, chain string, p *cmtproto.Proposal) Request {
	t.Helper()
	r, err := proposalRequest(chain, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signedWM is the watermark a leader fenced for req.
func signedWM(t *testing.T, req Request) Watermark {
	t.Helper()
	sig, err := testKey.Sign(req.SignBytes)
	if err != nil {
		t.Fatal(err)
	}
	return Watermark{ChainID: req.ChainID, Height: req.Height, Round: req.Round, Step: req.Step, SignBytes: req.SignBytes, Signature: sig}
}

func TestDecideTable(t *testing.T) {
	later := t0.Add(3 * time.Second)
	prevote := mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 10, 1, &blockA, t0))
	precommit := mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 10, 1, &blockA, t0))
	nilPrecommit := mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 10, 1, nil, t0))
	prop := mustPropReq(t, testChain, proposal(10, 1, -1, blockA, t0))
	wmPrevote, wmPrecommit, wmNilPrecommit, wmProp := signedWM(t, prevote), signedWM(t, precommit), signedWM(t, nilPrecommit), signedWM(t, prop)
	noBytes := Watermark{ChainID: testChain, Height: 10, Round: 1, Step: StepPrevote}
	garbled := wmPrevote
	garbled.SignBytes = []byte{0xff, 0x01}

	withExt := func(typ cmtproto.SignedMsgType, blk *cmtproto.BlockID) Request {
		v := vote(typ, 10, 1, blk, t0)
		v.Extension = []byte("ext")
		return mustVoteReq(t, testChain, v)
	}
	type row struct {
		name    string
		wm      Watermark
		req     Request
		leader  Result // expected when leading
		standby Result // expected as standby
		ts      time.Time
		ext     bool
	}
	rows := []row{
		{"another chain", wmPrevote, mustVoteReq(t, "other", vote(cmtproto.PrevoteType, 11, 0, &blockA, t0)), Refuse, Refuse, time.Time{}, false},
		{"height below", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 9, 5, &blockA, t0)), Refuse, Refuse, time.Time{}, false},
		{"round below", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 10, 0, &blockA, t0)), Refuse, Refuse, time.Time{}, false},
		{"step below (proposal after prevote)", wmPrevote, mustPropReq(t, testChain, proposal(10, 1, -1, blockA, t0)), Refuse, Refuse, time.Time{}, false},
		{"prevote same bytes", wmPrevote, prevote, Reserve, Reserve, t0, false},
		{"prevote timestamp only", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 10, 1, &blockA, later)), Reserve, Reserve, t0, false},
		{"prevote other block", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 10, 1, &blockB, t0)), Refuse, Refuse, time.Time{}, false},
		{"prevote nil vs block", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 10, 1, nil, t0)), Refuse, Refuse, time.Time{}, false},
		{"prevote equal without stored sign bytes", noBytes, prevote, Refuse, Refuse, time.Time{}, false},
		{"prevote equal with unparsable stored sign bytes", garbled, mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 10, 1, &blockA, later)), Refuse, Refuse, time.Time{}, false},
		{"prevote above", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 10, 1, &blockA, t0)), Sign, Park, time.Time{}, true},
		{"precommit same bytes: fresh extension", wmPrecommit, precommit, Reserve, Reserve, t0, true},
		{"precommit timestamp only: extension", wmPrecommit, mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 10, 1, &blockA, later)), Reserve, Reserve, t0, true},
		{"precommit block vs stored nil", wmNilPrecommit, precommit, Refuse, Refuse, time.Time{}, false},
		{"nil precommit same bytes: no extension", wmNilPrecommit, nilPrecommit, Reserve, Reserve, t0, false},
		{"nil precommit timestamp only", wmNilPrecommit, mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 10, 1, nil, later)), Reserve, Reserve, t0, false},
		{"nil precommit above", wmPrevote, mustVoteReq(t, testChain, vote(cmtproto.PrecommitType, 11, 0, nil, t0)), Sign, Park, time.Time{}, false},
		{"prevote above: no extension", wmPrecommit, mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 11, 0, &blockA, t0)), Sign, Park, time.Time{}, false},
		{"precommit with extension data", wmPrevote, withExt(cmtproto.PrecommitType, &blockA), Sign, Park, time.Time{}, true},
		{"precommit with extension data, same HRS", wmPrecommit, withExt(cmtproto.PrecommitType, &blockA), Reserve, Reserve, t0, true},
		{"prevote with extension data", wmProp, withExt(cmtproto.PrevoteType, &blockA), Refuse, Refuse, time.Time{}, false},
		{"nil precommit with extension data", wmPrevote, withExt(cmtproto.PrecommitType, nil), Refuse, Refuse, time.Time{}, false},
		{"proposal same bytes", wmProp, prop, Reserve, Reserve, t0, false},
		{"proposal timestamp only", wmProp, mustPropReq(t, testChain, proposal(10, 1, -1, blockA, later)), Reserve, Reserve, t0, false},
		{"proposal other block", wmProp, mustPropReq(t, testChain, proposal(10, 1, -1, blockB, t0)), Refuse, Refuse, time.Time{}, false},
		{"proposal other POL round", wmProp, mustPropReq(t, testChain, proposal(10, 1, 0, blockA, t0)), Refuse, Refuse, time.Time{}, false},
		{"proposal above", wmPrecommit, mustPropReq(t, testChain, proposal(10, 2, -1, blockA, t0)), Sign, Park, time.Time{}, false},
		{"anything above the zero watermark", Watermark{ChainID: testChain}, prop, Sign, Park, time.Time{}, false},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			for _, leading := range []bool{true, false} {
				want := tc.standby
				if leading {
					want = tc.leader
				}
				d := Decide(leading, tc.wm, tc.req)
				if d.Result != want {
					t.Fatalf("leading=%v: %v (%s), want %v", leading, d.Result, d.Reason, want)
				}
				switch d.Result {
				case Reserve:
					if !bytes.Equal(d.Signature, tc.wm.Signature) || !d.Timestamp.Equal(tc.ts) || d.Extension != tc.ext {
						t.Errorf("leading=%v: reserve sig %x ts %v ext %v, want the stored %x ts %v ext %v",
							leading, d.Signature, d.Timestamp, d.Extension, tc.wm.Signature, tc.ts, tc.ext)
					}
				case Sign:
					if d.Extension != tc.ext {
						t.Errorf("sign ext %v, want %v", d.Extension, tc.ext)
					}
				case Refuse, Park:
					if d.Reason == "" {
						t.Errorf("%v without a reason", d.Result)
					}
				}
			}
		})
	}
}

// A timestamp-only re-serve must reproduce the stored sign bytes exactly:
// the reply's signature is then valid for the reply.
func TestReserveTimestampReproducesSignBytes(t *testing.T) {
	first := vote(cmtproto.PrecommitType, 5, 0, &blockA, t0)
	wm := signedWM(t, mustVoteReq(t, testChain, first))
	again := vote(cmtproto.PrecommitType, 5, 0, &blockA, t0.Add(time.Minute))
	d := Decide(false, wm, mustVoteReq(t, testChain, again))
	if d.Result != Reserve {
		t.Fatalf("%v: %s", d.Result, d.Reason)
	}
	again.Timestamp = d.Timestamp
	if got := mustVoteReq(t, testChain, again).SignBytes; !bytes.Equal(got, wm.SignBytes) {
		t.Fatal("re-served vote with the stored timestamp does not give the stored sign bytes")
	}
	if !testKey.PubKey().VerifySignature(wm.SignBytes, d.Signature) {
		t.Fatal("stored signature does not verify")
	}
}

func TestSignBytesDigestIgnoresTimestamp(t *testing.T) {
	a := mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 5, 0, &blockA, t0))
	b := mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 5, 0, &blockA, t0.Add(time.Hour)))
	c := mustVoteReq(t, testChain, vote(cmtproto.PrevoteType, 5, 0, &blockB, t0))
	if signBytesDigest(false, a.SignBytes) != signBytesDigest(false, b.SignBytes) {
		t.Error("digest differs by timestamp")
	}
	if signBytesDigest(false, a.SignBytes) == signBytesDigest(false, c.SignBytes) {
		t.Error("digest equal for different blocks")
	}
	p1 := mustPropReq(t, testChain, proposal(5, 0, -1, blockA, t0))
	p2 := mustPropReq(t, testChain, proposal(5, 0, -1, blockA, t0.Add(time.Hour)))
	if signBytesDigest(true, p1.SignBytes) != signBytesDigest(true, p2.SignBytes) {
		t.Error("proposal digest differs by timestamp")
	}
}
