"""The live runtime at scale: tracking + fusion + release for a three-partner coalition over a
20-radar network with many targets, in real time, and the CPU it uses.

Scenario: the scale benchmark's radar network (``scenarios_cv.siap_radar_network_scenario``:
20 primary 3D radars, 20 false alarms per scan each, non-cooperative aircraft) shared by three
partners: radars R00, R03, ... belong to JPN, R01, R04, ... to USA, R02, R05, ... to AUS; R00
and R03 are releasable to JPN and USA only, every other radar to all three. Each partner node
runs on the runtime with a 1 s update period: its source-group trackers, release + Ed25519
signing to the two others over the in-process bus, verification, and its two fusers
(coalition and own picture).

Two runs over the same plots, side by side:

* **real time**: a ``ReplayClock`` at x1 (``--speed``), for the scenario's duration; reported:
  process CPU (``time.process_time``) against wall time = cores used, the loop thread's CPU per
  stage (release, track, publish = release + sign + publish, fuse = verify + fuse, sinks), and
  how far the loop fell behind the clock (``max_lag_s``; 0 means it kept up);
* **virtual**: the same work as fast as possible; wall time = CPU needed per simulated second.

Target (issue 9): under half a core for tracking + fusion + release at 10,000 targets.
A warm-up run on the first seconds compiles the tracker's kernels before measuring.

Run: ``python bench/bench_runtime.py [--targets 10000] [--duration 120] [--quick]``
(``--quick``: 1,000 targets, 60 s). Writes ``bench/results/runtime.json`` (``--out``).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

DEFAULT_OUT = HERE / "results" / "runtime.json"
PARTNERS = ("JPN", "USA", "AUS")
ALL = "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"
TWO = "SIAP//CONFIDENTIAL//REL TO JPN, USA"


def coalition_policy(sensor_ids: list[str]):
    """Radars dealt round-robin to JPN, USA, AUS; R00 and R03 releasable to JPN and USA only."""
    from siap.sharing.policy import Policy

    partners = {p: {"clearance": "SECRET", "track_label": ALL, "sensors": {}} for p in PARTNERS}
    for i, sid in enumerate(sorted(sensor_ids)):
        label = TWO if sid in ("R00", "R03") else ALL
        partners[PARTNERS[i % 3]]["sensors"][sid] = {"label": label, "share_plots": True}
    return Policy.from_mapping({"policy": "bench-runtime", "label_policy": "SIAP", "partners": partners})


class PictureSizes:
    """A sink that only counts (the cheapest sink: what the loop costs without a consumer)."""

    def __init__(self) -> None:
        self.tracks: dict[str, list[int]] = {}

    def on_picture(self, picture) -> None:
        if picture.kind == "coalition":
            self.tracks.setdefault(picture.partner, []).append(len(picture))


def _runtime(scenario, sim, policy, clock, period_s: float, end_s: float):
    from siap.pipeline import tracker_config_for
    from siap.runtime import Runtime, SimulatorSource

    return Runtime(policy, [SimulatorSource(sim)], sensor_ids=[s.id for s in sim.sensors],
                   tracker_config=tracker_config_for(scenario), clock=clock, update_period_s=period_s,
                   start_s=scenario.start_time_s, end_s=end_s, own_pictures=False)


def run(n_targets: int, duration_s: float, seed: int, speed: float, period_s: float) -> dict:
    import scenarios_cv as sc

    from siap.runtime import ReplayClock, VirtualClock

    t0 = time.perf_counter()
    scenario, sim = sc.siap_radar_network_scenario(n_targets, seed, duration_s=duration_s)
    sim_s = time.perf_counter() - t0
    policy = coalition_policy([s.id for s in sim.sensors])
    start, end = scenario.start_time_s, scenario.end_time_s

    _runtime(scenario, sim, policy, VirtualClock(), period_s, start + 5.0).run()  # compile kernels

    out = {}
    for mode in ("virtual", "realtime"):
        clock = VirtualClock() if mode == "virtual" else ReplayClock(speed=speed)
        rt = _runtime(scenario, sim, policy, clock, period_s, end)
        sizes = rt.add_sink(PictureSizes())
        w0, c0 = time.perf_counter(), time.process_time()
        res = rt.run()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        stages = {k: round(v, 3) for k, v in res.cpu_s.items()}
        work = res.cpu_s["track"] + res.cpu_s["publish"] + res.cpu_s["fuse"]
        out[mode] = dict(
            wall_s=round(wall, 3),
            process_cpu_s=round(cpu, 3),
            cores_used=round(cpu / wall, 4),
            loop_cpu_s_by_stage=stages,
            track_fuse_release_cores=round(work / wall, 4),
            track_fuse_release_cpu_per_sim_s=round(work / duration_s, 4),
            max_lag_s=round(res.max_lag_s, 3),
            updates=res.updates,
            plots_released=res.plots.get("released", 0),
            messages=res.messages,
            rejected=res.rejected,
            mean_coalition_tracks={p: round(float(np.mean(v)), 1) for p, v in sizes.tracks.items()},
            realtime_factor=round(duration_s / wall, 2),
        )
        print(f"{mode:9s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  cores {cpu / wall:5.2f}  "
              f"track+fuse+release {work / wall:5.2f} cores  lag {res.max_lag_s:.2f} s  "
              f"stages {stages}", flush=True)
    return dict(n_targets=n_targets, duration_s=duration_s, seed=seed, speed=speed,
                update_period_s=period_s, n_plots=int(len(sim.plots)), n_sensors=len(sim.sensors),
                simulate_s=round(sim_s, 2), **out)


def main(argv: list[str] | None = None) -> dict:
    from machine import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=120.0, help="simulated (and real-time) seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed of the real-time run")
    ap.add_argument("--period", type=float, default=1.0, help="partner update period, s")
    ap.add_argument("--quick", action="store_true", help="1,000 targets, 60 s")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.targets, args.duration = 1000, 60.0
    result = dict(
        benchmark="runtime",
        timestamp_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        command=" ".join(["python", "bench/bench_runtime.py", *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        target="under 0.5 core for tracking + fusion + release at 10,000 targets, real time",
        run=run(args.targets, args.duration, args.seed, args.speed, args.period),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
