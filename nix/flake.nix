# Flake for valguard: the package and the NixOS module. It lives in nix/;
# use it as `github:valguard/valguard?dir=nix` (or `path:./nix` from a
# checkout). The source it builds is the whole repository (../.).
{
  description = "valguard: failover supervisor for blockchain validators";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        valguard = pkgs.callPackage ./package.nix { };
        default = valguard;
      });

      overlays.default = final: _prev: {
        valguard = final.callPackage ./package.nix { };
      };

      nixosModules.default = { pkgs, lib, ... }: {
        imports = [ ./module.nix ];
        services.valguard.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.valguard;
      };
      nixosModules.valguard = self.nixosModules.default;
    };
}
