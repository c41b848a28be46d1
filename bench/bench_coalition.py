"""The value of the network on `pacific`: per partner, own sensors alone vs the coalition
picture (federated) vs centralised, with commonality; writes bench/results/coalition.json.

    python bench/bench_coalition.py [--scenario pacific] [--duration-s S] [--quick]
        [--policy FILE] [--fusion-method imf|ci|naive] [--out FILE]

``--policy bench/policies/pacific_share_all.yaml`` releases every plot to every partner, so the
federated and centralised pictures rest on the same data (the fusion alone is compared).
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="pacific")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--eval-step-s", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="10 simulated minutes")
    parser.add_argument("--out", type=Path, default=RESULTS / "coalition.json")
    parser.add_argument("--policy", default=None, help="policy file or built-in name")
    parser.add_argument(
        "--fusion-method", default=None, help="FusionConfig.method (default: the config's)"
    )
    args = parser.parse_args(argv)

    import numpy as np

    import siap
    from siap.pipeline import run_demo

    sc = siap.load_scenario(args.scenario)
    duration = args.duration_s or (600.0 if args.quick else None)
    if duration is not None:
        sc = sc.model_copy(update={"duration_s": float(duration)})
    t0 = time.perf_counter()
    from siap.sharing.policy import load_policy

    policy = load_policy(args.policy or sc.name)
    fusion_config = None
    if args.fusion_method is not None:
        from siap.fusion import FusionConfig

        fusion_config = FusionConfig(method=args.fusion_method, source_id_bits=32)
    result = run_demo(
        sc, None, mode="coalition", eval_step_s=args.eval_step_s, policy=policy,
        fusion_config=fusion_config,
    )
    wall = time.perf_counter() - t0
    summary = result.summary()
    plots_tracked = {
        "federated": int(len(result.simulation.plots)),
        "centralised": int(
            sum(np.count_nonzero(_released(result, p, policy)) for p in result.coalition.partners)
        ),
    }
    out = {
        "benchmark": "coalition",
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/bench_coalition.py " + " ".join(argv or []),
        "machine": machine_info(),
        "scenario": sc.name,
        "policy": policy.name,
        "fusion_method": (fusion_config or _default_fusion()).method,
        "duration_s": float(sc.duration_s),
        "seed": int(sc.seed),
        "eval_step_s": args.eval_step_s,
        "wall_s": round(wall, 2),
        "timings_s": summary["timings_s"],
        "plots": summary["plots"],
        "plots_tracked": plots_tracked,
        "truth_objects": summary["truth_objects"],
        "observable_truth_objects": summary["observable_truth_objects"],
        "partner_table": summary["partner_table"],
        "commonality": summary["commonality"],
        "messages": summary["messages"],
        "rejected": summary["rejected"],
        "source_groups": summary["source_groups"],
        "registration": summary.get("registration", {}),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=float))
    _print(out)
    return out


def _default_fusion():
    from siap.fusion import FusionConfig

    return FusionConfig()


def _released(result, partner, policy):
    from siap.coalition import label_plots
    from siap.sharing.release import release_mask

    return release_mask(label_plots(result.simulation.plots, policy), partner, policy)


def _cell(row: dict, key: str, scale: float = 1.0, fmt: str = ".3f") -> str:
    v = [row[k].get(key, float("nan")) for k in ("own", "coalition", "centralised")]
    return f"{v[0] / scale:{fmt}} -> {v[1] / scale:{fmt}} ({v[2] / scale:{fmt}})"


def _print(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"coalition on {out['scenario']} ({out['duration_s']:.0f} s): own -> coalition (centralised)")
    for col in ("partner", "completeness", "GOSPA mean (km)", "position acc. (m)", "ambiguity"):
        table.add_column(col, justify="right")
    for p, row in out["partner_table"].items():
        table.add_row(
            p,
            _cell(row, "siap_completeness"),
            _cell(row, "gospa_mean_m", 1000, ".1f"),
            _cell(row, "siap_position_accuracy_m", 1, ".0f"),
            _cell(row, "siap_ambiguity"),
        )
    console = Console()
    console.print(table)
    for pair, v in out["commonality"].items():
        console.print(f"commonality {pair}: {v['commonality']:.3f} ({v['common']} common pairs)")
    console.print(f"wall {out['wall_s']} s; stages {out['timings_s']}")


if __name__ == "__main__":
    main(sys.argv[1:])
