// Package chaos runs fault drills against valguard: a 3-server Consul
// cluster and two or more replicas of one validator, each replica (valguard
// and its CometBFT node) in a network namespace of its own, the Consul
// servers in theirs, beside a 4-validator CometBFT localnet. Faults are
// injected at random instants from a seeded schedule; after each one the
// drill waits for recovery, measures it and runs the double-sign checker;
// at the end it writes a table per fault kind (JSON) and an SVG timeline.
//
// The NEAR drill (ModeNEAR) replaces the localnet with neard stand-ins
// (internal/neardstandin) beside the replicas: they share a chain clock
// and journal the heights they produce, and those journals are the chain
// the drill reads (standinChain). The faults that need chain peers or a
// node database do not apply there.
//
// It needs root (namespaces, veth pairs, bridges, mounts) and the nsenter,
// mount and umount tools; the links are made over netlink. Everything it creates is named with a prefix unique to the
// run ("vgc" and four hex digits) and removed at the end, also on failure;
// a run sweeps the leftovers of runs whose process is gone before it
// starts. Traffic stays on loopback and in the run's own namespaces.
//
// Network layout, per run (X is chosen per run):
//
//	10.213.X.0/24  chain bridge: 10.213.X.1 in the root namespace (the
//	               validators), 10.213.X.10+i replica i
//	10.214.X.0/24  Consul bridge: 10.214.X.1 in the root namespace (the
//	               fault proxies on the replicas' Consul path),
//	               10.214.X.10+i replica i, 10.214.X.20+j Consul server j
//
// A replica reaches Consul only through its fault proxy (which prefers
// server i and falls back to the others, as a local Consul client agent
// would), so latency, loss, blackholes and one-way drops act on that path;
// a partition from the chain takes the replica's chain veth down.
package chaos
