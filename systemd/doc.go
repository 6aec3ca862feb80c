// Package systemd holds valguard's systemd units (valguard.service for the
// CometBFT restart mode, valguard-signer.service for the signer mode,
// valguard-neard.service for NEAR) and a reader for unit files, which the
// tests here and in nix/ use to check the units against systemd-analyze,
// valguard's own start-up checks and the NixOS module. Nothing in it is
// needed at run time.
package systemd
