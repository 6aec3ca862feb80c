package neard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/internal/atomicfile"
	"github.com/valguard/valguard/supervisor"
)

// The NEAR height fence. neard keeps no sign state that a new leader could
// raise before it produces, so the fence is the head: a leader publishes
// the highest head height its node reported while it held the validator
// key, and a new leader promotes its node only once that node's head is at
// or above the published height.
//
// What the height is, honestly: the last head height seen by polling
// /status (the supervisor polls every second, and PromoteRunning while it
// waits for the key to load), not the last height the node produced. The
// old leader's node may have produced blocks after the last poll, up to
// one poll interval plus the time to kill it later (about one NEAR block at
// mainnet's pace). Those heights are above the watermark, so the fence does
// not cover them: a new leader whose head is at the watermark may still
// produce such a height if it never received the old leader's block. The
// fence closes the larger gap, a new leader whose node is many blocks
// behind; the rest rests on one key holder at a time (S1, S3) and the
// lock-delay.

// watermarkFile is where the height is kept, under <home>/valguard.
const watermarkFile = "watermark.json"

// ErrUnreadableWatermark: a watermark that is not a neard watermark.
var ErrUnreadableWatermark = errors.New("not a neard watermark (want {\"height\": N})")

// watermark is the published form: {"height": N}.
type watermark struct {
	Height int64 `json:"height"`
}

// savedHeight is the persisted form; the public key says whose height it
// is, so that a home given another validator key does not publish a height
// the new key never reached.
type savedHeight struct {
	Height    int64  `json:"height"`
	PublicKey string `json:"public_key"`
}

// parseWatermark reads a neard watermark; nil or empty is height 0 (no
// watermark, always reached).
func parseWatermark(wm []byte) (int64, error) {
	if len(bytes.TrimSpace(wm)) == 0 {
		return 0, nil
	}
	var w struct {
		Height *int64 `json:"height"`
	}
	if err := json.Unmarshal(wm, &w); err != nil {
		return 0, fmt.Errorf("watermark %.100q: %w: %v", wm, ErrUnreadableWatermark, err)
	}
	if w.Height == nil || *w.Height < 0 {
		return 0, fmt.Errorf("watermark %.100q: %w: no height, or a negative one", wm, ErrUnreadableWatermark)
	}
	return *w.Height, nil
}

// CompareWatermarks orders two neard watermarks by height: -1 when a is
// lower than b, 0 when equal, +1 when higher. nil or empty is lower than
// every height (and equal to another nil or empty). An unreadable one is
// an error wrapping ErrUnreadableWatermark that names it; the caller must
// then not replace a published watermark, so that it never goes down.
func CompareWatermarks(a, b []byte) (int, error) {
	ha, err := parseWatermark(a)
	if err != nil {
		return 0, fmt.Errorf("first %w", err)
	}
	hb, err := parseWatermark(b)
	if err != nil {
		return 0, fmt.Errorf("second %w", err)
	}
	aNone, bNone := len(bytes.TrimSpace(a)) == 0, len(bytes.TrimSpace(b)) == 0
	switch {
	case aNone && bNone:
		return 0, nil
	case aNone:
		return -1, nil
	case bNone:
		return 1, nil
	case ha < hb:
		return -1, nil
	case ha > hb:
		return 1, nil
	}
	return 0, nil
}

// heights tracks the highest head height seen in the validator role and
// keeps it on disk. It only goes up.
type heights struct {
	path      string
	publicKey string
	log       zerolog.Logger

	mu    sync.Mutex // held across the write so that writes land in order
	max   int64      // 0: never seen in the validator role
	saved int64      // what the file holds
}

// loadHeights reads path. A missing file is no height; a file for another
// validator key is ignored (and replaced at the next height); a damaged
// one is an error, and nothing is changed.
func loadHeights(path, publicKey string, log zerolog.Logger) (*heights, error) {
	h := &heights{path: path, publicKey: publicKey, log: log}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last validator height: %w", err)
	}
	var s savedHeight
	if err := json.Unmarshal(data, &s); err != nil || s.Height < 0 {
		return nil, fmt.Errorf("%s is damaged (want {\"height\": N, \"public_key\": ...}): it holds the highest height this replica saw as the NEAR validator, which it publishes so that the next leader waits for it; fix it, or remove it if the published watermark in consul is at least that height", path)
	}
	if s.PublicKey != publicKey {
		log.Warn().Str("path", path).Str("public_key", s.PublicKey).Int64("height", s.Height).
			Msg("validator height saved for another validator key ignored")
		return h, nil
	}
	h.max, h.saved = s.Height, s.Height
	return h, nil
}

// observe raises the height to head and saves it when it went up. A failed
// write is logged and retried at the next call; the height in memory stays
// raised (publishing a height the node really had never weakens the fence).
func (h *heights) observe(head int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if head > h.max {
		h.max = head
	}
	h.saveLocked()
}

func (h *heights) saveLocked() {
	if h.saved >= h.max {
		return
	}
	data, err := json.Marshal(savedHeight{Height: h.max, PublicKey: h.publicKey})
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(h.path), 0o700); err == nil {
			err = atomicfile.Write(h.path, data, 0o600)
		}
	}
	if err != nil {
		h.log.Error().Err(err).Str("path", h.path).Int64("height", h.max).
			Msg("could not save the validator height; a restarted valguard could publish a lower one")
		return
	}
	h.saved = h.max
}

// watermark is the published form of the height, nil when none.
func (h *heights) watermark() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.saveLocked()
	if h.max == 0 {
		return nil, nil
	}
	return json.Marshal(watermark{Height: h.max})
}

// Watermark implements supervisor.Node: {"height": N}, N the highest head
// height this replica's neard reported (to Status and to PromoteRunning's
// polls) while the role last prepared or promoted was validator, in this
// run or an earlier one (it is kept in <home>/valguard/watermark.json); nil
// when this replica never saw one. It does not ask the node, so it still
// answers once the validator node has been reaped (the final publish on
// release), and it never goes down. N is the last height seen by polling:
// the node may have produced up to a poll interval more (see the package
// documentation).
func (n *Node) Watermark() ([]byte, error) { return n.heights.watermark() }

// AtWatermark implements supervisor.HeadFence: whether the running node's
// head (latest_block_height of /status) is at or above the watermark's
// height. A nil or empty watermark is always reached; an unreadable one
// is an error wrapping ErrUnreadableWatermark and supervisor.ErrFatal (the
// run ends); a /status failure is an error to retry.
//
// At, not above: a node whose head is N has block N, and neard produces
// only on top of its head, so it cannot produce N (or below) again; the
// next height it may produce is N+1, which the old leader produced only if
// it did so after its last poll (see the package documentation). Asking
// for N+1 would close that one block only on a chain that moves on without
// this validator, and would stall a chain that waits for it.
func (n *Node) AtWatermark(ctx context.Context, wm []byte) (bool, error) {
	want, err := parseWatermark(wm)
	if err != nil {
		// Waiting cannot make it readable: end the run, naming it.
		return false, fmt.Errorf("%w: the published watermark cannot be read: %w; "+
			"check what else writes to this validator's keys in Consul, and correct or delete the watermark key", supervisor.ErrFatal, err)
	}
	if want == 0 {
		return true, nil
	}
	st, err := fetchStatus(ctx, n.client, n.p.status)
	if err != nil {
		return false, fmt.Errorf("read neard's head to compare with the published height %d: %w", want, err)
	}
	return st.SyncInfo.LatestBlockHeight >= want, nil
}
