package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

const (
	protocolVersion = 70
	dbVersion       = 40
	rustcVersion    = "1.79.0"
	// syncStatusBlockSync is near_sync_status while syncing (BlockSync in
	// recent nearcore); 0 is NoSync.
	syncStatusBlockSync = 7
	// blockTimeLayout is RFC 3339 in UTC with all nine fraction digits.
	blockTimeLayout = "2006-01-02T15:04:05.000000000Z"
)

// statusResponse is neard's StatusResponse, fields in neard's order.
type statusResponse struct {
	Version               versionInfo     `json:"version"`
	ChainID               string          `json:"chain_id"`
	ProtocolVersion       int             `json:"protocol_version"`
	LatestProtocolVersion int             `json:"latest_protocol_version"`
	RPCAddr               string          `json:"rpc_addr"`
	Validators            []validatorInfo `json:"validators"`
	SyncInfo              syncInfo        `json:"sync_info"`
	ValidatorAccountID    *string         `json:"validator_account_id"`
	ValidatorPublicKey    *string         `json:"validator_public_key"`
	NodePublicKey         string          `json:"node_public_key"`
	NodeKey               *string         `json:"node_key"`
	UptimeSec             int64           `json:"uptime_sec"`
	GenesisHash           string          `json:"genesis_hash"`
	DetailedDebugStatus   *struct{}       `json:"detailed_debug_status,omitempty"`
}

type versionInfo struct {
	Version      string `json:"version"`
	Build        string `json:"build"`
	Commit       string `json:"commit"`
	RustcVersion string `json:"rustc_version"`
}

type validatorInfo struct {
	AccountID string `json:"account_id"`
	IsSlashed bool   `json:"is_slashed"`
}

type syncInfo struct {
	LatestBlockHash     string `json:"latest_block_hash"`
	LatestBlockHeight   int64  `json:"latest_block_height"`
	LatestStateRoot     string `json:"latest_state_root"`
	LatestBlockTime     string `json:"latest_block_time"`
	Syncing             bool   `json:"syncing"`
	EarliestBlockHash   string `json:"earliest_block_hash"`
	EarliestBlockHeight int64  `json:"earliest_block_height"`
	EarliestBlockTime   string `json:"earliest_block_time"`
	EpochID             string `json:"epoch_id"`
	EpochStartHeight    int64  `json:"epoch_start_height"`
}

// status is the node's status at now. While syncing, the node reports half
// the chain's head.
func (n *node) status(now time.Time) statusResponse {
	syncing := n.syncing(now)
	h := n.chain.head(now)
	if syncing {
		h /= 2
	}
	s := statusResponse{
		Version:               versionInfo{n.knobs.Version, n.knobs.Version, "standin", rustcVersion},
		ChainID:               n.chainID,
		ProtocolVersion:       protocolVersion,
		LatestProtocolVersion: protocolVersion,
		RPCAddr:               n.cfg.RPCAddr,
		Validators:            []validatorInfo{},
		SyncInfo: syncInfo{
			LatestBlockHash:     hashOf("block", h),
			LatestBlockHeight:   h,
			LatestStateRoot:     hashOf("state", h),
			LatestBlockTime:     n.chain.blockTime(h).UTC().Format(blockTimeLayout),
			Syncing:             syncing,
			EarliestBlockHash:   hashOf("block", 0),
			EarliestBlockHeight: 0,
			EarliestBlockTime:   n.chain.blockTime(0).UTC().Format(blockTimeLayout),
			EpochID:             hashOf("epoch", epochStart(h)),
			EpochStartHeight:    epochStart(h),
		},
		NodePublicKey: n.nodeKey.PublicKey,
		UptimeSec:     int64(now.Sub(n.started) / time.Second),
		GenesisHash:   hashOf("block", 0),
	}
	for _, v := range n.validators {
		s.Validators = append(s.Validators, validatorInfo{AccountID: v})
	}
	if v := n.validator(); v != nil {
		// node_key is neard's deprecated alias of validator_public_key.
		s.ValidatorAccountID, s.ValidatorPublicKey, s.NodeKey = &v.AccountID, &v.PublicKey, &v.PublicKey
	}
	return s
}

// handler serves neard's HTTP endpoints.
func (n *node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, n.status(time.Now()))
	})
	// neard answers 503 with an empty body while syncing, 200 and the
	// unit response (null) otherwise.
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		if n.syncing(time.Now()) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusOK, nil)
	})
	mux.HandleFunc("GET /metrics", n.serveMetrics)
	mux.HandleFunc("POST /{$}", n.serveJSONRPC)
	return mux
}

func (n *node) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	now := time.Now()
	h, isValidator, sync := n.chain.head(now), 0, 0
	if n.syncing(now) {
		h, sync = h/2, syncStatusBlockSync
	}
	if n.validator() != nil {
		isValidator = 1
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintf(w, "# HELP near_block_height_head Height of the current head of the blockchain\n"+
		"# TYPE near_block_height_head gauge\nnear_block_height_head %d\n"+
		"# HELP near_is_validator Bool value indicating if the node is a validator\n"+
		"# TYPE near_is_validator gauge\nnear_is_validator %d\n"+
		"# HELP near_sync_status Node sync status\n"+
		"# TYPE near_sync_status gauge\nnear_sync_status %d\n", h, isValidator, sync)
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Name    string `json:"name,omitempty"`
	Cause   any    `json:"cause,omitempty"`
	Data    any    `json:"data,omitempty"`
}

// serveJSONRPC answers JSON-RPC 2.0 on POST /: the method "status" returns
// the status object; others are -32601 with neard's error shape.
func (n *node) serveJSONRPC(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	resp := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result,omitempty"`
		Error   *rpcError       `json:"error,omitempty"`
	}{JSONRPC: "2.0", ID: json.RawMessage("null")}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		resp.Error = &rpcError{Code: -32700, Message: "Parse error", Data: err.Error()}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if len(req.ID) > 0 {
		resp.ID = req.ID
	}
	if req.Method == "status" {
		resp.Result = n.status(time.Now())
	} else {
		resp.Error = &rpcError{
			Code: -32601, Message: "Method not found", Name: "REQUEST_VALIDATION_ERROR",
			Cause: map[string]any{"name": "METHOD_NOT_FOUND", "info": map[string]string{"method_name": req.Method}},
			Data:  req.Method,
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}
