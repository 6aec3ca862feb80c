# The valguard systemd unit as a pure function of the module's settings,
# written with builtins only, so that it can be evaluated without nixpkgs
# (the tests in this directory do, and compare the result with the units
# shipped in ../systemd/). module.nix turns it into
# systemd.services.valguard.
let
  # Module options that are `valguard run` flags, by option name. A null
  # value leaves the flag out (valguard's own default applies); a list
  # repeats it.
  flagOptions = {
    node = "node";
    signMode = "sign-mode";
    signers = "signers";
    nodeHome = "node-home";
    nodeBinary = "node-binary";
    replicaId = "replica-id";
    consulUrl = "consul-url";
    sessionTtl = "session-ttl";
    metricsAddr = "metrics-addr";
    publicAddresses = "public-address";
    validatorNetworkAddr = "validator-network-addr";
    voterNetworkAddr = "voter-network-addr";
    bootNodes = "boot-nodes";
    promotion = "promotion";
  };

  # Module options that name a secret file: loaded with LoadCredential=
  # under a fixed name and given to the flag as %d/NAME (systemd's
  # $CREDENTIALS_DIRECTORY), never as the file's own path.
  credentialOptions = {
    validatorKeyFile = {
      flag = "validator-key";
      credential = cfg: if cfg.node == "neard" then "validator_key.json" else "priv_validator_key.json";
    };
    validatorNodeKeyFile = { flag = "validator-node-key"; credential = _: "validator_node_key.json"; };
    voterNodeKeyFile = { flag = "voter-node-key"; credential = _: "voter_node_key.json"; };
    consulTokenFile = { flag = "consul-token-file"; credential = _: "consul-token"; };
  };

  # Module options that are not flags, and why.
  nonFlagOptions = {
    enable = "turns the service on";
    package = "the valguard package: ExecStart's binary";
    user = "User=";
    group = "Group=";
    watchdogSec = "WatchdogSec=";
    environmentFile = "EnvironmentFile=, for VALGUARD_* or kuutamod's KUUTAMO_* variables";
    extraFlags = "more `valguard run` flags, appended as given";
    openFirewall = "opens the node's P2P port(s) in networking.firewall";
    cometbftP2PPort = "the CometBFT P2P port to open (config.toml's p2p.laddr; not a valguard flag)";
  };

  # Defaults of the settings; module.nix uses them as its option defaults.
  defaults = {
    node = "cometbft";
    signMode = null;
    signers = null;
    nodeHome = null;
    nodeBinary = null;
    replicaId = null;
    consulUrl = "http://127.0.0.1:8500";
    sessionTtl = null;
    metricsAddr = "127.0.0.1:2233";
    publicAddresses = [ ];
    validatorNetworkAddr = null;
    voterNetworkAddr = null;
    bootNodes = null;
    promotion = null;
    validatorKeyFile = null;
    validatorNodeKeyFile = null;
    voterNodeKeyFile = null;
    consulTokenFile = null;
    user = "valguard";
    group = "valguard";
    watchdogSec = 3;
    environmentFile = null;
    extraFlags = [ ];
    openFirewall = false;
    cometbftP2PPort = 26656;
  };

  # valguard refuses to start under systemd unless WatchdogSec + renew
  # interval < TTL − stop margin (replica/watchdog.go). With the
  # renew interval at its default (TTL/3) and the stop margin at its
  # default (--kill-timeout 2s + 1s), in whole seconds:
  # 3·WatchdogSec + 9 < 2·TTL.
  checkTiming = cfg:
    let ttl = if cfg.sessionTtl == null then 10 else cfg.sessionTtl;
    in
    if ttl < 10 then throw "valguard: sessionTtl = ${toString ttl}: valguard refuses a TTL below 10 s"
    else if cfg.watchdogSec < 1 then throw "valguard: watchdogSec = ${toString cfg.watchdogSec}: valguard refuses to run under systemd without a watchdog"
    else if 3 * cfg.watchdogSec + 9 >= 2 * ttl then
      throw "valguard: watchdogSec = ${toString cfg.watchdogSec} is too long for sessionTtl = ${toString ttl}: WatchdogSec + TTL/3 must be below TTL - 3 s, or valguard refuses to start"
    else true;

  flagValue = opt: v: if opt == "sessionTtl" then "${toString v}s" else toString v;

  flagArgs = cfg: builtins.concatLists (map
    (opt:
      let v = cfg.${opt}; in
      if v == null then [ ]
      else if builtins.isList v then builtins.concatMap (x: [ "--${flagOptions.${opt}}" (toString x) ]) v
      else [ "--${flagOptions.${opt}}" (flagValue opt v) ])
    (builtins.attrNames flagOptions));

  secrets = cfg: builtins.filter (s: s.path != null) (map
    (opt: {
      inherit (credentialOptions.${opt}) flag;
      name = credentialOptions.${opt}.credential cfg;
      path = if cfg.${opt} == null then null else checkSecret opt cfg.${opt};
    })
    (builtins.attrNames credentialOptions));

  # A secret given as a Nix path, or as a string inside the store, would be
  # world-readable in /nix/store.
  checkSecret = opt: p:
    if builtins.isPath p then throw "valguard: ${opt} is a Nix path: it would be copied into the world-readable store; give it as a string"
    else if builtins.substring 0 (builtins.stringLength builtins.storeDir) p == builtins.storeDir
    then throw "valguard: ${opt} = ${p} is in the world-readable Nix store; keep secrets outside it"
    else p;

  port = addr: default:
    if addr == null then default
    else builtins.fromJSON (builtins.head (builtins.match ".*:([0-9]+)" addr));

  render = { cfg, valguard }:
    let
      c = defaults // cfg;
      neard = c.node == "neard";
      args = [ valguard "run" ] ++ flagArgs c
        ++ builtins.concatMap (s: [ "--${s.flag}" "%d/${s.name}" ]) (secrets c)
        ++ c.extraFlags;
    in
    assert checkTiming c;
    assert c.nodeHome != null || throw "valguard: nodeHome is required";
    assert c.validatorKeyFile != null || throw "valguard: validatorKeyFile is required (it is loaded as a credential)";
    assert builtins.elem c.node [ "cometbft" "neard" ] || throw "valguard: node = ${c.node}: want cometbft or neard";
    {
      inherit args;
      description =
        if neard then "valguard: NEAR validator failover (neard)"
        else "valguard: CometBFT validator failover (${if c.signMode == "signer" then "signer" else "restart"} mode)";
      documentation = [ "https://github.com/valguard/valguard#systemd" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "consul.service" ];
      wantedBy = [ "multi-user.target" ];
      firewallPorts =
        if neard then [ (port c.validatorNetworkAddr 24567) (port c.voterNetworkAddr 24568) ]
        else [ c.cometbftP2PPort ];
      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = builtins.concatStringsSep " " args;
        User = c.user;
        Group = c.group;
        LoadCredential = map (s: "${s.name}:${s.path}") (secrets c);
        WatchdogSec = "${toString c.watchdogSec}s";
        WatchdogSignal = "SIGKILL";
        KillMode = "control-group";
        Delegate = "yes";
        # --stop-timeout (15 s, neard 60 s) + --kill-timeout + a Consul call.
        TimeoutStopSec = if neard then "90s" else "30s";
        Restart = "always";
        RestartSec = "5s";
        LimitNOFILE = 65536;
        UMask = "0077";
        # The same hardening as ../systemd/*.service, and for the same
        # reasons (see the comments there).
        ProtectSystem = "strict";
        ReadWritePaths = c.nodeHome;
        ProtectHome = "yes";
        PrivateTmp = "yes";
        PrivateDevices = "yes";
        NoNewPrivileges = "yes";
        CapabilityBoundingSet = "";
        ProtectClock = "yes";
        ProtectHostname = "yes";
        ProtectKernelLogs = "yes";
        ProtectKernelModules = "yes";
        ProtectProc = "invisible";
        RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6 AF_NETLINK";
        RestrictNamespaces = "yes";
        RestrictRealtime = "yes";
        RestrictSUIDSGID = "yes";
        LockPersonality = "yes";
        SystemCallArchitectures = "native";
        SystemCallFilter = "@system-service";
        SystemCallErrorNumber = "EPERM";
      } // (if c.environmentFile == null then { } else { EnvironmentFile = c.environmentFile; });
    };
in
{
  inherit flagOptions credentialOptions nonFlagOptions defaults render checkTiming;
  # The flag each option maps to, for the tests.
  optionFlags = flagOptions // builtins.mapAttrs (_: v: v.flag) credentialOptions;
}
