"""Late plots: what ADS-B latency (0.5-3 s) and radars with different delays do to the live
picture, with and without out-of-sequence updates. Writes bench/results/oosm.json.

The plots of a scenario (default ``paris-real``) get an arrival time: ADS-B reports their own
time plus a latency uniform in [0.5, 3] s, each radar a fixed delay (``RADAR_DELAYS_S``). A
tracker is fed in arrival order, half a second at a time, as a live feed would be, and the
picture a user holds at time ``t`` (the snapshot at ``t`` of what has arrived by ``t``) is
evaluated every 5 s against the observable truth (``siap.evaluation.evaluate``). Variants:

* ``in order``: no latency at all (reference);
* ``late, OOSM``: reorder window 0.5 s, later plots applied out of sequence (the default);
* ``late, dropped``: the same with ``out_of_sequence: false`` (what siap did before);
* ``late, wait 3.5 s``: reorder window 3.5 s, so nothing is late, but every snapshot is a
  prediction over the window.

    python bench/bench_oosm.py [--scenario paris-real] [--duration-s S] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results"
ADSB_LATENCY_S = (0.5, 3.0)
RADAR_DELAYS_S = (0.2, 0.8, 1.5)  # given to the radars in sensor-id order, cycling
FEED_STEP_S = 0.5
EVAL_STEP_S = 5.0
METRICS = (
    "gospa_mean_m",
    "siap_completeness",
    "siap_ambiguity",
    "siap_spuriousness",
    "siap_position_accuracy_m",
    "siap_velocity_accuracy_mps",
)


def arrival_times(plots: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Arrival time of each plot: ADS-B latency uniform in ADSB_LATENCY_S, radars a fixed
    delay each."""
    from siap.records import MeasurementKind

    arr = plots["time_s"].copy()
    adsb = plots["kind"] == int(MeasurementKind.ADSB)
    arr[adsb] += rng.uniform(*ADSB_LATENCY_S, int(adsb.sum()))
    delays = {}
    radars = sorted(set(plots["sensor_id"][~adsb].tolist()))
    for k, sid in enumerate(radars):
        d = RADAR_DELAYS_S[k % len(RADAR_DELAYS_S)]
        delays[sid] = d
        arr[plots["sensor_id"] == sid] += d
    return arr, delays


def run_variant(plots, arrival, cfg, eval_times):
    """Feed ``plots`` in arrival order, FEED_STEP_S at a time; snapshot at each eval time."""
    from siap.tracking import Tracker

    order = np.argsort(arrival, kind="stable")
    plots, arrival = plots[order], arrival[order]
    trk = Tracker(cfg)
    snaps = []
    c0 = time.process_time()
    start = 0
    ev = iter(eval_times.tolist())
    t_next = next(ev, None)
    for t in np.arange(arrival[0] + FEED_STEP_S, arrival[-1] + FEED_STEP_S, FEED_STEP_S):
        stop = int(np.searchsorted(arrival, t, side="right"))
        if stop > start:
            trk.process(plots[start:stop])
            start = stop
        while t_next is not None and t_next <= t:
            snaps.append(trk.snapshot(t_next))
            t_next = next(ev, None)
    cpu = time.process_time() - c0
    return np.concatenate(snaps), dict(trk.stats), cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="paris-real")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1, help="latency draws")
    parser.add_argument("--quick", action="store_true", help="5 simulated minutes")
    parser.add_argument("--out", type=Path, default=RESULTS / "oosm.json")
    args = parser.parse_args(argv)

    import siap
    from siap.evaluation import evaluate
    from siap.pipeline import evaluation_times, observable_truth, tracker_config_for
    from siap.simulation import simulate

    sc = siap.load_scenario(args.scenario)
    duration = args.duration_s or (300.0 if args.quick else None)
    if duration is not None:
        sc = sc.model_copy(update={"duration_s": float(duration)})
    sim = simulate(sc)
    plots, truth = sim.plots, sim.truth
    times = evaluation_times(truth, EVAL_STEP_S)
    times = times[times >= times[0] + 30.0]  # after the first tracks are up
    truth_eval = observable_truth(truth[np.isin(truth["time_s"], times)], plots)
    arrival, delays = arrival_times(plots, np.random.default_rng(args.seed))
    base = tracker_config_for(sc)
    variants = {
        "in order": (plots["time_s"], dict(reorder_window_s=0.5)),
        "late, OOSM": (arrival, dict(reorder_window_s=0.5)),
        "late, dropped": (arrival, dict(reorder_window_s=0.5, out_of_sequence=False)),
        "late, wait 3.5 s": (arrival, dict(reorder_window_s=3.5)),
    }
    out: dict = {
        "benchmark": "oosm",
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/bench_oosm.py " + " ".join(argv or []),
        "machine": machine_info(),
        "scenario": sc.name,
        "duration_s": float(sc.duration_s),
        "plots": int(len(plots)),
        "adsb_latency_s": ADSB_LATENCY_S,
        "radar_delays_s": delays,
        "variants": {},
    }
    for name, (arr, extra) in variants.items():
        cfg = base.model_copy(update=extra)
        tracks, stats, cpu = run_variant(plots, arr, cfg, times)
        s = evaluate(truth_eval, tracks, times="truth").summary()
        out["variants"][name] = {
            **{k: s.get(k) for k in METRICS},
            "late_applied": stats.get("late_applied", 0),
            "late_dropped": stats["late_dropped"],
            "cpu_s": cpu,
        }
        print(f"{name:>18}: " + ", ".join(f"{k}={out['variants'][name][k]:.4g}"
                                            for k in (*METRICS, "late_applied", "late_dropped", "cpu_s")))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=float))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
