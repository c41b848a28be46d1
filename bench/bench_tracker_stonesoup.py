"""Side-by-side tracker benchmark: siap against Stone Soup on the same detections.

Scenario (see ``scenarios_cv.make_cv_scenario``): 100 km x 100 km, N nearly-constant-velocity
targets at 100-250 m/s with random headings (every target stays inside the area for the whole
run), 1 s scans, 100 scans, 2D Cartesian position detections with 50 m noise per axis, Pd 0.9,
Poisson clutter 5 per scan uniform over the area. Inputs are generated once per (N, seed) and
fed to every tracker.

Trackers:

* ``stonesoup-gnn``: ``MultiTargetTracker`` + ``DetectionKDTreeGNN2D`` (kd-tree pre-gating,
  then a 2D assignment on Mahalanobis distances from a ``DistanceHypothesiser``).
* ``stonesoup-jpda``: ``MultiTargetMixtureTracker`` + ``JPDAwithEHM`` (exact JPDA marginals by
  efficient hypothesis management) on ``PDAHypothesiser`` hypotheses, pre-gated with Stone
  Soup's own ``DetectionKDTreeMixIn`` (the same composition Stone Soup uses for
  ``KDTreeJPDA``). Its scans can be bounded at large N (``--jpda-max-scans 200:30``); it is
  then compared per scan against the other trackers' times over the same scans. By default
  it runs all scans (N = 200 takes about 40 s on one core here).
* ``siap`` / ``siap-gnn`` / ``siap-imm``: ``siap.tracking.Tracker`` fed the same detections as
  ``ADSB`` position plots (no identity: ``mode_s_address = -1``), one scan per ``process``
  call followed by ``advance`` and ``snapshot``. ``siap`` runs a single CV Kalman filter like
  Stone Soup's with JPDA for ambiguous clusters (``association='jpda'``) and GNN elsewhere;
  ``siap-gnn`` the same filter with GNN only; ``siap-imm`` siap's default CV + manoeuvre IMM
  with JPDA (see SIAP_TUNING).

All share: CV model with q equal to the truth's, 50 m measurement noise, the same track
confirmation rule idea (Stone Soup: ``MultiMeasurementInitiator`` with ``min_points``).
Timing excludes data generation and the conversion of detections into each tracker's input
objects; it includes producing the track set of each scan. GOSPA (c = 500 m, p = 1,
alpha = 2, 2D position) is computed by the same function (``scenarios_cv.gospa``, checked
against Stone Soup's ``GOSPAMetric`` in the tests) for every tracker and averaged over scans.

Run: ``python bench/bench_tracker_stonesoup.py [--seeds 1 2 3] [--n 10 50 200] [--quick]``.
Writes ``bench/results/tracker_vs_stonesoup.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import scenarios_cv as sc  # noqa: E402
from machine import machine_info  # noqa: E402

from siap import geo  # noqa: E402
from siap.records import TrackStatus  # noqa: E402

ORIGIN = geo.LocalFrame(35.0, 135.0, 0.0)
ALT_M = 10_000.0
GOSPA_C_M = 500.0
GOSPA_P = 1.0
DEFAULT_OUT = HERE / "results" / "tracker_vs_stonesoup.json"


def _gospa_function():
    """The GOSPA used for every tracker: siap.evaluation.gospa.gospa when it is importable,
    else scenarios_cv.gospa (the two are tested equal, and equal to Stone Soup's GOSPAMetric)."""
    try:
        from siap.evaluation.gospa import gospa as siap_gospa

        def fn(est_xy, truth_xy):
            r = siap_gospa(truth_xy, est_xy, c=GOSPA_C_M, p=GOSPA_P, alpha=2.0)
            return dict(distance=r.distance, localisation=r.localisation, missed=r.missed,
                        false=r.false)

        fn(np.zeros((1, 2)), np.ones((2, 2)))  # fail here, not mid-run, if the API differs
        return fn, "siap.evaluation.gospa.gospa"
    except Exception:
        return (lambda est_xy, truth_xy: sc.gospa(est_xy, truth_xy, c=GOSPA_C_M, p=GOSPA_P),
                "bench/scenarios_cv.py:gospa")


GOSPA_FN, GOSPA_FN_NAME = _gospa_function()


# ------------------------------------------------------------------------------------------
# Machine description: bench/machine.py
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Stone Soup
# ------------------------------------------------------------------------------------------


def _stonesoup_parts(scn: sc.CVScenario, vel_sd_mps: float):
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import (
        CombinedLinearGaussianTransitionModel,
        ConstantVelocity,
    )
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.types.array import CovarianceMatrix, StateVector
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater

    transition = CombinedLinearGaussianTransitionModel(
        [ConstantVelocity(scn.q), ConstantVelocity(scn.q)]
    )
    meas = LinearGaussian(
        ndim_state=4, mapping=(0, 2), noise_covar=CovarianceMatrix(np.diag([scn.sigma_m**2] * 2))
    )
    predictor = KalmanPredictor(transition)
    updater = KalmanUpdater(meas)
    # Position comes from the first detection (SimpleMeasurementInitiator maps it); velocity
    # is unknown: zero mean, sd covering the target speeds.
    prior = GaussianState(
        StateVector([0.0, 0.0, 0.0, 0.0]),
        CovarianceMatrix(np.diag([0.0, vel_sd_mps**2, 0.0, vel_sd_mps**2])),
    )
    return transition, meas, predictor, updater, prior


def _make_initiator(meas, predictor, updater, prior, gate, kd_max_m, min_points):
    from stonesoup.dataassociator.tree import DetectionKDTreeGNN2D
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis

    hyp = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=gate)
    assoc = DetectionKDTreeGNN2D(hyp, predictor, updater, max_distance=kd_max_m)
    return MultiMeasurementInitiator(
        prior_state=prior,
        measurement_model=meas,
        deleter=UpdateTimeStepsDeleter(time_steps_since_update=2),
        data_associator=assoc,
        updater=updater,
        min_points=min_points,
    )


