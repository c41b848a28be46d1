"""Benchmark: accuracy of the network picture on the realistic built-in scenarios.

For ``pacific`` and ``paris-real`` (``siap.simulation.simulate(load_scenario(name))``), one
tracker over every plot (the network picture), snapshots every 5 s, evaluated with
``siap.evaluation.evaluate`` against ``siap.pipeline.observable_truth`` at the 5 s evaluation
times (as ``siap demo --mode single`` does). Variants:

* ``imm``: the default tracker (two-model IMM, CV + manoeuvre);
* ``imm+registration``: the same with online sensor registration
  (``siap.tracking.registration.run_with_registration``: observe -> correct -> process);
* ``imm+declared``: reference: the declared biases removed exactly before tracking (what
  perfect registration would give; uses the scenario's truth-side bias values);
* ``cv``: a single constant-velocity Kalman filter (``TrackerConfig(imm_enabled=False)``).

Subsets (besides all observable truth):

* ``manoeuvring_states``: truth states turning faster than 1 deg/s. The traffic generator
  does not mark manoeuvring aircraft in the truth records, so the turn rate is computed from
  the truth velocities (heading of the horizontal velocity in local ENU, central differences
  on the 1 s truth grid). Evaluated against the tracks that lie within the association
  threshold (5 km) of such a state at the same time (so tracks on other aircraft do not count
  as false); GOSPA parts and the mean / RMS distance to the nearest track only (the SIAP
  counts need contiguous truth histories).
* ``manoeuvring_objects``: every observable state of the aircraft that turn faster than
  1 deg/s in at least 10 % of their states (orbits, racetracks, weaves), same track
  selection, all metrics.
* ``biased_coverage``: truth states within the maximum range of a radar with a declared bias,
  same track selection; this is where registration can matter.

Also reported: each radar's estimated biases against the declared ones, and the plot rate of
registration alone (observe + correct) and of the tracker with and without it.

Run: ``python bench/bench_accuracy.py [--quick]`` (quick: 5-minute scenarios); or
``main(argv=None) -> dict``. Writes bench/results/accuracy.json and prints tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from siap import geo
from siap.evaluation import evaluate
from siap.pipeline import evaluation_times, observable_truth, tracker_config_for
from siap.records import MeasurementKind, TrackStatus
from siap.scenario import load_scenario
from siap.simulation import simulate
from siap.tracking import track_with_stats
from siap.tracking.registration import RegistrationConfig, SensorRegistration, run_with_registration

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "accuracy.json"
SCENARIOS = ("pacific", "paris-real")
EVAL_STEP_S = 5.0
TURN_RATE_DEG_S = 1.0
MANOEUVRING_OBJECT_FRACTION = 0.1
GOSPA_ONLY = ("manoeuvring_states",)  # SIAP counts need contiguous truth histories
ASSOC_M = 5000.0
METRICS = (
    "gospa_mean_m",
    "gospa_localisation_mean",
    "gospa_missed_mean",
    "gospa_false_mean",
    "siap_completeness",
    "siap_ambiguity",
    "siap_spuriousness",
    "siap_position_accuracy_m",
    "siap_velocity_accuracy_mps",
)


def _key(truth_id, time_s, t0):
    return truth_id.astype(np.int64) * 100_000_000 + np.round((time_s - t0) * 10.0).astype(np.int64)


def turn_rate_deg_s(truth: np.ndarray) -> np.ndarray:
    """|d heading / dt| (deg/s) of every truth row, heading of the horizontal velocity in the
    local ENU frame at the state; central differences along each object's samples."""
    order = np.lexsort((truth["time_s"], truth["truth_id"]))
    tr = truth[order]
    rot = geo.enu_rotation(tr["lat_deg"], tr["lon_deg"]).reshape(-1, 3, 3)
    v = np.einsum("nij,nj->ni", rot, tr["vel_ecef_mps"])
    hdg = np.arctan2(v[:, 0], v[:, 1])
    n = len(tr)
    omega = np.zeros(n)
    same_prev = np.r_[False, tr["truth_id"][1:] == tr["truth_id"][:-1]]
    same_next = np.r_[tr["truth_id"][:-1] == tr["truth_id"][1:], False]
    prev = np.where(same_prev, np.arange(n) - 1, np.arange(n))
    nxt = np.where(same_next, np.arange(n) + 1, np.arange(n))
    dt_s = tr["time_s"][nxt] - tr["time_s"][prev]
    dh = (hdg[nxt] - hdg[prev] + np.pi) % (2 * np.pi) - np.pi
    slow = np.hypot(v[:, 0], v[:, 1]) < 20.0  # heading undefined when (almost) hovering
    omega = np.where((dt_s > 0) & ~slow, np.degrees(np.abs(dh)) / np.maximum(dt_s, 1e-9), 0.0)
    out = np.empty(n)
    out[order] = omega
    return out


