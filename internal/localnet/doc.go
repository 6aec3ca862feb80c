// Package localnet builds and runs a CometBFT network on loopback for
// valguard's end-to-end tests, the demo (make demo) and benchmarks.
//
// One validator of the network, the HA validator, is never run from its own
// home. Its key is moved out of that home into Dir/secrets, and two or more
// replica homes (plain full nodes with their own fresh, non-validator keys,
// the way an operator would set them up) follow the chain in its place. A
// valguard instance per replica home then decides which of them links the
// key in and signs.
//
// The package also holds the chain checks those tests assert on: is a
// validator signing at a height, was duplicate-vote evidence committed, what
// is a validator's power, did a node log a conflicting vote.
//
// It is for tests, the demo and benchmarks only. Nothing in production
// needs it, and valguard itself never imports it.
package localnet
