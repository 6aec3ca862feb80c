package signer

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cometbft/cometbft/crypto/ed25519"
	cryptoenc "github.com/cometbft/cometbft/crypto/encoding"
	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestPubKeyReplyBothDialects: the public key response reads as the key
// for a CometBFT v0.38 node (PubKey, field 1) and for a v1 node
// (pub_key_bytes and pub_key_type, fields 3 and 4); other replies are
// encoded as protoio would.
func TestPubKeyReplyBothDialects(t *testing.T) {
	pub := ed25519.GenPrivKey().PubKey()
	pp, err := cryptoenc.PubKeyToProto(pub)
	if err != nil {
		t.Fatal(err)
	}
	reply := pubKeyResponse(&privvalproto.PubKeyResponse{PubKey: pp})
	out, err := encodeReply(&reply)
	if err != nil {
		t.Fatal(err)
	}
	n, k := binary.Uvarint(out)
	if k <= 0 || int(n) != len(out)-k {
		t.Fatalf("length prefix %d (%d bytes) for %d bytes", n, k, len(out)-k)
	}
	body := out[k:]

	// v0.38: the PublicKey message.
	var old privvalproto.Message
	if err := old.Unmarshal(body); err != nil {
		t.Fatalf("v0.38 decoding: %v", err)
	}
	oldKey := old.GetPubKeyResponse().GetPubKey()
	if got := oldKey.GetEd25519(); !bytes.Equal(got, pub.Bytes()) {
		t.Fatalf("v0.38 reads key %x, want %x", got, pub.Bytes())
	}

	// v1: type and bytes.
	num, typ, l := protowire.ConsumeTag(body)
	if num != pubKeyResponseField || typ != protowire.BytesType {
		t.Fatalf("first field %d type %d, want the pub key response", num, typ)
	}
	inner, m := protowire.ConsumeBytes(body[l:])
	if m < 0 {
		t.Fatal("pub key response: bad length")
	}
	var keyType string
	var key []byte
	for len(inner) > 0 {
		num, typ, l := protowire.ConsumeTag(inner)
		inner = inner[l:]
		m := protowire.ConsumeFieldValue(num, typ, inner)
		if m < 0 {
			t.Fatalf("field %d: bad value", num)
		}
		switch num {
		case v1PubKeyBytesField:
			key, _ = protowire.ConsumeBytes(inner)
		case v1PubKeyTypeField:
			b, _ := protowire.ConsumeBytes(inner)
			keyType = string(b)
		}
		inner = inner[m:]
	}
	if keyType != "ed25519" || !bytes.Equal(key, pub.Bytes()) {
		t.Fatalf("v1 reads type %q key %x, want ed25519 %x", keyType, key, pub.Bytes())
	}

	// An error reply and a ping carry nothing more.
	for _, r := range []privvalproto.Message{
		pubKeyResponse(&privvalproto.PubKeyResponse{Error: &privvalproto.RemoteSignerError{Description: "no"}}),
		pingResponse(),
	} {
		out, err := encodeReply(&r)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := r.Marshal()
		if _, k := binary.Uvarint(out); !bytes.Equal(out[k:], want) {
			t.Fatalf("%v encoded as %x, want %x", r.String(), out[k:], want)
		}
	}
}
