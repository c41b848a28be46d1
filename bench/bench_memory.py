"""Benchmark: peak memory of a recording run, pictures held vs pictures written as made.

``siap record`` used to hold every partner's pictures of the whole run (the coalition's
``PictureRecorder``) and write them at the end; it now hands each picture to the recording's
Parquet writer (:class:`siap.formats.recording.Recorder`, a runtime sink) as it is made. Both
ways, side by side in one run, each in a fresh process over the same simulated scenario
(``tests/data/coalition_small.yaml`` stretched to ``--duration-s``, pictures every
``--step-s``): the tracemalloc peak of the coalition run and the writing (the simulation is
done before tracing starts), and the process's peak RSS (``resource.getrusage``).

Run: ``python bench/bench_memory.py [--quick]``. Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "memory.json"
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, resource, sys, time, tracemalloc
from siap.coalition import run_coalition
from siap.formats.recording import Recorder
from siap.picture import Picture
from siap.pipeline import evaluation_times, tracker_config_for
from siap.scenario import load_scenario
from siap.sharing.policy import load_policy
from siap.simulation import simulate
way, duration_s, step_s, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sc = load_scenario(sys.argv[5]).model_copy(update={"duration_s": duration_s})
pol = load_policy(sys.argv[6])
sim = simulate(sc)
times = evaluation_times(sim.truth, step_s)
kw = dict(origin=(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m), sensor_ids=[s.id for s in sim.sensors],
          tracker_config=tracker_config_for(sc), centralised=False)
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
rec = Recorder(out)
if way == "held":
    res = run_coalition(sim.plots, pol, times, **kw)
    for t in res.times:
        for kind, pics in (("coalition", res.coalition), ("own", res.own)):
            for p, tr in pics.items():
                rec.on_picture(Picture(p, float(t), tr[tr["time_s"] == t], kind))
else:
    res = run_coalition(sim.plots, pol, times, sinks=(rec,), keep_pictures=False, **kw)
m = rec.close()
_, peak = tracemalloc.get_traced_memory()
print(json.dumps({"way": way, "tracemalloc_peak_mb": peak / 2**20,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
                  "pictures": m["pictures"], "track_rows": m["rows"].get("tracks", 0), "plots": int(len(sim.plots))}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (CI-sized)")
    ap.add_argument("--duration-s", type=float, default=None)
    ap.add_argument("--step-s", type=float, default=1.0)
    args = ap.parse_args()
    duration = args.duration_s or (300.0 if args.quick else 1800.0)
    data = ROOT / "tests" / "data"
    rows = []
    for way in ("held", "streamed"):
        with tempfile.TemporaryDirectory() as d:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, way, str(duration), str(args.step_s), d,
                 str(data / "coalition_small.yaml"), str(data / "coalition_small_policy.yaml")],
                capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
            )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    held, streamed = rows
    from machine import machine_info

    result = {
        "bench": "memory", "quick": args.quick, "duration_s": duration, "step_s": args.step_s,
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info(),
        "runs": rows,
        "tracemalloc_peak_ratio_held_over_streamed": held["tracemalloc_peak_mb"] / streamed["tracemalloc_peak_mb"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['way']:9s} tracemalloc peak {r['tracemalloc_peak_mb']:8.1f} MB  max RSS {r['max_rss_mb']:8.1f} MB  "
              f"cpu {r['cpu_s']:6.1f} s  {r['pictures']} pictures, {r['track_rows']} track rows")
    print(f"peak ratio held/streamed: {result['tracemalloc_peak_ratio_held_over_streamed']:.2f} -> {RESULTS}")


if __name__ == "__main__":
    main()