def tracks_near(tracks: np.ndarray, truth_sub: np.ndarray, radius_m: float = ASSOC_M) -> np.ndarray:
    """Track rows within ``radius_m`` of a truth row of ``truth_sub`` at the same time."""
    from scipy.spatial import cKDTree

    if len(truth_sub) == 0 or len(tracks) == 0:
        return tracks[:0]
    keep = np.zeros(len(tracks), dtype=bool)
    tk = np.round(tracks["time_s"], 3)
    sk = np.round(truth_sub["time_s"], 3)
    for t in np.unique(sk):
        it = np.flatnonzero(tk == t)
        if len(it) == 0:
            continue
        tree = cKDTree(truth_sub["pos_ecef_m"][sk == t])
        d, _ = tree.query(tracks["pos_ecef_m"][it], k=1)
        keep[it[d <= radius_m]] = True
    return tracks[keep]


def _nearest_track_error(
    truth_sub: np.ndarray, tracks: np.ndarray, radius_m: float = ASSOC_M
) -> np.ndarray:
    """Distance (m) from each truth state to the nearest track at the same time, for states
    that have one within ``radius_m``."""
    from scipy.spatial import cKDTree

    out = []
    tk = np.round(tracks["time_s"], 3)
    sk = np.round(truth_sub["time_s"], 3)
    for t in np.unique(sk):
        it = tk == t
        if not it.any():
            continue
        d, _ = cKDTree(tracks["pos_ecef_m"][it]).query(truth_sub["pos_ecef_m"][sk == t], k=1)
        out.append(d[d <= radius_m])
    return np.concatenate(out) if out else np.zeros(0)


def _summary(ev) -> dict:
    s = ev.summary()
    return {k: s.get(k) for k in METRICS}


def _sensor_mask(truth, sensors, biased_only=True):
    m = np.zeros(len(truth), dtype=bool)
    for s in sensors:
        if s.kind == MeasurementKind.ADSB:
            continue
        b = s.biases or {}
        if biased_only and not any(
            abs(b.get(k, 0.0)) > 0 for k in ("range_m", "azimuth_rad", "time_s")
        ):
            continue
        if s.platform_track is not None:
            continue
        site = geo.geodetic_to_ecef(s.lat_deg, s.lon_deg, s.alt_m)[0]
        m |= np.linalg.norm(truth["pos_ecef_m"] - site, axis=1) <= s.max_range_m
    return m


def _remove_declared(plots: np.ndarray, sensors) -> np.ndarray:
    """A copy of the plots with each radar's declared biases removed (the reference)."""
    out = np.array(plots, copy=True)
    for s in sensors:
        b = s.biases or {}
        if s.kind == MeasurementKind.ADSB or not b:
            continue
        m = out["sensor_id"] == s.id
        out["range_m"][m] -= b.get("range_m", 0.0)
        out["azimuth_rad"][m] = np.mod(out["azimuth_rad"][m] - b.get("azimuth_rad", 0.0), 2 * np.pi)
        out["elevation_rad"][m] -= b.get("elevation_rad", 0.0)
        out["time_s"][m] -= b.get("time_s", 0.0)
    return out


