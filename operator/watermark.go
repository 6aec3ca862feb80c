package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/signer"
)

// WatermarkStore is the validator's sign-state watermark as state show
// and state import read and write it. ConsulWatermark is the real one.
type WatermarkStore interface {
	// WatermarkKey names the watermark's key, for messages.
	WatermarkKey() string
	// ReadWatermark is the stored value and its modify index; nil, 0
	// when none is stored.
	ReadWatermark(ctx context.Context) ([]byte, uint64, error)
	// CASWatermark writes value if the stored one is still at index (0:
	// none); false, nil when it moved.
	CASWatermark(ctx context.Context, value []byte, index uint64) (bool, error)
}

// ConsulWatermark is the WatermarkStore of a validator's election in
// Consul.
type ConsulWatermark struct {
	*election.Election
	KV *api.KV
}

// CASWatermark is a check-and-set of the watermark key.
func (w ConsulWatermark) CASWatermark(ctx context.Context, value []byte, index uint64) (bool, error) {
	done, _, err := w.KV.CAS(&api.KVPair{Key: w.WatermarkKey(), Value: value, ModifyIndex: index}, (&api.WriteOptions{}).WithContext(ctx))
	return done, err
}

// ErrImportLower: the file would lower the stored watermark.
var ErrImportLower = errors.New("would lower the watermark")

// readWatermark reads and parses the stored watermark; ok is false when
// none is stored.
func readWatermark(ctx context.Context, ws WatermarkStore) (w signer.Watermark, index uint64, ok bool, err error) {
	value, index, err := ws.ReadWatermark(ctx)
	if err != nil {
		return w, 0, false, fmt.Errorf("read %s from Consul: %w", ws.WatermarkKey(), err)
	}
	if value == nil {
		return w, 0, false, nil
	}
	if w, err = signer.ParseWatermark(value); err != nil {
		return w, 0, false, fmt.Errorf("%s in Consul: %w", ws.WatermarkKey(), err)
	}
	return w, index, true, nil
}

// ShowState prints the stored watermark to out: one line, or JSON.
func ShowState(ctx context.Context, ws WatermarkStore, out io.Writer, asJSON bool) error {
	w, index, ok, err := readWatermark(ctx, ws)
	if err != nil {
		return err
	}
	digest := ""
	if len(w.SignBytes) > 0 {
		sum := sha256.Sum256(w.SignBytes)
		digest = hex.EncodeToString(sum[:])
	}
	if asJSON {
		v := map[string]any{"key": ws.WatermarkKey(), "watermark": nil}
		if ok {
			v["watermark"] = map[string]any{"chain_id": w.ChainID, "height": w.Height, "round": w.Round, "step": w.Step,
				"sign_bytes_sha256": digest, "signed": len(w.Signature) > 0, "modify_index": index}
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(out, string(b))
		return nil
	}
	if !ok {
		fmt.Fprintf(out, "%s: no watermark stored\n", ws.WatermarkKey())
		return nil
	}
	fmt.Fprintf(out, "%s: chain %q height %d round %d step %d", ws.WatermarkKey(), w.ChainID, w.Height, w.Round, w.Step)
	if digest != "" {
		fmt.Fprintf(out, ", sign bytes sha256 %s", digest)
	}
	fmt.Fprintf(out, " (modify index %d)\n", index)
	return nil
}

// ReadStateFile reads the state file state import takes: a
// priv_validator_state.json or a tmkms state file.
func ReadStateFile(path string) (signer.Watermark, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return signer.Watermark{}, fmt.Errorf("state file: %w", err)
	}
	in, err := signer.ParseState(data)
	if err != nil {
		return signer.Watermark{}, fmt.Errorf("state file %s: %w: give a priv_validator_state.json or a tmkms state file", path, err)
	}
	return in, nil
}

// ImportState raises the stored watermark to in, read from the file
// path, and says so on out. The chain id is chainID, else the file's,
// else the stored watermark's; any two of them that differ are refused.
// It never lowers the watermark (ErrImportLower), and writes with a
// check-and-set on the index read, so that a leader fencing meanwhile
// wins.
func ImportState(ctx context.Context, ws WatermarkStore, out io.Writer, path string, in signer.Watermark, chainID string) error {
	stored, index, ok, err := readWatermark(ctx, ws)
	if err != nil {
		return err
	}
	for _, named := range []struct{ what, id string }{{"the state file", in.ChainID}, {"the stored watermark", stored.ChainID}} {
		switch {
		case named.id == "":
		case chainID == "":
			chainID = named.id
		case chainID != named.id:
			return fmt.Errorf("chain id %q (from --chain-id or the state file) differs from %s's %q: nothing imported", chainID, named.what, named.id)
		}
	}
	if chainID == "" {
		return errors.New("no chain id: neither the state file nor the stored watermark names one; set --chain-id")
	}
	in.ChainID = chainID
	if ok {
		switch signer.Compare(in, stored) {
		case -1:
			return fmt.Errorf("%s (%s) %w stored in Consul (%s): nothing imported; a lower watermark could let the signer sign again what was signed", path, in, ErrImportLower, stored)
		case 0:
			if !in.Equal(stored) {
				return fmt.Errorf("%s is at the stored height/round/step %s but with other sign bytes or chain: nothing imported", path, in)
			}
			fmt.Fprintf(out, "%s: already at %s; nothing to import\n", ws.WatermarkKey(), in)
			return nil
		}
	}
	value, err := json.Marshal(in)
	if err != nil {
		return err
	}
	// A leader's next fence after this import is refused (the watermark
	// moved); it reads the key back and, the imported value being above
	// its own, adopts it and decides the request again against it, so it
	// never signs below the import.
	done, err := ws.CASWatermark(ctx, value, index)
	if err != nil {
		return fmt.Errorf("write %s: %w", ws.WatermarkKey(), err)
	}
	if !done {
		return fmt.Errorf("%s changed while importing (a leader signed): run the import again", ws.WatermarkKey())
	}
	fmt.Fprintf(out, "%s: raised to chain %q %s\n", ws.WatermarkKey(), chainID, in)
	return nil
}
