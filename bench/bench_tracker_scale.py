"""Scale benchmark of the siap tracker: 1,000 and 10,000 simultaneous targets, 20 radars.

Scenario: 20 rotating primary 3D ground radars (no SSR: no identity evidence) on a jittered
5 x 4 grid 230 km apart, rotation periods 4-12 s, instrumented range 200-280 km, range sigma
30-80 m, azimuth sigma 0.1-0.2 deg, elevation sigma 0.3-0.6 deg, 20 false alarms per scan per
radar; most targets are seen by 2-4 radars (the realised histogram of radars per target is
written out). By default the plots come from ``siap.simulation.simulate`` of the scenario
built by ``scenarios_cv.siap_radar_network_scenario`` (non-cooperative aircraft of a
``traffic`` population, Pd from the radar equation with 0.9 at 85 % of the instrumented
range); ``--generator builtin`` uses the self-contained ``make_radar_network_scenario``
(constant Pd 0.85-0.95, straight flights). Plots are ``RADAR_3D`` records time-stamped as the
beam passes the target, sorted by time.

Measurement: the plots are fed to ``siap.tracking.Tracker.process`` in time batches of
``--batch-s`` (1 s) of plots, each followed by ``advance`` to the batch end (the input is
time-sorted, so nothing waits for the reorder window) and a ``snapshot`` at the batch end
(a 1 Hz picture update, as a live system would produce). Reported per scale: plots/s
sustained (plots / tracker wall time), per-batch latency p50/p99/max, memory (process peak
``ru_maxrss`` after data generation and after tracking; resident memory just before tracking
and the peak during tracking, the kernel's peak mark being reset in between and read right
after the tracker's flush, before the evaluation; reported only when the reset is seen to
work, i.e. the peak reads the resident size right after it), how the time grows from 1k to
10k targets (time-per-plot ratio and the exponent of total time against target count), and
the picture (with the default generator): the snapshots every 5 s evaluated against the
observable truth (``siap.evaluation.evaluate``: GOSPA, SIAP completeness, ambiguity,
spuriousness, position accuracy), outside the timed part.

One core: OMP/OpenBLAS/MKL threads are set to 1 in the environment before NumPy is imported,
and each scale runs in its own fresh subprocess (so its peak memory is its own).

Run: ``python bench/bench_tracker_scale.py [--targets 1000 10000] [--duration 150] [--quick]``.
Writes ``bench/results/tracker_scale.json`` (``--out`` to change).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

DEFAULT_OUT = HERE / "results" / "tracker_scale.json"
EVAL_STEP_S = 5.0
PICTURE_METRICS = ("gospa_mean_m", "siap_completeness", "siap_ambiguity", "siap_spuriousness",
                   "siap_position_accuracy_m")


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _proc_status_mib() -> dict:
    """VmRSS (current) and VmHWM (peak since start or since the last reset), MiB; {} if absent."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_scale(n_targets: int, seed: int, duration_s: float, batch_s: float,
              snapshot: bool = True, generator: str = "siap") -> dict:
    """Generate the scenario, run the tracker over it in batches, return the measurements."""
    import scenarios_cv as sc

    from siap.records import TRACK_DTYPE, TrackStatus
    from siap.tracking import Tracker, TrackerConfig

    t_gen = time.perf_counter()
    if generator == "siap":
        scenario, sim = sc.siap_radar_network_scenario(n_targets, seed, duration_s=duration_s)
        plots = sim.plots
        origin = (scenario.origin.lat_deg, scenario.origin.lon_deg)
        t0 = scenario.start_time_s
        radars = [dict(id=s.id, period_s=round(s.scan_period_s, 2), max_range_km=round(s.max_range_km, 1))
                  for s in scenario.sensors]
    elif generator == "builtin":
        scn = sc.make_radar_network_scenario(n_targets, seed, duration_s=duration_s)
        plots = scn.plots
        origin = (scn.origin.lat_deg, scn.origin.lon_deg)
        t0 = sc.EPOCH_S
        radars = [dict(id=s.sensor_id, period_s=round(s.period_s, 2),
                       max_range_km=round(s.max_range_m / 1e3, 1)) for s in scn.sites]
    else:
        raise ValueError(f"unknown generator {generator!r}")
    gen_s = time.perf_counter() - t_gen
    rss_after_gen = _maxrss_mib()
    # Realised overlap: how many radars detected each target at least once during the run.
    det = plots[plots["truth_id"] >= 0]
    pairs = np.unique(np.stack([det["truth_id"], np.unique(det["sensor_id"], return_inverse=True)[1]
                                .reshape(-1)], axis=1), axis=0) if len(det) else np.zeros((0, 2), int)
    per_target = np.unique(pairs[:, 0], return_counts=True)[1] if len(pairs) else np.zeros(0, int)
    n_radars_per_target = np.concatenate([per_target, np.zeros(max(n_targets - len(per_target), 0), int)])
    vals, counts = np.unique(n_radars_per_target, return_counts=True)
    coverage = {int(v): round(float(c / n_targets), 4) for v, c in zip(vals, counts, strict=True)}

    cfg = TrackerConfig(origin_lat_deg=origin[0], origin_lon_deg=origin[1], origin_alt_m=0.0)
    truth_eval = None
    if generator == "siap":
        # the picture is judged every EVAL_STEP_S against the observable truth (as the demo)
        from siap.pipeline import evaluation_times, observable_truth

        eval_times = evaluation_times(sim.truth, EVAL_STEP_S)
        truth_eval = observable_truth(sim.truth[np.isin(sim.truth["time_s"], eval_times)], plots)
        del sim  # keep only the plots and the truth at the evaluation times
    else:
        del scn
    gc.collect()
    rss_before_tracking = _proc_status_mib().get("VmRSS")
    peak_reset = _reset_peak_rss()
    # the reset is only trusted if the peak mark now reads the current resident size
    status = _proc_status_mib()
    peak_reset = peak_reset and abs(status.get("VmHWM", np.inf) - status.get("VmRSS", 0.0)) < 2.0
    eval_snaps = []
    EVAL_DTYPE = np.dtype([(f, TRACK_DTYPE[f]) for f in  # noqa: N806
                           ("time_s", "track_id", "status", "pos_ecef_m", "vel_ecef_mps")])
    eval_set = set(np.round(truth_eval["time_s"], 3).tolist()) if truth_eval is not None else set()
    trk = Tracker(cfg)
    n_batches = int(np.ceil(duration_s / batch_s))
    edges = np.searchsorted(plots["time_s"], t0 + batch_s * np.arange(n_batches + 1), side="left")
    edges[-1] = len(plots)
    lat = np.empty(n_batches)
    cpu = np.empty(n_batches)
    sizes = np.diff(edges)
    n_tracks_last = 0
    for b in range(n_batches):
        batch = plots[edges[b]:edges[b + 1]]
        t = time.perf_counter()
        c = time.process_time()
        trk.process(batch)
        # The plots are time-sorted: process up to the batch end now (no reorder wait).
        trk.advance(t0 + batch_s * (b + 1))
        if snapshot:
            snap = trk.snapshot(t0 + batch_s * (b + 1))
        lat[b] = time.perf_counter() - t
        cpu[b] = time.process_time() - c
        if snapshot and round(t0 + batch_s * (b + 1), 3) in eval_set:
            # only the fields the evaluation reads (64 bytes a track, not the whole record)
            keep = np.empty(len(snap), EVAL_DTYPE)
            for f in EVAL_DTYPE.names:
                keep[f] = snap[f]
            eval_snaps.append(keep)
        if snapshot and b == n_batches - 1:
            n_tracks_last = int(np.isin(snap["status"], (int(TrackStatus.CONFIRMED),
                                                         int(TrackStatus.COASTING))).sum())
    t = time.perf_counter()
    trk.flush()
    flush_s = time.perf_counter() - t
    peak_tracking = _proc_status_mib().get("VmHWM") if peak_reset else None
    picture = None
    if eval_snaps:
        from siap.evaluation import evaluate

        s = evaluate(truth_eval, np.concatenate(eval_snaps), times="truth").summary()
        picture = {k: s.get(k) for k in PICTURE_METRICS}
    wall = float(lat.sum())
    # Targets that the radars actually saw at least 3 times (the tracker can confirm them).
    tid = plots["truth_id"][plots["truth_id"] >= 0]
    seen3 = int((np.unique(tid, return_counts=True)[1] >= 3).sum()) if tid.size else 0
    try:
        stats = json.loads(json.dumps(trk.stats, default=str))
    except Exception:
        stats = repr(getattr(trk, "stats", None))
    # Skip the first batches (track start-up) for the steady-state rate.
    warm = min(n_batches // 3, int(30 / batch_s))
    steady = float(sizes[warm:].sum() / lat[warm:].sum()) if lat[warm:].sum() > 0 else None
    return dict(
        n_targets=n_targets,
        seed=seed,
        duration_s=duration_s,
        batch_s=batch_s,
        n_plots=int(len(plots)),
        n_false_alarm_plots=int((plots["truth_id"] < 0).sum()),
        plots_per_sim_s=float(len(plots) / duration_s),
        generator=generator,
        radars_detecting_target_hist=coverage,
        radars=radars,
        generation_s=gen_s,
        tracker_wall_s=wall,
        flush_s=flush_s,
        plots_per_s=float(len(plots) / wall),
        tracker_cpu_s=float(cpu.sum()),
        plots_per_cpu_s=float(len(plots) / cpu.sum()),
        batch_cpu_ms_p50=float(1e3 * np.percentile(cpu, 50)),
        batch_cpu_ms_p99=float(1e3 * np.percentile(cpu, 99)),
        plots_per_s_steady=steady,
        steady_from_batch=warm,
        realtime_factor=float(duration_s / wall),
        batch_latency_ms_p50=float(1e3 * np.percentile(lat, 50)),
        batch_latency_ms_p99=float(1e3 * np.percentile(lat, 99)),
        batch_latency_ms_max=float(1e3 * lat.max()),
        batch_plots_mean=float(sizes.mean()),
        maxrss_mib_after_generation=rss_after_gen,
        maxrss_mib_after_tracking=_maxrss_mib(),
        rss_mib_before_tracking=rss_before_tracking,
        peak_rss_mib_during_tracking=peak_tracking,
        tracker_peak_rss_increase_mib=(peak_tracking - rss_before_tracking
                                       if peak_tracking is not None and rss_before_tracking else None),
        picture=picture,
        targets_seen_3_times=seen3,
        tracks_confirmed_or_coasting_at_end=n_tracks_last,
        tracker_stats=stats,
        snapshot_each_batch=snapshot,
    )


def _worker(args) -> None:
    res = run_scale(args.worker, args.seed, args.duration, args.batch_s, not args.no_snapshot,
                    args.generator)
    print("RESULT " + json.dumps(res))


def _run_subprocess(n: int, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n), "--seed",
           str(args.seed), "--duration", str(args.duration), "--batch-s", str(args.batch_s),
           "--generator", args.generator]
    if args.no_snapshot:
        cmd.append("--no-snapshot")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"scale worker for {n} targets failed (rc {proc.returncode}): "
                       f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no output'}")