class _DeclaredBiases:
    """A plot corrector that removes each radar's declared biases (the reference registration
    could at best reach)."""

    def __init__(self, sensors) -> None:
        self.sensors = sensors
        self.max_time_correction_s = max([0.0] + [float((s.biases or {}).get("time_s", 0.0)) for s in sensors])

    def observe(self, plots: np.ndarray) -> None:
        pass

    def correct(self, plots: np.ndarray) -> np.ndarray:
        return _remove_declared(plots, self.sensors)


def _track_declared(plots, cfg, times, sensors):
    """siap.tracking.track_with_stats on plots with the declared biases removed."""
    return track_with_stats(plots, cfg, times, registration=_DeclaredBiases(sensors))


def run_scenario(name: str, duration_s: float | None, progress=print) -> dict:
    sc = load_scenario(name)
    if duration_s is not None and duration_s < sc.duration_s:
        sc = sc.model_copy(update={"duration_s": float(duration_s)})
    t0 = time.perf_counter()
    sim = simulate(sc)
    t_sim = time.perf_counter() - t0
    plots, truth = sim.plots, sim.truth
    times = evaluation_times(truth, EVAL_STEP_S)
    at_times = truth[np.isin(truth["time_s"], times)]
    truth_eval = observable_truth(at_times, plots)
    tmin = float(truth["time_s"].min())
    omega_all = turn_rate_deg_s(truth)
    man_keys = _key(
        truth["truth_id"][omega_all > TURN_RATE_DEG_S],
        truth["time_s"][omega_all > TURN_RATE_DEG_S],
        tmin,
    )
    man = np.isin(_key(truth_eval["truth_id"], truth_eval["time_s"], tmin), man_keys)
    ids, n_states = np.unique(truth_eval["truth_id"], return_counts=True)
    n_man = np.bincount(np.searchsorted(ids, truth_eval["truth_id"][man]), minlength=len(ids))
    man_ids = ids[n_man >= MANOEUVRING_OBJECT_FRACTION * n_states]
    biased = _sensor_mask(truth_eval, sim.sensors)
    subsets = {
        "all": truth_eval,
        "manoeuvring_objects": truth_eval[np.isin(truth_eval["truth_id"], man_ids)],
        "manoeuvring_states": truth_eval[man],
    }
    if biased.any():
        subsets["biased_coverage"] = truth_eval[biased]
    progress(
        f"{name}: {len(plots)} plots, {len(np.unique(truth_eval['truth_id']))} observable objects, "
        f"{int(man.sum())} manoeuvring states of {len(truth_eval)}, simulated in {t_sim:.1f} s"
    )
    cfg = tracker_config_for(sc)
    variants = {}
    estimates = {}
    cpu0 = [0.0]
    reg_stats = {}

    def record(vname, tracks, wall, stats):
        cpu = time.process_time() - cpu0[0]
        res = {
            "wall_s": wall,
            "cpu_s": cpu,
            "plots_per_s": len(plots) / wall,
            "plots_per_cpu_s": len(plots) / cpu,
            "tracker_stats": stats,
        }
        for sub, tr in subsets.items():
            tk = (
                tracks
                if sub == "all"
                else tracks_near(tracks[tracks["status"] != TrackStatus.DELETED], tr)
            )
            summ = _summary(evaluate(tr, tk, times="tracks" if sub == "all" else "truth"))
            if sub in GOSPA_ONLY:
                summ = {k: (v if k.startswith("gospa") else None) for k, v in summ.items()}
                d = _nearest_track_error(tr, tk)
                summ["nearest_track_error_mean_m"] = float(np.mean(d)) if len(d) else None
                summ["nearest_track_error_rms_m"] = (
                    float(np.sqrt(np.mean(d**2))) if len(d) else None
                )
            res[sub] = summ
        variants[vname] = res
        a = res["all"]
        progress(
            f"  {vname:18s} GOSPA {a['gospa_mean_m']:9.1f} m  completeness {a['siap_completeness']:.3f}  "
            f"pos acc {a['siap_position_accuracy_m']:7.1f} m  ({wall:.1f} s)"
        )

    t0, cpu0[0] = time.perf_counter(), time.process_time()
    tracks, stats = track_with_stats(plots, cfg, times)
    record("imm", tracks, time.perf_counter() - t0, stats)

    t0, cpu0[0] = time.perf_counter(), time.process_time()
    tracks, reg, stats = run_with_registration(plots, cfg, times, RegistrationConfig())
    record("imm+registration", tracks, time.perf_counter() - t0, stats)
    reg_stats = reg.stats
    for sid, e in reg.estimates.items():
        estimates[sid] = e.as_dict()

    t0, cpu0[0] = time.perf_counter(), time.process_time()
    tracks, stats = _track_declared(plots, cfg, times, sim.sensors)
    record("imm+declared", tracks, time.perf_counter() - t0, stats)

    t0, cpu0[0] = time.perf_counter(), time.process_time()
    tracks, stats = track_with_stats(plots, cfg.model_copy(update={"imm_enabled": False}), times)
    record("cv", tracks, time.perf_counter() - t0, stats)

    # registration alone (observe + correct per 5 s slice): its own plot rate
    reg2 = SensorRegistration()
    order = np.argsort(plots["time_s"], kind="stable")
    sp = plots[order]
    cuts = np.searchsorted(sp["time_s"], times, side="right")
    t0, c0 = time.perf_counter(), time.process_time()
    start = 0
    for stop in cuts:
        if stop > start:
            reg2.observe(sp[start:stop])
            reg2.correct(sp[start:stop])
            start = stop
    t_reg = time.perf_counter() - t0
    c_reg = time.process_time() - c0

    declared = {}
    for s in sim.sensors:
        if s.kind == MeasurementKind.ADSB:
            continue
        b = s.biases or {}
        declared[s.id] = {
            "range_m": b.get("range_m", 0.0),
            "azimuth_deg": math.degrees(b.get("azimuth_rad", 0.0)),
            "time_s": b.get("time_s", 0.0),
        }
    return {
        "scenario": name,
        "duration_s": float(sc.duration_s),
        "plots": int(len(plots)),
        "observable_objects": int(len(np.unique(truth_eval["truth_id"]))),
        "truth_states": {k: int(len(v)) for k, v in subsets.items()},
        "manoeuvring_definition": f"truth states with |turn rate| > {TURN_RATE_DEG_S} deg/s from truth velocities",
        "simulate_s": t_sim,
        "variants": variants,
        "registration": {
            "declared": declared,
            "estimated": estimates,
            "stats": reg_stats,
            "registration_only_s": t_reg,
            "registration_only_plots_per_s": len(plots) / t_reg,
            "registration_only_cpu_s": c_reg,
            "registration_only_plots_per_cpu_s": len(plots) / c_reg,
        },
    }


