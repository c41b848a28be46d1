"""`make bench`: run every benchmark in bench/ and write their JSON to bench/results/.

Each benchmark module exposes `main(...) -> dict` and writes its own results file; this runner
calls them in turn and prints where the results went.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    "bench_metrics", "bench_tracker_stonesoup", "bench_tracker_scale", "bench_accuracy", "bench_coalition",
    "bench_runtime", "bench_formats_asterix", "bench_formats_modes", "bench_service",
]
# Arguments per benchmark (default: none). The Stone Soup comparison reports seeds 1 and 3-9
# (eight scenarios per N; seed 2 is the one both trackers were tuned on).
ARGS = {"bench_tracker_stonesoup": ["--seeds", "1", "3", "4", "5", "6", "7", "8", "9"]}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(module)
    return module


def main() -> int:
    failed = []
    for name in BENCHES:
        if not (HERE / f"{name}.py").exists():
            print(f"[skip] {name}: not present")
            continue
        print(f"=== {name}")
        t0 = time.perf_counter()
        try:
            module = _load(name)
            module.main(ARGS.get(name, [])) if _takes_argv(module) else module.main()
        except Exception as exc:  # report and carry on with the other benchmarks
            print(f"[fail] {name}: {type(exc).__name__}: {exc}")
            failed.append(name)
            continue
        print(f"=== {name} done in {time.perf_counter() - t0:.1f} s")
    print(f"results in {HERE / 'results'}")
    _load("summarise").main()  # docs/performance.md from the results
    return 1 if failed else 0


def _takes_argv(module) -> bool:
    import inspect

    params = inspect.signature(module.main).parameters
    return "argv" in params


if __name__ == "__main__":
    sys.exit(main())
