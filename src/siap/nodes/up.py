"""``siap up`` / ``siap down``: a whole local coalition network on loopback.

``up(SCENARIO, POLICY, DIR)`` writes into DIR: keys (each node's private key in its own file,
``trust.yaml`` with every public key), TLS test certificates, one NATS server configuration
per partner site (a JetStream cluster; one account per partner), every node's configuration
and the COP service configurations (tokens); starts the servers and then every node process
(gateway, partner, COP per partner) detached, and records them in ``DIR/processes.json``
(PID, start time, argv, log). ``down(DIR)`` stops exactly those processes that are still the
ones started (same PID and start time), nodes first, then the servers.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from siap.errors import ConfigError, SiapError
from siap.runtime import node_id_for

from .network import (
    ProcessRecord,
    Site,
    accounts_config,
    free_port,
    is_running,
    load_records,
    make_certs,
    nats_server_binary,
    server_config,
    start_process,
    stop_process,
    wait_for_port,
    write_server_config,
)
from .roles import gateway_id_for

__all__ = ["Network", "down", "releases_of", "restart", "up", "write_network"]

PROCESSES = "processes.json"


def releases_of(policy) -> dict[str, list[str]]:
    """For each partner S, the partners S's releases may go to: R such that some label of S's
    sensors is releasable to R under ``policy``."""
    out: dict[str, list[str]] = {}
    for s in policy.partners:
        sensors = [sid for sid in policy.sensors if policy.owner_or_none(sid) == s]
        out[s] = [r for r in policy.partners if r != s
                  and any(policy.releasable(policy.sensor_label(sid), r) for sid in sensors)]
    return out


@dataclass
class Network:
    """What :func:`write_network` prepared: the sites, config paths, COP ports and tokens."""

    dir: Path
    run: str
    partners: list[str]
    sites: list[Site]
    server_configs: dict[str, Path]
    node_configs: dict[str, Path]  # "gateway-JPN" -> path
    cop_ports: dict[str, int]
    tokens: dict[str, str]
    passwords: dict[str, str]
    ca_file: Path


def write_network(scenario: str, policy_ref: str, run_dir: Path, *, speed: float = 1.0,
                  start_delay_s: float = 8.0, update_period_s: float = 5.0, run: str | None = None,
                  cop: bool = True) -> Network:
    """Write every key, certificate and configuration of a local network into ``run_dir``."""
    import siap
    from siap.service.config import ServiceConfig
    from siap.sharing.policy import load_policy
    from siap.sharing.signing import NodeIdentity, TrustStore

    sc = siap.load_scenario(scenario)
    policy = load_policy(policy_ref)
    missing = sorted({s.partner for s in sc.sensors} - set(policy.partners))
    if missing:
        raise ConfigError(f"policy {policy.name}: partners: scenario {sc.name} has sensors of {', '.join(missing)}, "
                          "which the policy does not name")
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    run = run or f"r{secrets.token_hex(4)}"
    partners = [p for p in policy.partners if any(s.partner == p for s in sc.sensors)]
    trust = TrustStore()
    keys = run_dir / "keys"
    for p in partners:
        for node_id in (node_id_for(p), gateway_id_for(p)):
            ident = NodeIdentity.generate(node_id, p)
            if node_id == gateway_id_for(p) and getattr(ident, "encryption_key", None) is not None:
                # a gateway sends only (to its own partner node): no key to receive sealed
                # envelopes, so the partner node stays the one node receiving for P
                ident = dataclasses.replace(ident, encryption_key=None)
            ident.save_private_key(keys / p / f"{node_id}.pem")
            trust.add(ident)
    trust.save(keys / "trust.yaml")
    tls = make_certs(run_dir / "tls")
    passwords = {p: secrets.token_urlsafe(18) for p in partners}
    sites = [Site(p, free_port(), free_port(), run_dir / "nats" / p) for p in partners]
    releases = {s: [r for r in rs if r in partners] for s, rs in releases_of(policy).items() if s in partners}
    accounts = accounts_config(partners, releases, passwords)
    server_cfgs = {s.partner: write_server_config(run_dir / "nats" / f"{s.partner}.conf",
                                                  server_config(s, sites, accounts, tls)) for s in sites}
    # scenario/policy: built-in names stay names; files are referenced by absolute path
    sc_ref = scenario if not Path(scenario).exists() else str(Path(scenario).resolve())
    pol_ref = policy_ref if not Path(policy_ref).exists() else str(Path(policy_ref).resolve())
    wall_start = time.time() + start_delay_s
    node_cfgs: dict[str, Path] = {}
    cop_ports: dict[str, int] = {}
    tokens: dict[str, str] = {}
    for s in sites:
        p = s.partner
        base = {
            "partner": p, "run": run, "scenario": sc_ref, "policy": pol_ref,
            "nats": {"url": s.url, "user": p, "password": passwords[p], "ca_file": str(tls.ca_file)},
            "trust": str(keys / "trust.yaml"),
            "clock": {"speed": float(speed), "wall_start_s": wall_start},
        }
        roles = {
            "gateway": {"key": str(keys / p / f"{gateway_id_for(p)}.pem"), "state_dir": str(run_dir / "state" / f"gateway-{p}")},
            "partner": {"key": str(keys / p / f"{node_id_for(p)}.pem"), "state_dir": str(run_dir / "state" / f"partner-{p}"),
                        "update_period_s": float(update_period_s)},
        }
        if cop:
            svc = ServiceConfig.generate([p], audit_log=run_dir / "state" / f"cop-{p}" / "audit-service.jsonl")
            svc_path = svc.to_yaml(run_dir / "config" / f"service-{p}.yaml")
            cop_ports[p] = free_port()
            tokens[p] = svc.tokens[p]
            roles["cop"] = {"cop": {"port": cop_ports[p], "service_config": str(svc_path)}}
        for role, extra in roles.items():
            path = run_dir / "config" / f"{role}-{p}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump({"role": role, **base, **extra}, sort_keys=False))
            path.chmod(0o600)
            node_cfgs[f"{role}-{p}"] = path
    return Network(run_dir, run, partners, sites, server_cfgs, node_cfgs, cop_ports, tokens, passwords, tls.ca_file)


def node_argv(config: Path, role: str) -> list[str]:
    return [sys.executable, "-m", "siap.cli", "node", role, "--config", str(config)]


def _save(run_dir: Path, recs: list[ProcessRecord], net: Network | None = None) -> None:
    data = {"processes": [r.to_json() for r in recs]}
    if net is not None:
        data.update(run=net.run, cop={p: f"http://127.0.0.1:{port}/" for p, port in net.cop_ports.items()},
                    nats={s.partner: s.url for s in net.sites})
    (run_dir / PROCESSES).write_text(json.dumps(data, indent=1))


def up(scenario: str, policy: str, run_dir: Path, **kwargs) -> Network:
    """Start the whole network; returns what was started (see :class:`Network`)."""
    run_dir = Path(run_dir)
    if (run_dir / PROCESSES).exists() and any(is_running(r) for r in load_records(run_dir / PROCESSES)):
        raise ConfigError(f"{run_dir / PROCESSES}: processes: a network started there is still running; 'siap down --dir {run_dir}' first")
    net = write_network(scenario, policy, run_dir, **kwargs)
    recs: list[ProcessRecord] = []
    logs = net.dir / "logs"
    try:
        procs = []
        for s in net.sites:
            proc, rec = start_process(f"nats-{s.partner}", [nats_server_binary(), "-c", str(net.server_configs[s.partner])],
                                      logs / f"nats-{s.partner}.log")
            recs.append(rec)
            procs.append((proc, s))
            _save(net.dir, recs, net)
        for proc, s in procs:
            wait_for_port(s.port, proc=proc)
        for name, path in net.node_configs.items():
            role = name.split("-", 1)[0]
            _proc, rec = start_process(name, node_argv(path, role), logs / f"{name}.log")
            recs.append(rec)
            _save(net.dir, recs, net)
    except BaseException:
        for rec in reversed(recs):
            stop_process(rec)
        raise
    return net


def restart(run_dir: Path, name: str) -> ProcessRecord:
    """Start again a node of the network in ``run_dir`` that is no longer running (killed,
    crashed): same command, same configuration; it resumes from its snapshot and rejoins."""
    path = Path(run_dir) / PROCESSES
    recs = load_records(path)
    data = json.loads(path.read_text())
    i = next((i for i, r in enumerate(recs) if r.name == name), None)
    if i is None:
        raise ConfigError(f"{path}: processes: no process named {name!r} (have {', '.join(r.name for r in recs)})")
    if is_running(recs[i]):
        raise ConfigError(f"{path}: processes: {name} is still running (PID {recs[i].pid})")
    _proc, recs[i] = start_process(name, recs[i].argv, Path(recs[i].log))
    data["processes"] = [r.to_json() for r in recs]
    path.write_text(json.dumps(data, indent=1))
    return recs[i]


def down(run_dir: Path) -> list[tuple[str, str]]:
    """Stop what ``up`` started in ``run_dir`` (nodes, then servers): (name, outcome) each."""
    path = Path(run_dir) / PROCESSES
    if not path.exists():
        raise ConfigError(f"{path}: (file): expected the process list written by 'siap up' (no network was started there)")
    recs = load_records(path)
    nodes = [r for r in recs if not r.name.startswith("nats-")]
    servers = [r for r in recs if r.name.startswith("nats-")]
    out = [(r.name, stop_process(r)) for r in reversed(nodes)]
    out += [(r.name, stop_process(r)) for r in reversed(servers)]
    left = [r.name for r in recs if is_running(r)]
    if left:
        raise SiapError(f"{path}: processes still running after down: {', '.join(left)}")
    path.rename(path.with_suffix(".stopped.json"))
    return out
