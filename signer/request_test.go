package signer

import (
	"testing"

	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
)

// Malformed requests are refused before the sign bytes are built
// (CometBFT's canonicalisation panics on a bad block ID) and before they
// could reach the watermark (a negative round would make it unreadable).
func TestMalformedRequestsRefused(t *testing.T) {
	good := cmtproto.BlockID{Hash: make([]byte, 32), PartSetHeader: cmtproto.PartSetHeader{Total: 1, Hash: make([]byte, 32)}}
	bad := cmtproto.BlockID{Hash: []byte{1, 2, 3}}
	votes := []struct {
		name string
		v    cmtproto.Vote
	}{
		{"short block hash", cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 3, BlockID: bad}},
		{"negative round", cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 3, Round: -1, BlockID: good}},
		{"height 0", cmtproto.Vote{Type: cmtproto.PrecommitType, Height: 0, BlockID: good}},
	}
	for _, tc := range votes {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := voteRequest("c", &tc.v); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := voteRequest("c", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 3, BlockID: good}); err != nil {
		t.Fatalf("a good vote refused: %v", err)
	}
	if _, err := voteRequest("c", &cmtproto.Vote{Type: cmtproto.PrevoteType, Height: 3}); err != nil {
		t.Fatalf("a nil vote refused: %v", err)
	}
	props := []struct {
		name string
		p    cmtproto.Proposal
	}{
		{"POL round not below the round", cmtproto.Proposal{Height: 3, Round: 1, PolRound: 1, BlockID: good}},
		{"POL round below -1", cmtproto.Proposal{Height: 3, Round: 1, PolRound: -2, BlockID: good}},
		{"no block", cmtproto.Proposal{Height: 3, PolRound: -1}},
		{"short block hash", cmtproto.Proposal{Height: 3, PolRound: -1, BlockID: bad}},
	}
	for _, tc := range props {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := proposalRequest("c", &tc.p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := proposalRequest("c", &cmtproto.Proposal{Height: 3, PolRound: -1, BlockID: good}); err != nil {
		t.Fatalf("a good proposal refused: %v", err)
	}
}
