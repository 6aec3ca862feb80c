package signer

import (
	"encoding/binary"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
	"google.golang.org/protobuf/encoding/protowire"
)

// CometBFT v1 changed one privval message valguard answers: its
// PubKeyResponse carries the key as pub_key_bytes (field 3) and
// pub_key_type (field 4), where v0.38 (and v0.39, v0.40) read the
// PublicKey message in field 1; a v1 node that finds no type refuses to
// start ("can't get pubkey: encoding: unsupported key"). Every other
// message valguard reads or writes has the same fields in both (Vote,
// Proposal, the requests, the responses); v1's SignVoteRequest adds
// skip_extension_signing, which valguard does not need to read: a v1 node
// with vote extensions off drops an extension signature it did not ask
// for, as v0.38's did. So one encoding serves both: the public key
// response carries both forms, each version reading its own and skipping
// the other's (protobuf skips unknown fields).
const (
	pubKeyResponseField = 2 // Message.pub_key_response
	v1PubKeyBytesField  = 3 // PubKeyResponse.pub_key_bytes (v1)
	v1PubKeyTypeField   = 4 // PubKeyResponse.pub_key_type (v1)
)

// encodeReply is reply, length-delimited as protoio writes it, with a
// public key response in both dialects.
func encodeReply(reply *privvalproto.Message) ([]byte, error) {
	b, err := marshalReply(reply)
	if err != nil {
		return nil, err
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...), nil
}

// marshalReply is reply's encoding; a public key response also carries
// v1's fields (when its key is of a type v1 names).
func marshalReply(reply *privvalproto.Message) ([]byte, error) {
	pk := reply.GetPubKeyResponse()
	if pk == nil || pk.Error != nil {
		return reply.Marshal()
	}
	typ, key := v1PubKey(pk)
	if typ == "" {
		return reply.Marshal()
	}
	inner, err := pk.Marshal()
	if err != nil {
		return nil, err
	}
	inner = protowire.AppendTag(inner, v1PubKeyBytesField, protowire.BytesType)
	inner = protowire.AppendBytes(inner, key)
	inner = protowire.AppendTag(inner, v1PubKeyTypeField, protowire.BytesType)
	inner = protowire.AppendString(inner, typ)
	b := protowire.AppendTag(nil, pubKeyResponseField, protowire.BytesType)
	return protowire.AppendBytes(b, inner), nil
}

// v1PubKey is the key of a public key response as CometBFT v1 names it
// ("" when the response holds none).
func v1PubKey(pk *privvalproto.PubKeyResponse) (typ string, key []byte) {
	switch {
	case pk.PubKey.GetEd25519() != nil:
		return "ed25519", pk.PubKey.GetEd25519()
	case pk.PubKey.GetSecp256K1() != nil:
		return "secp256k1", pk.PubKey.GetSecp256K1()
	}
	return "", nil
}