def build_stonesoup(kind: str, scn: sc.CVScenario, tuning: dict):
    """A Stone Soup tracker of ``kind`` ('gnn' or 'jpda') for the scenario, fed by a list."""
    from stonesoup.dataassociator.probability import JPDAwithEHM
    from stonesoup.dataassociator.tree import DetectionKDTreeGNN2D, DetectionKDTreeMixIn
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.hypothesiser.probability import PDAHypothesiser
    from stonesoup.measures import Mahalanobis
    from stonesoup.tracker.simple import MultiTargetMixtureTracker, MultiTargetTracker

    _, meas, predictor, updater, prior = _stonesoup_parts(scn, tuning["vel_sd_mps"])
    initiator = _make_initiator(
        meas, predictor, updater, prior, tuning["gate"], tuning["kd_max_m"], tuning["min_points"]
    )
    deleter = UpdateTimeStepsDeleter(time_steps_since_update=tuning["delete_after_misses"])
    if kind == "gnn":
        hyp = DistanceHypothesiser(
            predictor, updater, measure=Mahalanobis(), missed_distance=tuning["gate"]
        )
        assoc = DetectionKDTreeGNN2D(hyp, predictor, updater, max_distance=tuning["kd_max_m"])
        cls = MultiTargetTracker
    elif kind == "jpda":

        class KDTreeJPDAwithEHM(DetectionKDTreeMixIn, JPDAwithEHM):
            """kd-tree pre-gating in front of JPDAwithEHM (as stonesoup's KDTreeJPDA)."""

        clutter_density = scn.clutter_per_scan / scn.area_m**2
        hyp = PDAHypothesiser(
            predictor,
            updater,
            clutter_spatial_density=clutter_density,
            prob_detect=scn.pd,
            prob_gate=tuning["prob_gate"],
        )
        assoc = KDTreeJPDAwithEHM(
            hypothesiser=hyp, predictor=predictor, updater=updater, max_distance=tuning["kd_max_m"]
        )
        cls = MultiTargetMixtureTracker
    else:
        raise ValueError(f"unknown Stone Soup tracker {kind!r}")
    return cls(initiator=initiator, deleter=deleter, detector=[], data_associator=assoc,
               updater=updater), meas


