"""Hash every partner's coalition and own pictures of a ``run_coalition`` on a scenario: a
check that a speed-up of the fuser changed no result (not a benchmark, not a test).

    PYTHONPATH=src python bench/fusion_hash.py [--scenario pacific] [--duration-s 300]

Prints one SHA-256 per (partner, kind) and one over all; compare before and after a change.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

import siap
from siap.coalition import run_coalition
from siap.pipeline import evaluation_times
from siap.sharing.policy import load_policy


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="pacific")
    ap.add_argument("--duration-s", type=float, default=300.0)
    ap.add_argument("--step-s", type=float, default=1.0, help="seconds between partner updates")
    args = ap.parse_args(argv)
    sc = siap.load_scenario(args.scenario)
    sc = sc.model_copy(update={"duration_s": float(args.duration_s)})
    sim = siap.simulate(sc)
    times = evaluation_times(sim.truth, args.step_s)
    origin = (sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m)
    t0 = time.process_time()
    result = run_coalition(sim.plots, load_policy(sc.name), times, origin=origin, centralised=False)
    cpu = time.process_time() - t0
    total = hashlib.sha256()
    for kind, table in (("coalition", result.coalition), ("own", result.own)):
        for p in sorted(table):
            tracks = np.ascontiguousarray(table[p])
            h = hashlib.sha256(tracks.tobytes()).hexdigest()
            total.update(h.encode())
            print(f"{p} {kind:9s} {len(tracks):7d} rows  {h[:16]}")
    print(f"all {total.hexdigest()}  (run_coalition cpu {cpu:.1f} s)")
    return total.hexdigest()


if __name__ == "__main__":
    main()
