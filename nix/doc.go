// Package nix holds valguard's Nix files: package.nix (buildGoModule),
// module.nix (the NixOS module services.valguard), unit.nix (the unit the
// module renders, as a pure function that needs only builtins) and
// flake.nix. Its tests check them with nix-instantiate without nixpkgs,
// which cannot be fetched where they run. Nothing in it is Go code used at
// run time.
package nix