def _stonesoup_inputs(scn: sc.CVScenario, meas) -> list:
    from stonesoup.types.detection import Detection

    t0 = _dt.datetime.fromtimestamp(scn.times_s[0], tz=_dt.UTC).replace(tzinfo=None)
    out = []
    for k, sl in enumerate(scn.scan_slices()):
        ts = t0 + _dt.timedelta(seconds=float(scn.times_s[k] - scn.times_s[0]))
        dets = {
            Detection(xy.reshape(2, 1), timestamp=ts, measurement_model=meas)
            for xy in scn.det_xy[sl]
        }
        out.append((ts, dets))
    return out


# Tuning protocol: a few standard configurations of each tracker were tried on seed 2
# (N = 50 and 200) and the best GOSPA kept; results are reported on other seeds (default 1).
STONESOUP_TUNING = dict(
    # Mahalanobis gate (not squared) of the DistanceHypothesiser: 4 sd (3 and 3.5 were worse).
    gate=4.0,
    # kd-tree pre-gate radius (m) in measurement space; larger than any 4-sd gate here.
    kd_max_m=1_500.0,
    # prior velocity sd per axis for one-point initiation (speeds up to 250 m/s).
    vel_sd_mps=150.0,
    # Update states (the initiating detection counts) before a holding track is released;
    # 2 gave a lower GOSPA than 3 (faster initiation, few false tracks).
    min_points=2,
    # consecutive scans without an update before deletion (4 and 6 were no better).
    delete_after_misses=5,
    # JPDA gate probability of the PDAHypothesiser.
    prob_gate=0.9999,
)

# siap gets the same choices where it has the same knob: q equal to the truth's, the same
# prior velocity sd, the same gate (chi-square probability of a 4-sd Mahalanobis gate in 2D,
# 1 - exp(-8)), confirmation at 2 plots, tentative tracks dropped after 2 misses and
# confirmed ones after 5 (siap measures these in seconds: 1.5 s and 4.5 s at 1 s scans).
# Its sequential track score gets what Stone Soup's JPDA gets: the clutter density and the
# detection probability of the scenario (siap_config adds them), and the scan interval as the
# revisit time; its thresholds were tuned on seed 2 (score_confirm 2.3 / 3 / 3.5 / 4.5 / 6,
# score_delete -2.3 / -3 / -4.7, score_delete_confirmed none / 0 / 1 / 2 / 3 / 4.5). A confirmed
# track below 2 (most often a two-plot track that then missed two revisits) is hidden from the
# output but kept (score_report_confirmed; report levels none / 0 / 1 / 2 / 3 / 4.5 tried on
# seed 2, 2 kept) and deleted by score_delete and the time rules: deleting it at 2 instead
# (score_delete_confirmed = 2, the earlier setting, same GOSPA on seed 2) lost young real tracks
# whose next plot then had to start a new one.
# "siap" is a single CV Kalman filter like Stone Soup's with JPDA in ambiguous clusters;
# "siap-gnn" the same with GNN only (on the tuning seed 2 at N = 200 the two were within 1 m of
# GOSPA, GNN 6409.6 and JPDA 6410.5, so both are reported); "siap-imm" siap's default
# two-model IMM (CV + manoeuvre) with JPDA.
SIAP_TUNING = dict(
    initial_velocity_std_mps=150.0,
    gate_probability=float(1.0 - np.exp(-8.0)),
    confirm_hits=2,
    tentative_max_coast_s=1.5,
    coasting_after_s=2.5,
    delete_after_s=4.5,
    imm_enabled=False,
    score_confirm=3.5,
    score_delete=-3.0,
    score_report_confirmed=2.0,
)


