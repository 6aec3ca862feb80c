package signer

// WrittenBySigner reports whether a watermark value stored in Consul was
// written by a signer-mode replica: the signer's watermark names its chain
// (chain_id), the restart mode's priv_validator_state.json does not. An
// empty or unreadable value was not. Meant for
// election.Config.WrittenFenced.
func WrittenBySigner(watermark []byte) bool { return hasChainID(watermark) }
