#!/usr/bin/env bash
# Installs the test and demo dependencies of valguard into a cache:
# Consul and cosmovisor (built from the Go module proxy) and CometBFT
# (go install: the version the localnets run, linked as cometbft, and the
# other versions the version matrix test runs, as cometbft-<version>);
# with WITH_HORCRUX=1 also Horcrux (built from the module
# proxy), which only make bench uses, for its comparison column.
# Prints the cache bin directory on the last line of stdout.
#
# Not needed at run time in production.
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-v1.20.6}"
COMETBFT_VERSION="${COMETBFT_VERSION:-v0.38.26}"
# The CometBFT versions besides COMETBFT_VERSION that both sign modes are
# tested against (cmd/valguard/versions_e2e_test.go; the same list is
# localnet.CometBFTMatrix). COMETBFT_MATRIX="" installs none of them.
COMETBFT_MATRIX="${COMETBFT_MATRIX-v0.39.4 v0.40.0 v1.0.1}"
COSMOVISOR_VERSION="${COSMOVISOR_VERSION:-v1.5.0}"
HORCRUX_VERSION="${HORCRUX_VERSION:-v3.3.2}"
CACHE="${VALGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/valguard}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

log() { printf 'install-deps: %s\n' "$*" >&2; }

# build_from_source NAME VERSION MODULE PACKAGE [PREP]: builds PACKAGE of
# MODULE@VERSION into the cache as NAME-VERSION, from a writable copy of
# the module's source (go mod download gives it), after running PREP in
# that copy; links NAME to it. Nothing is done when it is cached.
build_from_source() {
	local name=$1 version=$2 module=$3 pkg=$4 prep=${5:-true}
	local want="$BIN/$name-$version"
	if [ ! -x "$want" ]; then
		log "building $name $version from the Go module proxy (minutes, once per machine)"
		local dir tmp
		dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		if [ -z "$dir" ] || [ ! -d "$dir" ]; then
			log "go mod download did not give a source directory for $module@$version"
			exit 1
		fi
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"; trap - RETURN' RETURN
		cp -r "$dir/." "$tmp/src"
		chmod -R u+w "$tmp/src"
		(cd "$tmp/src" && $prep && GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$want.tmp" "$pkg")
		mv "$want.tmp" "$want"
		log "$name installed: $want"
	fi
	ln -sfn "$name-$version" "$BIN/$name"
}

# consul's go.mod replaces its own submodules with directories of its
# repository, which a module download does not have.
consul_dropreplace() {
	go mod edit \
		-dropreplace github.com/hashicorp/consul/api \
		-dropreplace github.com/hashicorp/consul/envoyextensions \
		-dropreplace github.com/hashicorp/consul/proto-public \
		-dropreplace github.com/hashicorp/consul/sdk \
		-dropreplace github.com/hashicorp/consul/troubleshoot
}

install_consul() {
	build_from_source consul "$CONSUL_VERSION" github.com/hashicorp/consul . consul_dropreplace
}

# install_cometbft VERSION [link]: go-installs cometbft VERSION into the
# cache as cometbft-VERSION (once); with link, links cometbft to it.
install_cometbft() {
	local version=$1 link=${2:-}
	local want="$BIN/cometbft-$version"
	if [ ! -x "$want" ]; then
		log "installing cometbft $version (go install)"
		local tmp
		tmp=$(mktemp -d)
		GOBIN="$tmp" go install "github.com/cometbft/cometbft/cmd/cometbft@$version"
		mv "$tmp/cometbft" "$want"
		rmdir "$tmp"
		log "cometbft installed: $want"
	fi
	if [ -n "$link" ]; then
		ln -sfn "cometbft-$version" "$BIN/cometbft"
	fi
}

install_cosmovisor() {
	# go install fails here (the module proxy refuses cosmovisor's version
	# list, which go install reads); the exact version downloads.
	build_from_source cosmovisor "$COSMOVISOR_VERSION" cosmossdk.io/tools/cosmovisor ./cmd/cosmovisor
}

install_horcrux() {
	# Built outside any go.work; the bench finds it as horcrux in the cache.
	GOWORK=off build_from_source horcrux "$HORCRUX_VERSION" github.com/strangelove-ventures/horcrux/v3 ./cmd/horcrux
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
install_cometbft "$COMETBFT_VERSION" link
for v in $COMETBFT_MATRIX; do
	install_cometbft "$v"
done
install_consul
install_cosmovisor
if [ "${WITH_HORCRUX:-0}" = 1 ]; then
	install_horcrux
fi
echo "$BIN"