def run_stonesoup(kind: str, scn: sc.CVScenario, max_scans: int | None = None,
                  tuning: dict | None = None) -> dict:
    tuning = dict(STONESOUP_TUNING, **(tuning or {}))
    tracker, meas = build_stonesoup(kind, scn, tuning)
    inputs = _stonesoup_inputs(scn, meas)
    if max_scans is not None:
        inputs = inputs[:max_scans]
    per_scan = np.empty(len(inputs))
    gospas, n_tracks, ids = [], [], set()
    n_det = 0
    cpu = np.empty(len(inputs))
    for k, (ts, dets) in enumerate(inputs):
        t, c = time.perf_counter(), time.process_time()
        _, tracks = tracker.update_tracker(ts, dets)
        per_scan[k] = time.perf_counter() - t
        cpu[k] = time.process_time() - c
        n_det += len(dets)
        xy = (
            np.array([[float(tr.state_vector[0, 0]), float(tr.state_vector[2, 0])] for tr in tracks])
            if tracks
            else np.zeros((0, 2))
        )
        gospas.append(GOSPA_FN(xy, scn.truth_xy[k]))
        n_tracks.append(len(tracks))
        ids.update(tr.id for tr in tracks)
    return _summarise(f"stonesoup-{kind}", scn, per_scan, cpu, n_det, gospas, n_tracks, len(ids),
                      dict(tuning=tuning))


# ------------------------------------------------------------------------------------------
# siap
# ------------------------------------------------------------------------------------------


def siap_available() -> bool:
    try:
        from siap.tracking import Tracker, TrackerConfig  # noqa: F401
    except Exception:
        return False
    return True


# name -> (IMM on, association)
SIAP_VARIANTS = {
    "siap": (False, "jpda"),
    "siap-gnn": (False, "gnn"),
    "siap-imm": (True, "jpda"),
}


def siap_config(scn: sc.CVScenario, variant: str = "siap", overrides: dict | None = None):
    """siap's TrackerConfig for the benchmark (see SIAP_TUNING)."""
    from siap.tracking import TrackerConfig

    kw: dict = dict(origin_lat_deg=ORIGIN.lat_deg, origin_lon_deg=ORIGIN.lon_deg, origin_alt_m=0.0,
                    cv_process_noise_m2ps3=scn.q, **SIAP_TUNING)
    # The scenario's clutter density and Pd (as given to Stone Soup's PDAHypothesiser) and scan
    # interval, for siap's track score.
    kw.update(false_alarm_density_per_km2=scn.clutter_per_scan / (scn.area_m / 1e3) ** 2,
              detection_probability=scn.pd, score_revisit_s=scn.dt_s)
    if variant not in SIAP_VARIANTS:
        raise ValueError(f"unknown siap variant {variant!r}")
    kw["imm_enabled"], kw["association"] = SIAP_VARIANTS[variant]
    kw.update(overrides or {})
    return TrackerConfig(**kw)


def run_siap(scn: sc.CVScenario, max_scans: int | None = None, overrides: dict | None = None,
             variant: str = "siap") -> dict:
    from siap.tracking import Tracker

    plots = sc.detections_to_plots(scn, ORIGIN, alt_m=ALT_M)
    edges = np.searchsorted(plots["time_s"], scn.times_s, side="left")
    edges = np.append(edges, len(plots))
    batches = [plots[edges[k]:edges[k + 1]] for k in range(scn.n_scans)]
    if max_scans is not None:
        batches = batches[:max_scans]
    cfg = siap_config(scn, variant, overrides)
    trk = Tracker(cfg)
    per_scan = np.empty(len(batches))
    gospas, n_tracks, ids = [], [], set()
    n_det = 0
    shown = (int(TrackStatus.CONFIRMED), int(TrackStatus.COASTING))
    cpu = np.empty(len(batches))
    for k, batch in enumerate(batches):
        t, c = time.perf_counter(), time.process_time()
        trk.process(batch)
        # Input is time-sorted, so the scan can be processed now rather than after siap's
        # reorder window (this is what siap.tracking.track does); Stone Soup also processes
        # each scan as it arrives.
        trk.advance(float(scn.times_s[k]))
        snap = trk.snapshot(float(scn.times_s[k]))
        per_scan[k] = time.perf_counter() - t
        cpu[k] = time.process_time() - c
        n_det += len(batch)
        snap = snap[np.isin(snap["status"], shown)]
        xy = sc.ecef_to_local_xy(snap["pos_ecef_m"], ORIGIN)
        gospas.append(GOSPA_FN(xy, scn.truth_xy[k]))
        n_tracks.append(len(snap))
        ids.update(snap["track_id"].tolist())
    extra = dict(config=cfg.model_dump(mode="json"))
    try:
        extra["stats"] = json.loads(json.dumps(trk.stats, default=str))
    except Exception:
        pass
    return _summarise(variant, scn, per_scan, cpu, n_det, gospas, n_tracks, len(ids), extra)


