"""One coalition partner's node as its own process, exchanging signed envelopes over NATS.

Each node runs what :func:`siap.coalition.run_coalition` runs for one partner (its source-group
trackers, release + signing, verification, fusion), with a :class:`~siap.transport.NatsBus` in
place of the in-process bus::

    python -m siap.transport.node keys --policy POLICY --out KEYS
    python -m siap.transport.node run --partner JPN --scenario SC --policy POLICY --keys KEYS \\
        --url nats://127.0.0.1:4222 --run RUN_ID --out OUT     # one per partner, in parallel

Subjects of run ``RUN_ID``: ``siap.run.RUN_ID.tracks.P`` carries the envelopes for partner P
(as ``siap.tracks.P`` in-process) and ``siap.run.RUN_ID.steps.P`` the *step markers* sent to P.
After publishing its envelopes of evaluation step k to P, a node sends P a marker
``(run, node, partner, k, time_s, count)`` signed with its Ed25519 key (domain
``siap-step-v1``). P waits for a marker from every other partner for step k, then for the
announced number of envelopes of time t_k, and only then verifies and fuses: lockstep without a
coordinator. Envelopes from a partner already at step k+1 are kept for the next step.
Received envelopes are verified in (policy partner order, sequence) order, the order of the
in-process run, so a node's pictures are identical to those of ``run_coalition``.

Markers carry no track data; a forged or altered one is dropped and counted
(``bad_marker``). A partner that stays silent makes the others fail after ``step_timeout_s``
with a one-line :class:`NodeError`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature

from siap import records
from siap.coalition import GROUP_SHIFT, PartnerNode, label_plots, source_groups
from siap.errors import ConfigError, SiapError
from siap.fusion import FusionConfig
from siap.sharing.policy import Policy
from siap.sharing.signing import NodeIdentity, RejectedMessage, SignedEnvelope, TrustStore
from siap.tracking import TrackerConfig

from .nats import NatsBus

log = logging.getLogger(__name__)

__all__ = ["NodeError", "NodeResult", "make_keys", "node_id_for", "run_node", "tracks_subject", "steps_subject"]

MARKER_DOMAIN = b"siap-step-v1\0"
_RUN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class NodeError(SiapError):
    """A coalition node cannot go on (a partner silent past the step timeout). One line."""

    exit_code = 4


def node_id_for(partner: str) -> str:
    """The node id of a partner's node (as in :func:`siap.coalition.run_coalition`)."""
    return f"{partner}-node"


def _check_run(run_id: str) -> str:
    if not _RUN_RE.match(run_id):
        raise ConfigError(f"(node): run: expected 1-64 letters, digits, '_' or '-' (got {run_id!r})")
    return run_id


def tracks_subject(run_id: str, partner: str) -> str:
    return f"siap.run.{_check_run(run_id)}.tracks.{partner}"


def steps_subject(run_id: str, partner: str) -> str:
    return f"siap.run.{_check_run(run_id)}.steps.{partner}"


def make_keys(policy: Policy, out_dir: str | Path) -> Path:
    """Generate every partner's node keys, each in its own folder (``OUT/P/P.pem``: folder mode
    0700, file 0600, never next to another partner's), and the public trust store
    ``OUT/trust.yaml`` (with fingerprints to compare); returns the trust store path. In a real
    coalition each partner makes its own keys on its own machine and only public keys are
    exchanged; this is the one-machine test setup."""
    out = Path(out_dir)
    trust = TrustStore()
    for p in policy.partners:
        identity = NodeIdentity.generate(node_id_for(p), p)
        (out / p).mkdir(parents=True, exist_ok=True)
        (out / p).chmod(0o700)
        identity.save_private_key(out / p / f"{p}.pem")
        trust.add(identity)
    trust.save(out / "trust.yaml")
    return out / "trust.yaml"


def _marker(identity: NodeIdentity, run_id: str, step: int, time_s: float, count: int) -> bytes:
    body = f"{run_id}|{identity.node_id}|{identity.partner}|{step}|{time_s!r}|{count}".encode("ascii")
    return body + identity.sign(MARKER_DOMAIN + body)


def _parse_marker(data: bytes, trust: TrustStore, run_id: str) -> tuple[str, int, float, int]:
    """(partner, step, time_s, count) of a genuine marker of this run; ValueError otherwise."""
    if len(data) <= 64:
        raise ValueError("marker too short")
    body, sig = data[:-64], data[-64:]
    fields = body.decode("ascii").split("|")
    if len(fields) != 6:
        raise ValueError("marker must have 6 fields")
    run, node, partner, step, time_s, count = fields
    trusted = trust.get(node)
    if trusted is None or trusted.partner != partner:
        raise ValueError(f"marker from unknown node {node!r}")
    try:
        trusted.public_key.verify(sig, MARKER_DOMAIN + body)
    except InvalidSignature:
        raise ValueError(f"marker signature of {node!r} does not verify") from None
    if run != run_id:
        raise ValueError(f"marker of another run {run!r}")
    return partner, int(step), float(time_s), int(count)


