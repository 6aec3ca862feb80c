# valguard, built from this repository with nixpkgs' buildGoModule.
# The module needs Go ≥ 1.26 (go.mod); on a nixpkgs whose default Go is
# older, call it with `buildGoModule = pkgs.buildGo126Module`.
{ lib, buildGoModule }:
buildGoModule {
  pname = "valguard";
  version = "0-unstable";
  src = lib.cleanSource ../.;
  # NAR hash of `go mod vendor` for this go.mod and go.sum; the test in
  # this directory recomputes it (nix-hash) and fails when it is stale.
  vendorHash = "sha256-UaRvA9c+yAJzrHO6ySdUFV2j3SpoGDbmSi+pnq2yLLs=";
  subPackages = [ "cmd/valguard" ];
  ldflags = [ "-s" "-w" "-X main.version=0-unstable" ];
  env.CGO_ENABLED = 0;
  # The tests need Consul, CometBFT and network access; run them with
  # `make test` instead.
  doCheck = false;
  meta = {
    description = "High-availability failover supervisor for blockchain validators (CometBFT, NEAR)";
    mainProgram = "valguard";
    platforms = lib.platforms.linux;
  };
}