# ------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------


def _summarise(name, scn, per_scan, cpu, n_det, gospas, n_tracks, n_ids, extra) -> dict:
    g = np.array([x["distance"] for x in gospas])
    return dict(
        tracker=name,
        n_targets=scn.n_targets,
        seed=scn.seed,
        n_scans_run=len(per_scan),
        n_scans_scenario=scn.n_scans,
        detections=int(n_det),
        wall_s=float(per_scan.sum()),
        per_scan_ms_mean=float(1e3 * per_scan.mean()),
        per_scan_ms_p50=float(1e3 * np.median(per_scan)),
        per_scan_ms_max=float(1e3 * per_scan.max()),
        detections_per_s=float(n_det / per_scan.sum()),
        cpu_s=float(cpu.sum()),
        per_scan_cpu_ms_mean=float(1e3 * cpu.mean()),
        detections_per_cpu_s=float(n_det / cpu.sum()) if cpu.sum() > 0 else None,
        gospa_mean=float(g.mean()),
        gospa_localisation_mean=float(np.mean([x["localisation"] for x in gospas])),
        gospa_missed_mean=float(np.mean([x["missed"] for x in gospas])),
        gospa_false_mean=float(np.mean([x["false"] for x in gospas])),
        gospa_mean_last_half=float(g[len(g) // 2:].mean()),
        n_tracks_mean=float(np.mean(n_tracks)),
        n_tracks_final=int(n_tracks[-1]),
        n_track_ids=int(n_ids),
        per_scan_ms=[round(1e3 * x, 3) for x in per_scan],
        per_scan_cpu_ms=[round(1e3 * x, 3) for x in cpu],
        gospa_per_scan=[round(float(x), 2) for x in g],
        **extra,
    )


def _compare(runs: list[dict]) -> list[dict]:
    """Speed ratios of each siap variant vs each Stone Soup tracker, per (N, seed), over the
    scans both ran (JPDA may have run fewer)."""
    out = []
    by_key: dict = {}
    for r in runs:
        by_key.setdefault((r["n_targets"], r["seed"]), {})[r["tracker"]] = r
    for (n, seed), group in sorted(by_key.items()):
        for sname, s in group.items():
            if not sname.startswith("siap"):
                continue
            for name, r in group.items():
                if not name.startswith("stonesoup"):
                    continue
                k = min(r["n_scans_run"], s["n_scans_run"])
                t_ss = float(np.mean(r["per_scan_ms"][:k]))
                t_si = float(np.mean(s["per_scan_ms"][:k]))
                c_ss = float(np.mean(r["per_scan_cpu_ms"][:k]))
                c_si = float(np.mean(s["per_scan_cpu_ms"][:k]))
                out.append(dict(
                    n_targets=n, seed=seed, siap=sname, versus=name, scans_compared=k,
                    per_scan_ms_stonesoup=t_ss, per_scan_ms_siap=t_si,
                    speedup_siap_over_stonesoup=t_ss / t_si if t_si > 0 else None,
                    per_scan_cpu_ms_stonesoup=c_ss, per_scan_cpu_ms_siap=c_si,
                    cpu_speedup_siap_over_stonesoup=c_ss / c_si if c_si > 0 else None,
                    gospa_stonesoup=float(np.mean(r["gospa_per_scan"][:k])),
                    gospa_siap=float(np.mean(s["gospa_per_scan"][:k])),
                ))
    return out


def _aggregate(runs: list[dict]) -> list[dict]:
    """Mean over seeds per (tracker, N)."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["tracker"], r["n_targets"]), []).append(r)
    keys = ["per_scan_ms_mean", "per_scan_cpu_ms_mean", "detections_per_s",
            "detections_per_cpu_s", "gospa_mean", "gospa_localisation_mean",
            "gospa_missed_mean", "gospa_false_mean", "n_tracks_mean", "n_track_ids"]
    out = []
    for (name, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        row = dict(tracker=name, n_targets=n, seeds=[r["seed"] for r in rs],
                   n_scans_run=int(min(r["n_scans_run"] for r in rs)))
        for k in keys:
            row[k] = float(np.mean([r[k] for r in rs]))
        out.append(row)
    return out


def _print_table(summary: list[dict], ratios: list[dict]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        for row in summary:
            print(row)
        return
    t = Table(title="Tracker benchmark: siap vs Stone Soup (means over seeds)")
    for col in ("tracker", "N", "scans", "ms/scan", "cpu ms/scan", "det/s", "det/cpu-s", "GOSPA",
                "loc", "miss", "false", "tracks", "ids"):
        t.add_column(col, justify="right" if col != "tracker" else "left")
    for r in summary:
        t.add_row(r["tracker"], str(r["n_targets"]), str(r["n_scans_run"]),
                  f"{r['per_scan_ms_mean']:.2f}", f"{r['per_scan_cpu_ms_mean']:.2f}",
                  f"{r['detections_per_s']:.0f}", f"{r['detections_per_cpu_s']:.0f}",
                  f"{r['gospa_mean']:.0f}", f"{r['gospa_localisation_mean']:.0f}",
                  f"{r['gospa_missed_mean']:.0f}", f"{r['gospa_false_mean']:.0f}",
                  f"{r['n_tracks_mean']:.1f}", f"{r['n_track_ids']:.0f}")
    console = Console(width=max(Console().width, 160))
    console.print(t)
    if ratios:
        t2 = Table(title="siap speed-up over Stone Soup (per-scan time, same scans)")
        for col in ("N", "seed", "siap", "versus", "scans", "SS ms/scan", "siap ms/scan",
                    "speed-up", "cpu speed-up", "GOSPA SS", "GOSPA siap"):
            t2.add_column(col, justify="right")
        for r in ratios:
            t2.add_row(str(r["n_targets"]), str(r["seed"]), r["siap"], r["versus"],
                       str(r["scans_compared"]),
                       f"{r['per_scan_ms_stonesoup']:.2f}", f"{r['per_scan_ms_siap']:.2f}",
                       f"{r['speedup_siap_over_stonesoup']:.1f}x",
                       f"{r['cpu_speedup_siap_over_stonesoup']:.1f}x", f"{r['gospa_stonesoup']:.0f}",
                       f"{r['gospa_siap']:.0f}")
        console.print(t2)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 50, 200], help="target counts")
    ap.add_argument("--scans", type=int, default=100)
    ap.add_argument("--trackers", nargs="+", default=["stonesoup-gnn", "stonesoup-jpda", "siap", "siap-gnn", "siap-imm"])
    ap.add_argument("--jpda-max-scans", nargs="*", default=[],
                    help="N:scans caps for JPDA, e.g. 200:30 (JPDA at N >= 200 runs 30 scans); "
                         "none by default")
    ap.add_argument("--trajectories", type=Path, default=None,
                    help="real trajectories (traffic JSON/Parquet or OpenSky CSV) as truth instead of "
                         "synthetic CV targets; N is then the most targets taken")
    ap.add_argument("--quick", action="store_true", help="small version (tests): N 5 and 15, 15 scans")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.n, args.scans = [5, 15], 15
    caps = sorted((int(a), int(b)) for a, b in (str(c).split(":") for c in args.jpda_max_scans))

    def jpda_cap(n: int) -> int | None:
        cap = None
        for n_min, scans in caps:
            if n >= n_min:
                cap = scans
        return cap

    trackers = list(args.trackers)
    notes = []
    if not siap_available() and any(t.startswith("siap") for t in trackers):
        trackers = [t for t in trackers if not t.startswith("siap")]
        notes.append("siap.tracking not importable: siap not run")
    runs = []
    for n in args.n:
        for seed in args.seeds:
            if args.trajectories is not None:
                scn = sc.make_trajectory_scenario(args.trajectories, n, seed, n_scans=args.scans)
                if scn.n_targets < n:
                    notes.append(f"N={n} seed={seed}: only {scn.n_targets} flights stay in the area")
            else:
                scn = sc.make_cv_scenario(n, seed, n_scans=args.scans)
            for name in trackers:
                if name in SIAP_VARIANTS:
                    runs.append(run_siap(scn, variant=name))
                elif name.startswith("stonesoup-"):
                    kind = name.split("-", 1)[1]
                    cap = jpda_cap(n) if kind == "jpda" else None
                    if cap is not None and cap < scn.n_scans:
                        notes.append(f"stonesoup-jpda at N={n} ran the first {cap} of {scn.n_scans} scans")
                    runs.append(run_stonesoup(kind, scn, max_scans=cap))
                else:
                    raise SystemExit(f"--trackers: unknown tracker {name!r}")
    summary = _aggregate(runs)
    ratios = _compare(runs)
    result = dict(
        benchmark="tracker_vs_stonesoup",
        timestamp_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        command=" ".join(["python", "bench/bench_tracker_stonesoup.py", *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        scenario=dict(area_m=100_000.0, n_scans=args.scans, dt_s=1.0, speed_mps=[100, 250],
                      q_m2ps3=0.5, sigma_m=50.0, pd=0.9, clutter_per_scan=5.0,
                      origin_lat_lon_deg=[ORIGIN.lat_deg, ORIGIN.lon_deg], alt_m=ALT_M,
                      generator=("bench/scenarios_cv.py:make_trajectory_scenario" if args.trajectories
                                 else "bench/scenarios_cv.py:make_cv_scenario"),
                      trajectories=str(args.trajectories) if args.trajectories else None),
        gospa=dict(c_m=GOSPA_C_M, p=GOSPA_P, alpha=2, space="2D position",
                   function=GOSPA_FN_NAME, averaged="mean over scans"),
        timing=("tracker wall time per scan (perf_counter) and CPU time of the process "
                "(process_time; robust when the machine is shared), excluding data generation and input "
                "conversion; includes producing each scan's track set. siap output: tracks with "
                "status CONFIRMED or COASTING; Stone Soup: the tracker's track set"),
        tuning=dict(
            protocol=("each tracker's standard knobs were tried on seed 2 (N = 50, 200) and the "
                      "lowest mean GOSPA kept; report other seeds. Stone Soup tried: gate 3 / 3.5 / 4 sd, "
                      "min_points 2 / 3, deletion after 3-6 misses, prior velocity sd 100 / 150 / 200 m/s, "
                      "JPDA prob_gate 0.999 / 0.9999. siap tried: confirm_hits 2 / 3, IMM on / off "
                      "(both variants reported), management times matched to Stone Soup's, track-score "
                      "thresholds score_confirm 2.3 / 3 / 3.5 / 4.5 / 6, score_delete -2.3 / -3 / -4.7 and "
                      "score_delete_confirmed none / 0 / 1 / 2 / 3 / 4.5, then score_report_confirmed "
                      "none / 0 / 1 / 2 / 3 / 4.5 with score_delete_confirmed none "
                      "(clutter density, Pd and scan interval from the scenario, as JPDA gets them)."),
            stonesoup=STONESOUP_TUNING,
            siap=dict(SIAP_TUNING, cv_process_noise_m2ps3="truth q",
                      false_alarm_density_per_km2="scenario clutter density",
                      detection_probability="scenario Pd", score_revisit_s="scan interval"),
        ),
        notes=notes,
        summary=summary,
        speed_ratios=ratios,
        runs=runs,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if not args.no_table:
        _print_table(summary, ratios)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