def _growth(runs: list[dict]) -> dict | None:
    if len(runs) < 2:
        return None
    a, b = runs[0], runs[-1]
    ratio_n = b["n_targets"] / a["n_targets"]
    ratio_t = b["tracker_wall_s"] / a["tracker_wall_s"]
    return dict(
        from_targets=a["n_targets"], to_targets=b["n_targets"],
        plots_ratio=b["n_plots"] / a["n_plots"],
        wall_time_ratio=ratio_t,
        cpu_time_ratio=b["tracker_cpu_s"] / a["tracker_cpu_s"],
        time_per_plot_ratio=(b["tracker_wall_s"] / b["n_plots"]) / (a["tracker_wall_s"] / a["n_plots"]),
        exponent_time_vs_targets=float(np.log(ratio_t) / np.log(ratio_n)),
        p99_latency_ratio=b["batch_latency_ms_p99"] / a["batch_latency_ms_p99"],
    )


def _print_table(runs: list[dict], growth: dict | None) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        print(runs, growth)
        return
    t = Table(title="siap tracker at scale (one core, 20 radars)")
    for col in ("targets", "plots", "sim s", "wall s", "cpu s", "plots/s", "plots/cpu-s",
                "steady plots/s", "x realtime",
                "p50 ms", "p99 ms", "max ms", "peak RSS MiB", "tracker +MiB", "tracks", "seen>=3"):
        t.add_column(col, justify="right")
    for r in runs:
        t.add_row(str(r["n_targets"]), str(r["n_plots"]), f"{r['duration_s']:.0f}",
                  f"{r['tracker_wall_s']:.1f}", f"{r['tracker_cpu_s']:.1f}", f"{r['plots_per_s']:.0f}",
                  f"{r['plots_per_cpu_s']:.0f}",
                  f"{r['plots_per_s_steady']:.0f}" if r["plots_per_s_steady"] else "-",
                  f"{r['realtime_factor']:.1f}", f"{r['batch_latency_ms_p50']:.1f}",
                  f"{r['batch_latency_ms_p99']:.1f}", f"{r['batch_latency_ms_max']:.1f}",
                  f"{r['peak_rss_mib_during_tracking'] or r['maxrss_mib_after_tracking']:.0f}",
                  f"{r['tracker_peak_rss_increase_mib']:.0f}" if r["tracker_peak_rss_increase_mib"] is not None else "-",
                  str(r["tracks_confirmed_or_coasting_at_end"]), str(r["targets_seen_3_times"]))
    console = Console(width=max(Console().width, 170))
    console.print(t)
    for r in runs:
        if r.get("picture"):
            console.print(f"picture at {r['n_targets']} targets (every {EVAL_STEP_S:.0f} s vs observable "
                          "truth): " + ", ".join(f"{k}={v:.4g}" for k, v in r["picture"].items()))
    if growth:
        console.print(f"growth {growth['from_targets']} -> {growth['to_targets']} targets: "
                      f"wall x{growth['wall_time_ratio']:.1f}, per plot x{growth['time_per_plot_ratio']:.2f}, "
                      f"time ~ N^{growth['exponent_time_vs_targets']:.2f}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--duration", type=float, default=150.0, help="simulated seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch-s", type=float, default=1.0)
    ap.add_argument("--no-snapshot", action="store_true", help="skip the per-batch snapshot")
    ap.add_argument("--generator", choices=["siap", "builtin"], default=None,
                    help="siap: siap.simulation (default when importable); builtin: "
                         "scenarios_cv.make_radar_network_scenario")
    ap.add_argument("--in-process", action="store_true", help="no subprocess per scale")
    ap.add_argument("--quick", action="store_true", help="small version: 100 and 300 targets, 30 s")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv if argv is not None else sys.argv[1:])
    if args.worker is not None:
        _worker(args)
        return {}
    if args.generator is None:
        try:
            import siap.simulation  # noqa: F401

            args.generator = "siap"
        except Exception:
            args.generator = "builtin"
    if args.quick:
        args.targets, args.duration = [100, 300], 30.0
    from machine import machine_info

    runs = []
    for n in args.targets:
        if args.in_process:
            runs.append(run_scale(n, args.seed, args.duration, args.batch_s, not args.no_snapshot,
                                  args.generator))
        else:
            runs.append(_run_subprocess(n, args))
    growth = _growth(runs)
    result = dict(
        benchmark="tracker_scale",
        timestamp_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        command=" ".join(["python", "bench/bench_tracker_scale.py",
                          *(argv if argv is not None else sys.argv[1:])]),
        machine=dict(machine_info(), threads="OMP/OPENBLAS/MKL_NUM_THREADS=1",
                     isolation="subprocess per scale" if not args.in_process else "in-process"),
        generator=("siap.simulation.simulate of scenarios_cv.siap_radar_network_scenario"
                   if args.generator == "siap" else "bench/scenarios_cv.py:make_radar_network_scenario"),
        measurement=("Tracker.process per batch of --batch-s of time-sorted plots, then "
                     "advance(batch end) and snapshot(batch end); latency = all three; plots/s = plots / sum of "
                     "latencies; steady = from the batch after 30 s (start-up excluded); memory: "
                     "ru_maxrss, and VmRSS before / VmHWM during tracking (peak reset via "
                     "/proc/self/clear_refs)"),
        runs=runs,
        growth=growth,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if not args.no_table:
        _print_table(runs, growth)
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
