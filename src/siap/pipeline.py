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

__all__ = ["DemoResult", "run_demo", "evaluation_times", "tracker_config_for"]


@dataclass
class DemoResult:
    """Everything one run of the main job produced, with the wall time of each stage (s)."""

    scenario_name: str
    simulation: object  # siap.simulation.SimulationResult
    tracks: np.ndarray  # records.TRACK_DTYPE snapshots at the evaluation times
    evaluation: object  # siap.evaluation.Evaluation
    tracker_stats: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None

    def summary(self) -> dict:
        """A JSON-serialisable summary: counts, timings and the run-level metrics."""
        sim = self.simulation
        plots = sim.plots
        n_plots = int(len(plots))
        track_s = self.timings_s.get("track", float("nan"))
        return {
            "scenario": self.scenario_name,
            "seed": int(sim.scenario.seed),
            "duration_s": float(sim.scenario.duration_s),
            "partners": [p.id for p in sim.scenario.partners],
            "sensors": len(sim.sensors),
            "truth_objects": int(len(np.unique(sim.truth["truth_id"]))),
            "plots": n_plots,
            "false_alarm_plots": int(np.count_nonzero(plots["truth_id"] == records.NO_TRUTH)),
            "track_ids": int(len(np.unique(self.tracks["track_id"]))) if len(self.tracks) else 0,
            "tracker_plots_per_s": n_plots / track_s if track_s > 0 else None,
            "tracker_stats": {k: int(v) for k, v in self.tracker_stats.items()},
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "metrics": self.evaluation.summary(),
        }


def evaluation_times(truth: np.ndarray, step_s: float) -> np.ndarray:
    """The truth sample times on a grid of ``step_s`` seconds (the picture is judged there)."""
    times = np.unique(truth["time_s"])
    if len(times) == 0:
        return times
    keep = np.isclose(np.mod(times - times[0] + 1e-6, step_s), 0.0, atol=1e-3)
    return times[keep]


def tracker_config_for(scenario):
    """A tracker configuration for a scenario: the tracking frame sits at the scenario origin."""
    from siap.tracking import TrackerConfig

    return TrackerConfig(
        origin_lat_deg=scenario.origin.lat_deg,
        origin_lon_deg=scenario.origin.lon_deg,
        origin_alt_m=scenario.origin.alt_m,
    )


def run_demo(
    scenario,
    out_dir: str | Path | None = None,
    *,
    eval_step_s: float = 5.0,
    progress: ProgressFn | None = None,
) -> DemoResult:
    """Simulate ``scenario``, track it, evaluate against truth and (if ``out_dir``) write
    ``report.html`` and ``metrics.json`` there."""
    from siap.evaluation import evaluate
    from siap.simulation import simulate
    from siap.tracking import track

    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sim = simulate(scenario, progress=progress)
    timings["simulate"] = time.perf_counter() - t0

    times = evaluation_times(sim.truth, eval_step_s)
    cfg = tracker_config_for(scenario)
    t0 = time.perf_counter()
    tracks, stats = _track_with_stats(sim.plots, cfg, times, lambda f: report("track", f))
    timings["track"] = time.perf_counter() - t0

    truth_eval = sim.truth[np.isin(sim.truth["time_s"], times)]
    t0 = time.perf_counter()
    report("evaluate", 0.0)
    evaluation = evaluate(truth_eval, tracks)
    report("evaluate", 1.0)
    timings["evaluate"] = time.perf_counter() - t0

    result = DemoResult(
        scenario_name=scenario.name,
        simulation=sim,
        tracks=tracks,
        evaluation=evaluation,
        tracker_stats=stats,
        timings_s=timings,
    )
    if out_dir is not None:
        write_outputs(result, Path(out_dir), progress=progress)
    return result


def _track_with_stats(plots, cfg, times, progress):
    """Run the streaming tracker over the plots, taking a snapshot at each evaluation time."""
    from siap.tracking import Tracker

    tracker = Tracker(cfg)
    order = np.argsort(plots["time_s"], kind="stable")
    plots = plots[order]
    cuts = np.searchsorted(plots["time_s"], times, side="right")
    snapshots = []
    start = 0
    for i, (t, stop) in enumerate(zip(times, cuts, strict=True)):
        if stop > start:
            tracker.process(plots[start:stop])
            start = stop
        snapshots.append(tracker.snapshot(float(t)))
        if i % 20 == 0:
            progress(i / max(len(times), 1))
    if start < len(plots):
        tracker.process(plots[start:])
    tracker.flush()
    progress(1.0)
    tracks = np.concatenate(snapshots) if snapshots else records.empty_tracks(0)
    return tracks, dict(tracker.stats)


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
