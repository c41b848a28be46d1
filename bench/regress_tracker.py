"""Regression harness for behaviour-preserving refactors of siap.tracking (not a test).

Runs the tracker on a few fixed scenarios and prints one SHA-256 per scenario over every
snapshot (all fields, bytes), the tracker's counters and its merge log. Run it before and
after a change: equal hashes mean bit-identical results.

    PYTHONPATH=src python bench/regress_tracker.py            # all scenarios
    PYTHONPATH=src python bench/regress_tracker.py --quick    # CV scenarios only

Scenarios: the Stone Soup side-by-side CV scenario (seed 1, 50 targets, 60 scans) with the
JPDA, GNN and IMM-JPDA variants, and the ``pacific`` built-in scenario (120 s, all plots, one
tracker, snapshot every 5 s).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _digest(h, tracker, snaps) -> str:
    for s in snaps:
        h.update(np.ascontiguousarray(s).tobytes())
    h.update(json.dumps(tracker.stats, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(tracker.merges).tobytes())
    return h.hexdigest()[:16]


def run_cv(variant: str) -> str:
    import bench_tracker_stonesoup as bs
    import scenarios_cv as sc

    from siap.tracking import Tracker

    scn = sc.make_cv_scenario(50, 1, n_scans=60)
    plots = sc.detections_to_plots(scn, bs.ORIGIN, alt_m=bs.ALT_M)
    edges = np.append(np.searchsorted(plots["time_s"], scn.times_s, side="left"), len(plots))
    trk = Tracker(bs.siap_config(scn, variant))
    snaps = []
    for k in range(scn.n_scans):
        trk.process(plots[edges[k]:edges[k + 1]])
        trk.advance(float(scn.times_s[k]))
        snaps.append(trk.snapshot(float(scn.times_s[k])))
    return _digest(hashlib.sha256(), trk, snaps)


def run_pacific(duration_s: float = 120.0) -> str:
    from siap.pipeline import tracker_config_for
    from siap.scenario import load_scenario
    from siap.simulation import simulate
    from siap.tracking import Tracker

    scn = load_scenario("pacific")
    scn = scn.model_copy(update={"duration_s": duration_s})
    sim = simulate(scn)
    plots = np.sort(sim.plots, order="time_s", kind="stable")
    trk = Tracker(tracker_config_for(scn))
    t0 = float(plots["time_s"].min())
    snaps = []
    for t in np.arange(t0 + 5.0, t0 + duration_s + 5.0, 5.0):
        trk.process(plots[(plots["time_s"] >= t - 5.0) & (plots["time_s"] < t)])
        trk.advance(float(t) - 2.0)  # leaves plots inside the reorder window pending
        snaps.append(trk.snapshot(float(t)))
    trk.flush()
    snaps.append(trk.snapshot(t0 + duration_s + 10.0))
    return _digest(hashlib.sha256(), trk, snaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out = {v: run_cv(v) for v in ("siap", "siap-gnn", "siap-imm")}
    if not args.quick:
        out["pacific-120s"] = run_pacific()
    for k, v in out.items():
        print(f"{k:14s} {v}")


if __name__ == "__main__":
    main()