class _RunBus:
    """What :meth:`PartnerNode.publish` sees: ``siap.tracks.P`` goes to the run's subject."""

    def __init__(self, bus: NatsBus, run_id: str) -> None:
        self.bus, self.run_id = bus, run_id

    def publish(self, subject: str, message: bytes) -> None:
        prefix = "siap.tracks."
        if not subject.startswith(prefix):
            raise ValueError(f"unexpected subject {subject!r} from PartnerNode.publish")
        self.bus.publish(tracks_subject(self.run_id, subject[len(prefix):]), message)


@dataclass
class NodeResult:
    """One node's pictures at the evaluation times and what went over the wire."""

    partner: str
    times: np.ndarray
    coalition: np.ndarray  # TRACK_DTYPE, the fused coalition picture
    own: np.ndarray  # TRACK_DTYPE, from the partner's own sensors alone
    rejected: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    wait_s: float = 0.0  # time spent waiting for partners


def run_node(
    partner: str,
    plots: np.ndarray,
    policy: Policy,
    times: np.ndarray,
    *,
    origin: tuple[float, float, float],
    bus: NatsBus,
    identity: NodeIdentity,
    trust: TrustStore,
    run_id: str = "default",
    sensor_ids: list[str] | None = None,
    tracker_config: TrackerConfig | None = None,
    fusion_config: FusionConfig | None = None,
    step_timeout_s: float = 60.0,
    registration: bool = False,
) -> NodeResult:
    """Run ``partner``'s node over ``plots`` (only its own sensors' plots are used) in lockstep
    with the other partners' nodes on ``bus``; see the module doc for the protocol."""
    if partner not in policy.partners:
        raise ConfigError(f"policy {policy.name}: partners: no partner {partner!r} (have {', '.join(policy.partners)})")
    if identity.partner != partner:
        raise ConfigError(f"(node): key: the key is {identity.partner}'s, not {partner}'s")
    cfg = tracker_config or TrackerConfig(origin_lat_deg=origin[0], origin_lon_deg=origin[1], origin_alt_m=origin[2])
    fcfg = fusion_config or FusionConfig(source_id_bits=GROUP_SHIFT)
    sids = sorted(set(sensor_ids) if sensor_ids is not None else set(np.unique(plots["sensor_id"]).tolist()))
    groups = source_groups(policy, sids)
    mine = [g for g in groups if g.partner == partner]
    partners = list(policy.partners)
    others = [p for p in partners if p != partner]
    rank = {p: i for i, p in enumerate(partners)}
    own_sensors = {s for g in mine for s in g.sensor_ids}
    plots = plots[np.isin(plots["sensor_id"], list(own_sensors))]
    plots = label_plots(plots[np.argsort(plots["time_s"], kind="stable")], policy)
    global_index = {s: i for i, g in enumerate(groups) for s in g.sensor_ids}
    group_of = np.array([global_index[s] for s in plots["sensor_id"].tolist()], dtype=np.int64)
    cuts = np.searchsorted(plots["time_s"], times, side="right")
    node = PartnerNode(partner, mine, policy, cfg, fcfg, identity, trust, None,
                       [i for i, g in enumerate(groups) if g.partner == partner], registration)

    def local_tracks(window: slice, t: float) -> np.ndarray:
        return node.local_tracks(plots[window], group_of[window], t)

    my_tracks, my_steps = tracks_subject(run_id, partner), steps_subject(run_id, partner)
    bus.subscribe(my_tracks)
    bus.subscribe(my_steps)
    markers: dict[int, dict[str, int]] = {}  # step -> sender -> envelope count
    held: list[SignedEnvelope | bytes] = []  # envelopes for later steps, or unparseable
    counts = {"bad_marker": 0}
    coalition, own = [], []
    waited = 0.0
    start = 0
    for step, (t, stop) in enumerate(zip(times, cuts, strict=True)):
        t = float(t)
        window = slice(start, stop)
        start = stop
        local = local_tracks(window, t)
        for r in others:
            subject = tracks_subject(run_id, r)
            before = bus.published[subject]
            node.publish(local, t, _RunBus(bus, run_id), [r])  # release, sign, publish
            bus.publish(steps_subject(run_id, r), _marker(identity, run_id, step, t, bus.published[subject] - before))

        t0 = time.perf_counter()
        deadline = time.monotonic() + step_timeout_s
        while len(markers.get(step, {})) < len(others):
            if time.monotonic() > deadline:
                silent = sorted(set(others) - set(markers.get(step, {})))
                raise NodeError(f"node {partner}: no step {step} marker from {', '.join(silent)} within {step_timeout_s:g} s (run {run_id})")
            for data in bus.drain(my_steps, wait_s=1.0, min_messages=1):
                try:
                    sender, k, _, n = _parse_marker(data, trust, run_id)
                except (ValueError, UnicodeDecodeError) as exc:
                    counts["bad_marker"] += 1
                    log.warning("node %s: dropped a step marker: %s", partner, exc)
                    continue
                markers.setdefault(k, {})[sender] = n
        expected = sum(markers.pop(step).values())
        now, later = [], []
        for item in held:
            (now if isinstance(item, bytes) or item.time_s <= t else later).append(item)
        held = later
        while sum(isinstance(e, SignedEnvelope) for e in now) < expected:
            if time.monotonic() > deadline:
                raise NodeError(f"node {partner}: step {step}: {expected} envelopes announced, not all arrived within {step_timeout_s:g} s")
            for data in bus.drain(my_tracks, wait_s=1.0, min_messages=1):
                try:
                    env = SignedEnvelope.from_bytes(data)
                except ValueError:
                    now.append(data)  # the verifier rejects it as malformed
                    continue
                (now if env.time_s <= t else held).append(env)
        waited += time.perf_counter() - t0
        log.debug("node %s: step %d t=%.1f: %d envelopes expected, waited %.3f s", partner, step, t, expected, time.perf_counter() - t0)
        envs = sorted((e for e in now if isinstance(e, SignedEnvelope)), key=lambda e: (rank.get(e.origin_partner, len(rank)), e.seq))
        accepted = []
        for item in [*envs, *(b for b in now if isinstance(b, bytes))]:
            try:
                accepted.append(node.verifier.verify(item, now_s=t))
            except RejectedMessage:
                continue
        received = np.concatenate(accepted) if accepted else records.empty_tracks(0)
        both = np.concatenate([local, received]) if len(received) else local
        coalition.append(node.coalition_fuser.update(both, t))
        own.append(node.own_fuser.update(local, t))
    node.close()

    def cat(parts):
        parts = [p for p in parts if len(p)]
        return np.concatenate(parts) if parts else records.empty_tracks(0)

    rejected = {k: int(v) for k, v in node.verifier.counts.items() if k != "accepted"}
    if counts["bad_marker"]:
        rejected["bad_marker"] = counts["bad_marker"]
    return NodeResult(
        partner,
        np.asarray(times),
        cat(coalition),
        cat(own),
        rejected=rejected,
        messages={
            "published": int(sum(v for s, v in bus.published.items() if ".tracks." in s)),
            "delivered": int(bus.delivered[my_tracks]),
            "accepted": int(node.verifier.counts.get("accepted", 0)),
        },
        wait_s=waited,
    )


