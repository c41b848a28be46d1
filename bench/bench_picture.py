"""The quality of the picture on a scenario of real trajectories (default `paris-real`): the
network picture (one tracker over every plot, with and without online registration) and, per
partner, own sensors alone vs the coalition picture vs centralised; with the tracker counters
that explain it (tracks started, re-seeded, merged). Writes bench/results/picture.json.

    python bench/bench_picture.py [--scenario paris-real] [--duration-s S] [--quick]
                                  [--no-coalition] [--out FILE]

Run it on two trees (``PYTHONPATH=<tree>/src``) to compare a change against its base: the
script uses only ``siap.pipeline.run_demo``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results"
METRICS = (
    "gospa_mean_m",
    "siap_completeness",
    "siap_ambiguity",
    "siap_spuriousness",
    "siap_position_accuracy_m",
    "siap_rate_of_track_number_changes_per_s",
)
STATS = (
    "tracks_initiated",
    "tracks_confirmed",
    "tracks_reseeded",
    "tracks_merged",
    "plots_own_address_outside_gate",
    "tracks_ended_outside_coverage",
    "late_applied",
    "late_dropped",
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="paris-real")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--eval-step-s", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="10 simulated minutes")
    parser.add_argument("--no-coalition", action="store_true", help="network picture only")
    parser.add_argument("--out", type=Path, default=RESULTS / "picture.json")
    args = parser.parse_args(argv)

    import siap
    from siap.pipeline import run_demo

    sc = siap.load_scenario(args.scenario)
    duration = args.duration_s or (600.0 if args.quick else None)
    if duration is not None:
        sc = sc.model_copy(update={"duration_s": float(duration)})
    out: dict = {
        "benchmark": "picture",
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/bench_picture.py " + " ".join(argv or []),
        "machine": machine_info(),
        "siap_source": str(Path(siap.__file__).resolve().parent),
        "scenario": sc.name,
        "duration_s": float(sc.duration_s),
        "seed": int(sc.seed),
        "network": {},
    }
    for reg in (False, True):
        name = "registration" if reg else "plain"
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_demo(sc, None, mode="single", eval_step_s=args.eval_step_s, registration=reg)
        s = res.evaluations["network"].summary()
        stats = res.tracker_stats["network"]
        out["network"][name] = {
            **{k: s.get(k) for k in METRICS},
            "stats": {k: stats[k] for k in STATS if k in stats},
            "track_s": res.timings_s.get("track"),
            "cpu_s": time.process_time() - c0,
            "wall_s": time.perf_counter() - t0,
        }
        out["plots"] = int(len(res.simulation.plots))
        out["observable_objects"] = res.observable_objects
    if not args.no_coalition:
        t0 = time.perf_counter()
        res = run_demo(sc, None, mode="coalition", eval_step_s=args.eval_step_s)
        out["coalition_wall_s"] = time.perf_counter() - t0
        out["partner_table"] = res.partner_table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=float))
    _print(out)
    return out


def _print(out: dict) -> None:
    print(
        f"{out['scenario']} ({out['duration_s']:.0f} s, {out['plots']} plots, "
        f"{out['observable_objects']} observable aircraft), siap from {out['siap_source']}"
    )
    print("network picture:")
    for name, row in out["network"].items():
        vals = ", ".join(f"{k}={row[k]:.4g}" for k in METRICS if row.get(k) is not None)
        print(f"  {name}: {vals}; track {row['track_s']:.1f} s; {row['stats']}")
    for p, row in out.get("partner_table", {}).items():
        for kind in ("own", "coalition", "centralised"):
            if kind in row:
                vals = ", ".join(f"{k}={row[kind][k]:.4g}" for k in METRICS if k in row[kind])
                print(f"  {p} {kind}: {vals}")


if __name__ == "__main__":
    main(sys.argv[1:])