def _table(results: list[dict]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        print(json.dumps(results, indent=1))
        return
    con = Console(width=180)
    for sub in ("all", "manoeuvring_objects", "manoeuvring_states", "biased_coverage"):
        t = Table(title=f"network picture accuracy: {sub}")
        for col in (
            "scenario",
            "variant",
            "GOSPA m",
            "loc",
            "missed",
            "false",
            "compl.",
            "ambig.",
            "spur.",
            "pos m",
            "vel m/s",
            "nearest m",
        ):
            t.add_column(col, justify="right" if col not in ("scenario", "variant") else "left")
        for r in results:
            for vn, v in r["variants"].items():
                if sub not in v:
                    continue
                m = v[sub]

                def f(x, d=1):
                    return "-" if x is None else f"{x:.{d}f}"

                t.add_row(
                    r["scenario"],
                    vn,
                    f(m["gospa_mean_m"]),
                    f(m["gospa_localisation_mean"]),
                    f(m["gospa_missed_mean"]),
                    f(m["gospa_false_mean"]),
                    f(m["siap_completeness"], 3),
                    f(m["siap_ambiguity"], 3),
                    f(m["siap_spuriousness"], 3),
                    f(m["siap_position_accuracy_m"]),
                    f(m["siap_velocity_accuracy_mps"]),
                    f(m.get("nearest_track_error_mean_m")),
                )
        con.print(t)
    t = Table(title="radar biases: declared vs estimated (+- 1 sd)")
    for col in (
        "scenario",
        "radar",
        "range m",
        "est. range m",
        "az deg",
        "est. az deg",
        "clock s",
        "est. clock s",
        "pairs",
        "conv.",
    ):
        t.add_column(col)
    for r in results:
        reg = r["registration"]
        for sid, d in reg["declared"].items():
            e = reg["estimated"].get(sid)
            if e is None:
                t.add_row(
                    r["scenario"],
                    sid,
                    f"{d['range_m']:.0f}",
                    "-",
                    f"{d['azimuth_deg']:.3f}",
                    "-",
                    f"{d['time_s']:.2f}",
                    "-",
                    "0",
                    "no",
                )
                continue
            t.add_row(
                r["scenario"],
                sid,
                f"{d['range_m']:.0f}",
                f"{e['range_m']:.1f} +- {e['range_sd_m']:.1f}",
                f"{d['azimuth_deg']:.3f}",
                f"{e['azimuth_deg']:.4f} +- {e['azimuth_sd_deg']:.4f}",
                f"{d['time_s']:.2f}",
                f"{e['time_s']:.3f} +- {e['time_sd_s']:.3f}",
                str(e["n_pairs"]),
                "yes" if e["converged"] else "no",
            )
    con.print(t)
    t = Table(title="throughput (plots per CPU second; wall in the JSON; evaluation not included)")
    for col in (
        "scenario",
        "plots",
        "imm",
        "imm+registration",
        "imm+declared",
        "cv",
        "registration alone",
    ):
        t.add_column(col, justify="right")
    for r in results:
        v = r["variants"]
        t.add_row(
            r["scenario"],
            str(r["plots"]),
            f"{v['imm']['plots_per_cpu_s']:.0f}",
            f"{v['imm+registration']['plots_per_cpu_s']:.0f}",
            f"{v['imm+declared']['plots_per_cpu_s']:.0f}",
            f"{v['cv']['plots_per_cpu_s']:.0f}",
            f"{r['registration']['registration_only_plots_per_cpu_s']:.0f}",
        )
    con.print(t)


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "pyproj", "siap"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        out["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=False
            ).stdout.strip()
            or None
        )
    except OSError:
        out["git_commit"] = None
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5-minute scenarios (a smoke run)")
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="scenario duration (s), shorter than the built-in",
    )
    ap.add_argument(
        "--scenarios", nargs="+", default=list(SCENARIOS), help="built-in scenario names"
    )
    ap.add_argument("--no-table", action="store_true", help="do not print the tables")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    ap.add_argument("--no-write", action="store_true", help="do not write the JSON results")
    args = ap.parse_args(argv)
    duration = args.duration if args.duration is not None else (300.0 if args.quick else None)
    t0 = time.perf_counter()
    results = [run_scenario(n, duration) for n in args.scenarios]
    doc = {
        "benchmark": "accuracy",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "command": " ".join(
            ["python", "bench/bench_accuracy.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "duration_s": duration,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": __import__("os").cpu_count(),
        },
        "versions": _versions(),
        "evaluation": "siap.evaluation.evaluate(observable_truth at 5 s times, tracker snapshots every 5 s), defaults (GOSPA c=5 km p=1 alpha=2; SIAP association 5 km)",
        "total_s": time.perf_counter() - t0,
        "scenarios": results,
    }
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1, default=_json_default))
    if not args.no_table:
        _table(results)
    return doc


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(type(v).__name__)


if __name__ == "__main__":
    main()
