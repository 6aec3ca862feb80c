#!/usr/bin/env bash
# Installs the test and demo dependencies of valguard into a cache:
# Consul and cosmovisor (built from the Go module proxy) and CometBFT
# (go install).
# Prints the cache bin directory on the last line of stdout.
#
# Not needed at run time in production.
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-v1.20.6}"
COMETBFT_VERSION="${COMETBFT_VERSION:-v0.38.26}"
COSMOVISOR_VERSION="${COSMOVISOR_VERSION:-v1.5.0}"
CACHE="${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

log() { printf 'install-deps: %s\n' "$*" >&2; }

install_consul() {
	local want="$BIN/consul-$CONSUL_VERSION"
	if [ -x "$want" ]; then
		ln -sfn "consul-$CONSUL_VERSION" "$BIN/consul"
		return
	fi
	log "building consul $CONSUL_VERSION from the Go module proxy (several minutes, once per machine)"
	local dir tmp
	dir=$(go mod download -json "github.com/hashicorp/consul@$CONSUL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		log "go mod download did not give a source directory for consul $CONSUL_VERSION"
		exit 1
	fi
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	cp -r "$dir/." "$tmp/src"
	chmod -R u+w "$tmp/src"
	(
		cd "$tmp/src"
		go mod edit \
			-dropreplace github.com/hashicorp/consul/api \
			-dropreplace github.com/hashicorp/consul/envoyextensions \
			-dropreplace github.com/hashicorp/consul/proto-public \
			-dropreplace github.com/hashicorp/consul/sdk \
			-dropreplace github.com/hashicorp/consul/troubleshoot
		GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$want.tmp" .
	)
	mv "$want.tmp" "$want"
	ln -sfn "consul-$CONSUL_VERSION" "$BIN/consul"
	log "consul installed: $want"
}

install_cometbft() {
	local want="$BIN/cometbft-$COMETBFT_VERSION"
	if [ -x "$want" ]; then
		ln -sfn "cometbft-$COMETBFT_VERSION" "$BIN/cometbft"
		return
	fi
	log "installing cometbft $COMETBFT_VERSION (go install)"
	local tmp
	tmp=$(mktemp -d)
	GOBIN="$tmp" go install "github.com/cometbft/cometbft/cmd/cometbft@$COMETBFT_VERSION"
	mv "$tmp/cometbft" "$want"
	rmdir "$tmp"
	ln -sfn "cometbft-$COMETBFT_VERSION" "$BIN/cometbft"
	log "cometbft installed: $want"
}

# download_copy puts a writable copy of module $1's source in $2.
download_copy() {
	local dir
	dir=$(go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		log "go mod download did not give a source directory for $1"
		exit 1
	fi
	cp -r "$dir/." "$2"
	chmod -R u+w "$2"
}

install_cosmovisor() {
	# go install fails here (the module proxy refuses cosmovisor's version
	# list, which go install reads); the exact version downloads: build it
	# from a copy of that source.
	local want="$BIN/cosmovisor-$COSMOVISOR_VERSION"
	if [ -x "$want" ]; then
		ln -sfn "cosmovisor-$COSMOVISOR_VERSION" "$BIN/cosmovisor"
		return
	fi
	log "building cosmovisor $COSMOVISOR_VERSION from the Go module proxy (a few minutes, once per machine)"
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	download_copy "cosmossdk.io/tools/cosmovisor@$COSMOVISOR_VERSION" "$tmp/src"
	(cd "$tmp/src" && GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$want.tmp" ./cmd/cosmovisor)
	mv "$want.tmp" "$want"
	ln -sfn "cosmovisor-$COSMOVISOR_VERSION" "$BIN/cosmovisor"
	log "cosmovisor installed: $want"
}

install_tools() {
	# Tools the tests, drills and benchmarks use; installed when missing and root.
	local missing=()
	command -v ps >/dev/null 2>&1 || missing+=(procps)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	# The protocol model (spin), the alert rules (promtool), the NixOS
	# module (nix-instantiate) and the systemd units (systemd-analyze).
	command -v spin >/dev/null 2>&1 || missing+=(spin)
	command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
	command -v nix-instantiate >/dev/null 2>&1 || missing+=(nix-bin)
	command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
	command -v gcc >/dev/null 2>&1 || missing+=(gcc)
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			log "installing ${missing[*]} with apt-get"
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		else
			log "missing ${missing[*]}: install them with your package manager"
			exit 1
		fi
	fi
}

install_tools
install_cometbft
install_consul
install_cosmovisor
echo "$BIN"
