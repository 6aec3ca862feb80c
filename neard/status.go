package neard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// statusResponse is the part of neard's GET /status that the adapter
// reads (nearcore StatusResponse).
type statusResponse struct {
	Version struct {
		Version string `json:"version"`
		Build   string `json:"build"`
	} `json:"version"`
	ChainID  string `json:"chain_id"`
	SyncInfo struct {
		LatestBlockHeight int64     `json:"latest_block_height"`
		LatestBlockTime   time.Time `json:"latest_block_time"`
		Syncing           bool      `json:"syncing"`
	} `json:"sync_info"`
	ValidatorAccountID *string `json:"validator_account_id"`
	ValidatorPublicKey *string `json:"validator_public_key"`
	NodePublicKey      string  `json:"node_public_key"`
}

// validator is the account whose key the node has loaded, "" when none.
func (s statusResponse) validator() string {
	if s.ValidatorAccountID == nil {
		return ""
	}
	return *s.ValidatorAccountID
}

// fetchStatus reads url (neard's /status) within ctx.
func fetchStatus(ctx context.Context, client *http.Client, url string) (statusResponse, error) {
	var st statusResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("GET %s: unexpected answer: %w", url, err)
	}
	return st, nil
}

// hotSwapVersion is the first nearcore release that re-reads the validator
// key on SIGHUP (nearcore PR #11536).
var hotSwapVersion = [2]int{2, 1}

// reloadsKeyOnSIGHUP reports whether a neard of release v (as /status
// reports it, e.g. "2.1.1", "2.2.0-rc.1") loads the validator key on
// SIGHUP. Versions it cannot read (e.g. "trunk") are treated as not: the
// restart promotion works with every release.
func reloadsKeyOnSIGHUP(v string) (bool, error) {
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	parts := strings.Split(core, ".")
	if len(parts) < 2 {
		return false, fmt.Errorf("neard version %q is not MAJOR.MINOR[.PATCH]", v)
	}
	var n [2]int
	for i := range n {
		x, err := strconv.Atoi(parts[i])
		if err != nil {
			return false, fmt.Errorf("neard version %q is not MAJOR.MINOR[.PATCH]", v)
		}
		n[i] = x
	}
	return n[0] > hotSwapVersion[0] || (n[0] == hotSwapVersion[0] && n[1] >= hotSwapVersion[1]), nil
}
