"""The main job end to end: simulate a scenario, track its plots, evaluate the picture against
truth, and write the report. `siap demo` is a thin shell around :func:`run_demo`.

Data flow is one way (DESIGN.md): scenario -> plots -> tracker -> tracks -> evaluation -> report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap import records

ProgressFn = Callable[[str, float], None]

__all__ = [
    "DemoResult",
    "run_demo",
    "evaluation_times",
    "observable_truth",
    "tracker_config_for",
    "default_policy_name",
    "PARTNER_METRICS",
    "RELEASABLE_COMPLETENESS",
    "releasable_sensor_mask",
]


# Completeness against the truth that the sensors releasable to the partner observe (what it
# may know), next to completeness against all observable truth (what the network sees): the
# gap between the two is the policy's cost, the rest the network's value.
RELEASABLE_COMPLETENESS = "siap_completeness_vs_releasable"


def releasable_sensor_mask(plots: np.ndarray, policy, partner: str) -> np.ndarray:
    """Plots whose sensor's tracks (owner's track label joined with the sensor's label, from
    ``policy``) are releasable to ``partner``; sensors the policy does not know are not."""
    from siap.sharing.labels import combine

    ids = np.unique(plots["sensor_id"])
    ok = set()
    for sid in ids.tolist():
        try:  # the label of any track built from the sensor (docs/coalition.md)
            label = combine([policy.track_label(policy.owner(sid)), policy.sensor_label(sid)])
            if policy.releasable(str(label), partner):
                ok.add(sid)
        except (KeyError, ValueError):
            continue
    return np.isin(plots["sensor_id"], list(ok)) if ok else np.zeros(len(plots), bool)


# Metrics shown per partner in the coalition tables (keys of Evaluation.summary()).
PARTNER_METRICS = (
    "siap_completeness",
    "gospa_mean_m",
    "siap_ambiguity",
    "siap_spuriousness",
    "siap_position_accuracy_m",
    "siap_velocity_accuracy_mps",
    "siap_longest_track_segment",
    "siap_rate_of_track_number_changes_per_s",
)


@dataclass
class DemoResult:
    """Everything one run of the main job produced, with the wall time of each stage (s).

    ``mode`` is "coalition" (partner nodes, signed sharing, per-partner pictures) or "single"
    (one tracker over every plot). ``pictures`` maps a picture name to its tracks
    (coalition mode: ``"JPN"`` etc. are the partners' coalition pictures; single mode:
    ``"network"``); ``evaluations`` maps the same names to their evaluations.
    """

    scenario_name: str
    mode: str
    simulation: object  # siap.simulation.SimulationResult
    pictures: dict[str, np.ndarray]
    evaluations: dict[str, object]  # name -> siap.evaluation.Evaluation
    tracker_stats: dict[str, dict[str, int]]
    timings_s: dict[str, float] = field(default_factory=dict)
    coalition: object | None = None  # siap.coalition.CoalitionResult
    partner_table: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    commonality: dict[str, dict[str, float | int]] = field(default_factory=dict)
    audit: dict[str, dict[str, object]] = field(default_factory=dict)
    observable_objects: int = 0
    biases: dict[str, dict[str, dict[str, float | int | bool]]] = field(default_factory=dict)
    out_dir: Path | None = None

    def summary(self) -> dict:
        """A JSON-serialisable summary: counts, timings and the run-level metrics."""
        sim = self.simulation
        plots = sim.plots
        summary = {
            "scenario": self.scenario_name,
            "mode": self.mode,
            "seed": int(sim.scenario.seed),
            "duration_s": float(sim.scenario.duration_s),
            "partners": [p.id for p in sim.scenario.partners],
            "sensors": len(sim.sensors),
            "truth_objects": int(len(np.unique(sim.truth["truth_id"]))),
            "observable_truth_objects": self.observable_objects,
            "plots": int(len(plots)),
            "false_alarm_plots": int(np.count_nonzero(plots["truth_id"] == records.NO_TRUTH)),
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "tracker_stats": self.tracker_stats,
            "metrics": {name: ev.summary() for name, ev in self.evaluations.items()},
            "registration": self.biases,
        }
        if self.mode == "coalition":
            c = self.coalition
            summary["partner_table"] = self.partner_table
            summary["commonality"] = self.commonality
            summary["messages"] = c.messages
            summary["rejected"] = c.rejected
            summary["audit"] = self.audit
            summary["source_groups"] = [
                {"partner": g.partner, "sensors": list(g.sensor_ids), "label": g.label, "audience": sorted(g.audience)}
                for g in c.groups
            ]
        return summary


def evaluation_times(truth: np.ndarray, step_s: float) -> np.ndarray:
    """The truth sample times on a grid of ``step_s`` seconds (the picture is judged there)."""
    times = np.unique(truth["time_s"])
    if len(times) == 0:
        return times
    keep = np.isclose(np.mod(times - times[0] + 1e-6, step_s), 0.0, atol=1e-3)
    return times[keep]


OBSERVABLE_WINDOW_S = 30.0


def observable_truth(truth: np.ndarray, plots: np.ndarray, window_s: float = OBSERVABLE_WINDOW_S) -> np.ndarray:
    """The truth states a sensor network could hold: objects detected by at least one sensor
    (any partner's) within the last ``window_s`` seconds. Pictures are judged against these,
    so that aircraft outside every sensor's coverage do not count as missed (docs/metrics.md).
    """
    det = plots[plots["truth_id"] != records.NO_TRUTH]
    if len(truth) == 0 or len(det) == 0:
        return truth[:0]
    t0 = min(float(truth["time_s"].min()), float(det["time_s"].min()))
    span = max(float(truth["time_s"].max()), float(det["time_s"].max())) - t0 + window_s + 1.0
    det_key = det["truth_id"].astype(np.float64) * span + (det["time_s"] - t0)
    det_key.sort()
    truth_key = truth["truth_id"].astype(np.float64) * span + (truth["time_s"] - t0)
    last = np.searchsorted(det_key, truth_key, side="right") - 1
    ok = last >= 0
    ok[ok] = (truth_key[ok] - det_key[last[ok]]) <= window_s
    return truth[ok]


def tracker_config_for(scenario):
    """A tracker configuration for a scenario: the tracking frame sits at the scenario origin."""
    from siap.tracking import TrackerConfig

    return TrackerConfig(
        origin_lat_deg=scenario.origin.lat_deg,
        origin_lon_deg=scenario.origin.lon_deg,
        origin_alt_m=scenario.origin.alt_m,
    )


def default_policy_name(scenario_name: str) -> str | None:
    """The built-in policy of a built-in scenario, if there is one."""
    from siap.sharing.policy import builtin_policies

    return scenario_name if scenario_name in builtin_policies() else None


def run_demo(
    scenario,
    out_dir: str | Path | None = None,
    *,
    mode: str = "coalition",
    policy=None,
    eval_step_s: float = 5.0,
    registration: bool = True,
    nats_url: str | None = None,
    progress: ProgressFn | None = None,
    fusion_config=None,
) -> DemoResult:
    """Simulate ``scenario``, build the picture(s), evaluate against truth and (if ``out_dir``)
    write ``report.html``, ``metrics.json`` and, in coalition mode, the audit logs there.

    ``policy``: a :class:`siap.sharing.policy.Policy`, a built-in name or a YAML path; by
    default the built-in policy named like the scenario. ``nats_url``: carry the partners'
    signed messages over NATS JetStream at that URL instead of the in-process bus.
    ``fusion_config``: the partners' :class:`siap.fusion.FusionConfig` (default: the runtime's).
    """
    from siap.simulation import simulate

    if mode not in ("coalition", "single"):
        raise ValueError(f"mode: expected 'coalition' or 'single', got {mode!r}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sim = simulate(scenario, progress=progress)
    timings["simulate"] = time.perf_counter() - t0
    times = evaluation_times(sim.truth, eval_step_s)
    truth_eval = observable_truth(sim.truth[np.isin(sim.truth["time_s"], times)], sim.plots)
    if mode == "single":
        result = _run_single(scenario, sim, times, truth_eval, timings, progress, registration)
    else:
        result = _run_coalition(
            scenario, sim, times, truth_eval, timings, policy, out_dir, progress, registration, nats_url,
            fusion_config,
        )
    result.observable_objects = int(len(np.unique(truth_eval["truth_id"])))
    if out_dir is not None:
        write_outputs(result, Path(out_dir), progress=progress)
    return result


def _run_single(scenario, sim, times, truth_eval, timings, progress, registration) -> DemoResult:
    from siap.evaluation import evaluate
    from siap.tracking import track_with_stats
    from siap.tracking.registration import SensorRegistration, estimates_table

    cfg = tracker_config_for(scenario)
    reg = SensorRegistration() if registration else None

    def track_progress(fraction: float) -> None:
        if progress is not None:
            progress("track", fraction)

    t0 = time.perf_counter()
    tracks, stats = track_with_stats(sim.plots, cfg, times, registration=reg, progress=track_progress)
    timings["track"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluation = evaluate(truth_eval, tracks)
    timings["evaluate"] = time.perf_counter() - t0
    return DemoResult(
        scenario_name=scenario.name,
        mode="single",
        simulation=sim,
        pictures={"network": tracks},
        evaluations={"network": evaluation},
        tracker_stats={"network": stats},
        timings_s=timings,
        biases={"network": estimates_table(reg)} if reg is not None else {},
    )


def _run_coalition(
    scenario, sim, times, truth_eval, timings, policy, out_dir, progress, registration, nats_url,
    fusion_config=None,
) -> DemoResult:
    from siap.coalition import run_coalition
    from siap.errors import ConfigError, RunStopped
    from siap.evaluation import evaluate
    from siap.evaluation.commonality import commonality
    from siap.sharing import audit as audit_mod
    from siap.sharing.policy import Policy, load_policy

    if policy is None:
        policy = default_policy_name(scenario.name)
        if policy is None:
            raise ConfigError(
                f"scenario {scenario.name}: no built-in policy of that name; pass --policy FILE or --mode single"
            )
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    policy.check_scenario_sensors({s.id: s.partner for s in scenario.sensors})
    audit_dir = Path(out_dir) / "audit" if out_dir is not None else None
    bus, subject_prefix = None, "siap.tracks"
    if nats_url is not None:
        import uuid

        from siap.transport import NatsBus

        run_id = uuid.uuid4().hex[:12]  # a run's own subjects and consumers on a shared server
        bus = NatsBus(nats_url, durable_prefix=f"siap-{run_id}")
        subject_prefix = f"siap.run.{run_id}.tracks"
    # the pictures go to disk as they are made (out/pictures/tracks.parquet): a run that ends
    # badly keeps them, and a long one need not be held whole to be kept
    recorder = None
    if out_dir is not None:
        from siap.formats.recording import Recorder

        recorder = Recorder(Path(out_dir) / "pictures", metadata={"scenario": scenario.name, "policy": policy.name})
    t0 = time.perf_counter()
    try:
        coal = run_coalition(
            sim.plots,
            policy,
            times,
            origin=(scenario.origin.lat_deg, scenario.origin.lon_deg, scenario.origin.alt_m),
            sensor_ids=[s.id for s in sim.sensors],
            tracker_config=tracker_config_for(scenario),
            audit_dir=audit_dir,
            registration=registration,
            fusion_config=fusion_config,
            bus=bus,
            subject_prefix=subject_prefix,
            progress=progress,
            sinks=(recorder,) if recorder is not None else (),
        )
    except RunStopped as stop:
        if recorder is not None:
            recorder.close()
        raise keep_partial(stop, Path(out_dir) if out_dir is not None else None, recorder) from None
    finally:
        if bus is not None:
            bus.close()
    if recorder is not None:
        recorder.close()
    timings["coalition"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluations: dict[str, object] = {}
    table: dict[str, dict[str, dict[str, float]]] = {}
    truth_at = sim.truth[np.isin(sim.truth["time_s"], times)]
    for p in coal.partners:
        row = {}
        # what p may know: the truth observed by the sensors whose data is releasable to p
        truth_p = observable_truth(truth_at, sim.plots[releasable_sensor_mask(sim.plots, policy, p)])
        for kind, pics in (("own", coal.own), ("coalition", coal.coalition), ("centralised", coal.centralised)):
            if p not in pics:
                continue
            ev = evaluate(truth_eval, pics[p])
            evaluations[f"{p} {kind}"] = ev
            s = ev.summary()
            row[kind] = {k: s[k] for k in PARTNER_METRICS if k in s}
            row[kind][RELEASABLE_COMPLETENESS] = float(
                evaluate(truth_p, pics[p]).summary()["siap_completeness"]
            )
        table[p] = row
    common = commonality(truth_eval, coal.coalition)
    timings["evaluate"] = time.perf_counter() - t0
    audit: dict[str, dict[str, object]] = {}
    if audit_dir is not None:
        # the run's own pinned keys (held in memory), each log anchored by the others' logs
        assert coal.trust is not None
        node_of = {p: f"{p}-node" for p in coal.audit_paths}
        checks = audit_mod.verify_coalition_audit(
            {node_of[p]: path for p, path in coal.audit_paths.items()}, coal.trust, coal.run_id
        )
        for p, path in coal.audit_paths.items():
            v = checks[node_of[p]]
            audit[p] = {"log": str(path), "node": node_of[p], "run": coal.run_id, "ok": v.ok, "entries": v.entries,
                        "reason": v.reason}
    return DemoResult(
        scenario_name=scenario.name,
        mode="coalition",
        simulation=sim,
        pictures=dict(coal.coalition),
        evaluations=evaluations,
        tracker_stats=coal.tracker_stats,
        timings_s=timings,
        coalition=coal,
        partner_table=table,
        commonality=common,
        audit=audit,
        biases=coal.biases,
    )


def keep_partial(stop, out_dir: Path | None, recorder=None):
    """After a coalition run stopped early (:class:`siap.errors.RunStopped`): verify its audit
    logs, write ``partial.json`` (where and why it stopped, counters, audit) into ``out_dir``
    and return the RunStopped with one line saying what was kept and how to go on."""
    from siap.sharing import audit as audit_mod

    coal = stop.partial
    rt = coal.runtime if coal is not None else None
    stop_s = float(rt.stop_s) if rt is not None and np.isfinite(rt.stop_s) else None
    if stop_s is not None:
        from datetime import UTC, datetime

        at = f" at {datetime.fromtimestamp(stop_s, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    else:
        at = " before its first update"
    done = sum(rt.updates.values()) if rt is not None else 0
    kept: list[str] = []
    summary: dict = {"stopped_by": stop.describe_cause(), "stop_s": stop_s, "updates": rt.updates if rt else {},
                     "run": coal.run_id if coal else ""}
    if coal is not None and coal.audit_paths and coal.trust is not None:
        checks = audit_mod.verify_coalition_audit(
            {f"{p}-node": path for p, path in coal.audit_paths.items()}, coal.trust, coal.run_id
        )
        summary["audit"] = {n: {"ok": v.ok, "entries": v.entries, "reason": v.reason} for n, v in checks.items()}
        ok = all(v.ok for v in checks.values())
        kept.append(f"audit logs {'verified' if ok else 'NOT verified'} in {Path(next(iter(coal.audit_paths.values()))).parent}")
    if recorder is not None:
        kept.append(f"{recorder.pictures} pictures in {recorder.dir / 'tracks.parquet'}")
    if rt is not None:
        summary.update(messages=rt.messages, rejected=rt.rejected, plots=rt.plots, tracker_stats=rt.tracker_stats)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "partial.json").write_text(json.dumps(summary, indent=2, default=_json_default))
        kept.append(f"counters in {out_dir / 'partial.json'}")
    from siap.errors import RunStopped

    message = (
        f"run stopped by {stop.describe_cause()}{at} after {done} partner updates; kept: "
        + ("; ".join(kept) or "nothing")
        + "; to resume, run the same command again (a simulated run is deterministic: it redoes the same updates)"
    )
    return RunStopped(message, stop.cause, coal)


def write_outputs(result: DemoResult, out_dir: Path, *, progress: ProgressFn | None = None) -> None:
    """Write metrics.json and report.html (with figures) for a finished run."""
    from siap.report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_report(result, out_dir / "report.html")
    result.timings_s["report"] = time.perf_counter() - t0
    result.out_dir = out_dir
    (out_dir / "metrics.json").write_text(json.dumps(result.summary(), indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
