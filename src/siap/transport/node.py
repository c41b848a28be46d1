"""One coalition partner's node as its own process, exchanging signed envelopes over NATS.

A node is the runtime (:class:`siap.runtime.Runtime`) hosting one partner's node, with a
:class:`~siap.transport.NatsBus` as its bus::

    python -m siap.transport.node keys --policy POLICY --out KEYS
    python -m siap.transport.node run --partner JPN --scenario SC --policy POLICY --keys KEYS \\
        --url nats://127.0.0.1:4222 --run RUN_ID --out OUT --speed 1 \\
        --wall-start-s UNIX_TIME     # one per partner, in parallel

Subject ``siap.run.RUN_ID.tracks.P`` carries the envelopes for partner P (as ``siap.tracks.P``
in-process). There is no lockstep and no coordinator: each node runs a replay clock (``--speed``
x real time; nodes given the same ``--wall-start-s`` see the same scenario time at the same
wall time), updates on its own schedule, publishes, and fuses whatever has arrived by then.
A partner that is late or silent delays nobody: its tracks age out of the others' pictures
and come back when it resumes. A node's pictures therefore depend on arrival times and are not
bit-for-bit those of the in-process run (:func:`siap.coalition.run_coalition`).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap import records
from siap.errors import ConfigError, SiapError
from siap.fusion import FusionConfig
from siap.runtime import ArraySource, Clock, PictureRecorder, Runtime, VirtualClock, node_id_for
from siap.sharing.policy import Policy
from siap.sharing.signing import NodeIdentity, TrustStore
from siap.tracking import TrackerConfig

from .nats import NatsBus

log = logging.getLogger(__name__)

__all__ = ["NodeResult", "make_keys", "node_id_for", "run_node", "tracks_prefix", "tracks_subject"]

_RUN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_run(run_id: str) -> str:
    if not _RUN_RE.match(run_id):
        raise ConfigError(f"(node): run: expected 1-64 letters, digits, '_' or '-' (got {run_id!r})")
    return run_id


def tracks_prefix(run_id: str) -> str:
    """The subject prefix of run ``run_id``: partner P receives on ``PREFIX.P``."""
    return f"siap.run.{_check_run(run_id)}.tracks"


def tracks_subject(run_id: str, partner: str) -> str:
    return f"{tracks_prefix(run_id)}.{partner}"


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


@dataclass
class NodeResult:
    """One node's pictures at the evaluation times and what went over the wire."""

    partner: str
    times: np.ndarray
    coalition: np.ndarray  # TRACK_DTYPE, the fused coalition picture
    own: np.ndarray  # TRACK_DTYPE, from the partner's own sensors alone
    rejected: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    max_lag_s: float = 0.0  # how far the node fell behind its clock (replay)


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
    registration: bool = False,
    clock: Clock | None = None,
    start_s: float | None = None,
    update_period_s: float | None = None,
) -> NodeResult:
    """Run ``partner``'s node over ``plots`` (only its own sensors' plots are used) on the
    runtime, with ``bus`` to the other partners' nodes; the pictures at ``times``.

    The node updates at ``times`` (or every ``update_period_s``) on ``clock`` (default
    virtual; separate processes use a :class:`~siap.runtime.ReplayClock` with a common wall
    anchor and a common ``start_s``).
    """
    if partner not in policy.partners:
        raise ConfigError(f"policy {policy.name}: partners: no partner {partner!r} (have {', '.join(policy.partners)})")
    if identity.partner != partner:
        raise ConfigError(f"(node): key: the key is {identity.partner}'s, not {partner}'s")
    times = np.asarray(times, dtype=np.float64)
    cfg = tracker_config or TrackerConfig(origin_lat_deg=origin[0], origin_lon_deg=origin[1], origin_alt_m=origin[2])
    sids = sorted(set(sensor_ids) if sensor_ids is not None else set(np.unique(plots["sensor_id"]).tolist()))
    own = {s for s in sids if policy.owner_or_none(s) == partner}
    plots = plots[np.isin(plots["sensor_id"], sorted(own))]
    if start_s is None:
        first = min(float(times[0]), float(plots["time_s"].min()) if len(plots) else np.inf)
        start_s = first - 1.0
    runtime = Runtime(
        policy,
        [ArraySource(plots)],
        sensor_ids=sids,
        tracker_config=cfg,
        fusion_config=fusion_config,
        clock=clock if clock is not None else VirtualClock(),
        bus=bus,
        hosted=[partner],
        update_period_s=update_period_s if update_period_s is not None else 1.0,
        update_times=times if update_period_s is None else None,
        start_s=start_s,
        end_s=float(times.max()),
        registration=registration,
        identities={partner: identity},
        trust=trust,
        subject_prefix=tracks_prefix(run_id),
    )
    recorder = runtime.add_sink(PictureRecorder(times))
    try:
        res = runtime.run()
    finally:
        runtime.close()
    mine = tracks_prefix(run_id) + "."
    return NodeResult(
        partner,
        times,
        recorder.tracks(partner, "coalition"),
        recorder.tracks(partner, "own"),
        rejected=res.rejected[partner],
        messages={
            "published": int(sum(v for s, v in bus.published.items() if s.startswith(mine))),
            "delivered": int(bus.delivered[tracks_subject(run_id, partner)]),
            "accepted": res.messages["accepted"],
        },
        max_lag_s=res.max_lag_s,
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
    r.add_argument("--speed", type=float, default=1.0, help="replay speed, x real time")
    r.add_argument("--wall-start-s", type=float, default=None,
                   help="Unix wall time at which the scenario starts (the same for every node; default: now)")
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
        from siap.runtime import ReplayClock

        try:
            clock = ReplayClock(speed=args.speed, wall_anchor_s=args.wall_start_s)
        except ValueError as exc:
            raise ConfigError(f"(node): --speed: {exc}") from None
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
                registration=args.registration, clock=clock, start_s=scenario.start_time_s,
            )
        args.out.mkdir(parents=True, exist_ok=True)
        records.write_parquet(res.coalition, args.out / f"{args.partner}-coalition.parquet")
        records.write_parquet(res.own, args.out / f"{args.partner}-own.parquet")
        summary = {"partner": res.partner, "steps": len(res.times), "messages": res.messages,
                   "rejected": res.rejected, "max_lag_s": round(res.max_lag_s, 3)}
        (args.out / f"{args.partner}-summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
        return 0
    except SiapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
