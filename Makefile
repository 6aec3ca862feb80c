# The few commands people run. Test dependencies (Consul, CometBFT, cosmovisor) are
# installed into ${XDG_CACHE_HOME:-~/.cache}/valguard/bin on first use.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/valguard
DEPS     = $(shell bash scripts/install-deps.sh | tail -n 1)
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build test test-fast model lint demo bench chaos deps clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/valguard

deps:
	bash scripts/install-deps.sh

# Every tier: unit and real-Consul integration tests (what plain
# `go test ./...` runs, a few minutes), then the end-to-end tier behind the
# build tag e2e (real CometBFT localnets, the NEAR stand-in end to end,
# the chaos harness's own drill, the Promela models). docs/testing.md.
test:
	bash scripts/install-deps.sh >/dev/null
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(GO) test -count=1 -tags e2e -timeout 45m ./...

# The fast tier alone: unit and real-Consul integration tests.
test-fast:
	bash scripts/install-deps.sh >/dev/null
	$(GO) test -count=1 -timeout 15m ./...

# The Promela models of the hand-over protocol, checked with spin
# (model/README.md).
model:
	$(GO) test -count=1 -tags e2e -v ./model/

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: run gofmt -w on the files above"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -tags e2e ./...

# Consul + a 4-validator CometBFT localnet + two replicas; kills the leader
# and prints the failover timeline.
demo: build
	bash scripts/install-deps.sh >/dev/null
	$(GO) run ./scripts/demo --valguard $(BIN)

# On one localnet and one Consul: the restart mode, then the signer mode
# (--signers leader), then its leaderless policy (--signers any), each
# with RUNS graceful stops and crashes (the leader policy also RUNS
# crashes with deposition, the leaderless one RUNS node crashes), the
# fence latency, the block rate and valguard's RSS; prints the three side
# by side (min/median/max); then Horcrux v3.3.2 (3 cosigners, threshold
# 2, 2 sentries) on a localnet of its own, a fourth column (install-deps
# builds it with WITH_HORCRUX=1, once per machine; without a horcrux
# binary the column is left out). go run ./scripts/demo --latency-sweep prints
# missed heights against added Consul latency for both signer policies.
# WIRING=dial-out (the default: only the replicas dial the validators, as
# in production) or WIRING=mesh (the validators dial the replicas too).
# CONSUL_SERVERS=3 (the default: a 3-server cluster, each replica on its
# own server) or 1 (a -dev agent).
bench: build
	WITH_HORCRUX=1 bash scripts/install-deps.sh >/dev/null
	$(GO) run ./scripts/demo --valguard $(BIN) --bench --runs $${RUNS:-3} --wiring $${WIRING:-dial-out} --consul-servers $${CONSUL_SERVERS:-3}

# Fault drills (root: network namespaces): a 3-server Consul, a 4-validator
# localnet, two replicas each in its own namespace; FAULTS faults per mode
# from the schedule SEED (default: from the clock), the double-sign checker
# after each; prints the table per fault kind and writes report.json and
# timeline.svg into the run directory it names. MODE=restart|signer|both|near|all
# (both: the two sign modes on CometBFT; near: the key-file mode beside the
# neard stand-in).
chaos:
	bash scripts/install-deps.sh >/dev/null
	$(GO) run ./scripts/chaos --faults $${FAULTS:-200} --seed $${SEED:-0} --mode $${MODE:-both} $${CHAOS_ARGS:-}

clean:
	rm -rf bin
