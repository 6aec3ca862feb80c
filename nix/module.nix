# NixOS module: services.valguard runs `valguard run` beside its node, as
# the units in ../systemd/ do. The unit itself is rendered by ./unit.nix
# (builtins only), which also says which option is which flag.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.valguard;
  unit = import ./unit.nix;
  d = unit.defaults;
  rendered = unit.render { inherit cfg; valguard = "${cfg.package}/bin/valguard"; };
  inherit (lib) mkOption types;
  flag = name: type: description: mkOption {
    inherit type;
    default = d.${name};
    description = "${description} (`--${unit.optionFlags.${name}}`).";
  };
  secret = name: description: mkOption {
    type = types.nullOr types.str;
    default = d.${name};
    description = "${description}: a path outside the Nix store, read by systemd (LoadCredential=) and given to valguard as `--${unit.optionFlags.${name}} %d/NAME`.";
  };
in
{
  options.services.valguard = {
    enable = lib.mkEnableOption "valguard, the failover supervisor of a validator's replicas";
    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The valguard package.";
    };
    node = flag "node" (types.enum [ "cometbft" "neard" ]) "Node adapter";
    signMode = flag "signMode" (types.nullOr (types.enum [ "restart" "signer" ])) "Sign mode; null: valguard's default (restart)";
    signers = flag "signers" (types.nullOr (types.enum [ "leader" "any" ])) "Signer mode's policy: leader (the lock holder signs) or any (every replica signs, the sign record decides); null: valguard's default (leader). Every replica of a validator runs the same";
    nodeHome = flag "nodeHome" (types.nullOr types.str) "The node home (the one writable path of the service)";
    nodeBinary = flag "nodeBinary" (types.nullOr types.str) "The node binary, e.g. \"\${pkgs.cometbft}/bin/cometbft\"";
    replicaId = flag "replicaId" (types.nullOr types.str) "Name of this replica; null: the hostname";
    consulUrl = flag "consulUrl" types.str "Consul HTTP API address; several, comma-separated, are used in turn";
    sessionTtl = flag "sessionTtl" (types.nullOr types.ints.positive) "Consul session TTL in seconds (at least 10); null: valguard's default (10)";
    metricsAddr = flag "metricsAddr" types.str "Address of /metrics and /health; \"\" disables";
    publicAddresses = flag "publicAddresses" (types.listOf types.str) "neard: the validator's public IPs or IP:ports";
    validatorNetworkAddr = flag "validatorNetworkAddr" (types.nullOr types.str) "neard: network.addr while validating";
    voterNetworkAddr = flag "voterNetworkAddr" (types.nullOr types.str) "neard: network.addr while voting";
    bootNodes = flag "bootNodes" (types.nullOr types.str) "neard: boot nodes";
    promotion = flag "promotion" (types.nullOr (types.enum [ "hot" "restart" "auto" ])) "neard: promotion";
    validatorKeyFile = secret "validatorKeyFile" "The validator key";
    validatorNodeKeyFile = secret "validatorNodeKeyFile" "neard: the validator's node key";
    voterNodeKeyFile = secret "voterNodeKeyFile" "neard: this standby's own node key (null: valguard creates one in the node home)";
    consulTokenFile = secret "consulTokenFile" "The Consul ACL token";
    user = mkOption { type = types.str; default = d.user; description = "User the service (and the node) runs as; owner of the node home."; };
    group = mkOption { type = types.str; default = d.group; description = "Group of the service."; };
    watchdogSec = mkOption {
      type = types.ints.positive;
      default = d.watchdogSec;
      description = "WatchdogSec= in seconds: 3·watchdogSec + 9 < 2·sessionTtl, or valguard refuses to start (checked at evaluation).";
    };
    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = d.environmentFile;
      description = "EnvironmentFile= (VALGUARD_* or kuutamod's KUUTAMO_* variables; flags set here win). Prefix with - to make it optional.";
    };
    extraFlags = mkOption { type = types.listOf types.str; default = d.extraFlags; description = "More `valguard run` flags."; };
    openFirewall = mkOption {
      type = types.bool;
      default = d.openFirewall;
      description = "Open the node's P2P port(s): cometbftP2PPort, or neard's validator and voter network ports.";
    };
    cometbftP2PPort = mkOption {
      type = types.port;
      default = d.cometbftP2PPort;
      description = "The CometBFT P2P port (config.toml's p2p.laddr), opened by openFirewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.valguard = {
      inherit (rendered) description documentation wants after wantedBy serviceConfig;
    };
    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall rendered.firewallPorts;
    users.users = lib.mkIf (cfg.user == "valguard") {
      valguard = { isSystemUser = true; group = cfg.group; };
    };
    users.groups = lib.mkIf (cfg.group == "valguard") { valguard = { }; };
  };
}