# ---------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siap.transport.node", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys", help="generate every partner's node key and the trust store")
    k.add_argument("--policy", required=True, help="policy file or built-in name")
    k.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("run", help="run one partner's node")
    r.add_argument("--partner", required=True)
    r.add_argument("--scenario", required=True, help="scenario file or built-in name")
    r.add_argument("--policy", help="policy file or built-in name (default: the scenario's built-in policy)")
    r.add_argument("--keys", required=True, type=Path, help="directory with P/P.pem and trust.yaml")
    r.add_argument("--url", default="nats://127.0.0.1:4222")
    r.add_argument("--stream", default="SIAP")
    r.add_argument("--run", default="default", help="run id (use a new one per run)")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--step-s", type=float, default=5.0, help="evaluation step, s")
    r.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all)")
    r.add_argument("--step-timeout-s", type=float, default=60.0)
    r.add_argument("--registration", action="store_true", help="estimate and correct sensor biases (as run_coalition)")
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        from siap.sharing.policy import load_policy

        if args.cmd == "keys":
            print(make_keys(load_policy(args.policy), args.out))
            return 0
        import siap
        from siap.pipeline import default_policy_name, evaluation_times, tracker_config_for

        scenario = siap.load_scenario(args.scenario)
        policy_name = args.policy or default_policy_name(scenario.name)
        if policy_name is None:
            raise ConfigError(f"scenario {scenario.name}: no built-in policy of that name; pass --policy FILE")
        policy = load_policy(policy_name)
        policy.check_scenario_sensors({s.id: s.partner for s in scenario.sensors})
        sim = siap.simulate(scenario)
        times = evaluation_times(sim.truth, args.step_s)
        if args.max_steps > 0:
            times = times[: args.max_steps]
        identity = NodeIdentity.load(args.keys / args.partner / f"{args.partner}.pem", node_id_for(args.partner), args.partner)
        trust = TrustStore.load(args.keys / "trust.yaml")
        with NatsBus(args.url, args.stream, durable_prefix=f"node-{args.partner}", deliver_new=False,
                     name=f"siap-node-{args.partner}") as bus:
            res = run_node(
                args.partner, sim.plots, policy, times,
                origin=(scenario.origin.lat_deg, scenario.origin.lon_deg, scenario.origin.alt_m),
                bus=bus, identity=identity, trust=trust, run_id=args.run,
                sensor_ids=[s.id for s in sim.sensors], tracker_config=tracker_config_for(scenario),
                step_timeout_s=args.step_timeout_s, registration=args.registration,
            )
        args.out.mkdir(parents=True, exist_ok=True)
        records.write_parquet(res.coalition, args.out / f"{args.partner}-coalition.parquet")
        records.write_parquet(res.own, args.out / f"{args.partner}-own.parquet")
        summary = {"partner": res.partner, "steps": len(res.times), "messages": res.messages,
                   "rejected": res.rejected, "wait_s": round(res.wait_s, 3)}
        (args.out / f"{args.partner}-summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
        return 0
    except SiapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
