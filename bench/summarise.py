"""Write docs/performance.md from the JSON in bench/results/ (the last step of `make bench`).

Every number in the document comes from a results file; the document names the command,
the machine and the date each file records, so a reader can reproduce or dispute it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(v, fmt=".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, fmt)
    return str(v)


def _machine(d: dict) -> str:
    m = d.get("machine", {})
    cpu = m.get("cpu_model") or m.get("cpu") or m.get("processor") or "?"
    count = m.get("cpu_count") or m.get("cpus") or "?"
    plat = m.get("platform", "?")
    return f"{cpu}, {count} cores, {plat}"


def _when(d: dict) -> str:
    for key in ("timestamp_utc", "timestamp", "date_utc", "when_utc", "when"):
        if d.get(key):
            return d[key]
    return "?"


def _header(d: dict) -> list[str]:
    return [
        f"- command: `{d.get('command') or 'python bench/bench_' + d.get('benchmark', '?') + '.py' + (' --quick' if d.get('quick') else '')}`",
        f"- machine: {_machine(d)}",
        f"- date (UTC): {_when(d)}",
        "",
    ]


def section_tracker(d: dict) -> list[str]:
    out = ["## 1. Tracker side by side with Stone Soup (same inputs, one run)", ""]
    out += _header(d)
    s = d["scenario"]
    out += [
        f"Scenario: {s['area_m'] / 1000:.0f} km x {s['area_m'] / 1000:.0f} km, {s['n_scans']} scans of "
        f"{s['dt_s']:g} s, constant-velocity targets at {s['speed_mps'][0]}-{s['speed_mps'][1]} m/s, position "
        f"noise {s['sigma_m']:g} m, Pd {s['pd']:g}, Poisson clutter {s['clutter_per_scan']:g} per scan "
        f"({s['generator']}). GOSPA c = {d['gospa']['c_m']:g} m, p = {d['gospa']['p']:g}, alpha = 2, "
        "2D, mean over scans, computed by the same function for every tracker. Seeds: "
        f"{sorted({sd for r in d['summary'] for sd in r['seeds']})}. Tuning protocol and the full per-scan data "
        "are in the JSON.",
        "",
        "| tracker | N | ms / scan | detections / s | GOSPA | localisation | missed | false |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(d["summary"], key=lambda r: (r["n_targets"], r["tracker"])):
        out.append(
            f"| {r['tracker']} | {r['n_targets']} | {r['per_scan_ms_mean']:.2f} | {r['detections_per_s']:,.0f} | "
            f"{r['gospa_mean']:.1f} | {r['gospa_localisation_mean']:.1f} | {r['gospa_missed_mean']:.1f} | "
            f"{r['gospa_false_mean']:.1f} |"
        )
    out += ["", "Ratios (mean over seeds), siap = the `siap` variant (CV filter, JPDA in ambiguous "
            "clusters). Per seed, Stone Soup's best is the lower GOSPA of its two trackers on that seed; "
            "the last column is the mean over seeds of siap minus that, with its standard error:", ""]
    out += ["| N | siap speed-up vs GNN | vs JPDA | GOSPA siap | GOSPA best Stone Soup | siap no worse? "
            "| seeds where siap <= SS best | per-seed difference (m) |",
            "|---|---|---|---|---|---|---|---|"]
    by = {(r["tracker"], r["n_targets"]): r for r in d["summary"]}
    runs = {(r["tracker"], r["n_targets"], r["seed"]): r["gospa_mean"] for r in d.get("runs", [])}
    for n in sorted({r["n_targets"] for r in d["summary"]}):
        siap = by.get(("siap", n))
        gnn = by.get(("stonesoup-gnn", n))
        jpda = by.get(("stonesoup-jpda", n))
        if not siap or not gnn:
            continue
        best = min(x["gospa_mean"] for x in (gnn, jpda) if x)
        diffs = []
        for seed in siap["seeds"]:
            ss = [runs[k] for k in (("stonesoup-gnn", n, seed), ("stonesoup-jpda", n, seed)) if k in runs]
            if ss and ("siap", n, seed) in runs:
                diffs.append(runs[("siap", n, seed)] - min(ss))
        wins = sum(x <= 1e-9 for x in diffs)
        mean_d = sum(diffs) / len(diffs) if diffs else float("nan")
        se = ((sum((x - mean_d) ** 2 for x in diffs) / (len(diffs) - 1)) ** 0.5 / len(diffs) ** 0.5
              if len(diffs) > 1 else float("nan"))
        out.append(
            f"| {n} | {gnn['per_scan_ms_mean'] / siap['per_scan_ms_mean']:.0f}x | "
            f"{(jpda['per_scan_ms_mean'] / siap['per_scan_ms_mean']) if jpda else float('nan'):.0f}x | "
            f"{siap['gospa_mean']:.1f} | {best:.1f} | {'yes' if siap['gospa_mean'] <= best + 1e-9 else 'no'} "
            f"({100 * (siap['gospa_mean'] - best) / best:+.2f} %) | {wins} of {len(diffs)} | "
            f"{mean_d:+.1f} ± {se:.1f} |"
        )
    out.append("")
    return out


def section_scale(d: dict) -> list[str]:
    out = ["## 2. Scale: thousands of targets, 20 radars, one core", ""]
    out += _header(d)
    out += [d.get("measurement", ""), "",
            "| targets | plots | plots / s (all) | plots / s (steady) | batch p50 ms | batch p99 ms | x real time | tracker memory MiB | tracks at end | targets seen 3+ times |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["runs"]:
        out.append(
            f"| {r['n_targets']:,} | {r['n_plots']:,} | {r['plots_per_s']:,.0f} | {r['plots_per_s_steady']:,.0f} | "
            f"{r['batch_latency_ms_p50']:.1f} | {r['batch_latency_ms_p99']:.1f} | {r['realtime_factor']:.0f} | "
            f"{r['tracker_peak_rss_increase_mib']:.0f} | {r['tracks_confirmed_or_coasting_at_end']:,} | {r['targets_seen_3_times']:,} |"
        )
    g = d.get("growth")
    if g:
        out += ["", f"From {g['from_targets']:,} to {g['to_targets']:,} targets the plots grow {g['plots_ratio']:.1f}x and "
                f"the tracker's time {g['wall_time_ratio']:.1f}x (time ~ N^{g['exponent_time_vs_targets']:.2f}); "
                f"time per plot changes by {g['time_per_plot_ratio']:.2f}x."]
    out.append("")
    return out


def section_accuracy(d: dict) -> list[str]:
    out = ["## 3. Accuracy on the realistic scenarios (network picture, one tracker over all plots)", ""]
    out += _header(d)
    out += [d.get("evaluation", ""), ""]
    for sc in d["scenarios"]:
        out += [f"### `{sc['scenario']}` ({sc['duration_s']:.0f} s, {sc['plots']:,} plots, {sc['observable_objects']} observable aircraft)", "",
                "| variant | GOSPA mean (m) | completeness | ambiguity | spuriousness | position acc. (m) | velocity acc. (m/s) | manoeuvring: GOSPA / pos. acc. | plots / s |",
                "|---|---|---|---|---|---|---|---|---|"]
        for name, v in sc["variants"].items():
            a = v["all"]
            m = v.get("manoeuvring_objects", {})
            out.append(
                f"| {name} | {a['gospa_mean_m']:,.0f} | {a['siap_completeness']:.3f} | {a['siap_ambiguity']:.3f} | "
                f"{a['siap_spuriousness']:.3f} | {a['siap_position_accuracy_m']:.1f} | {a['siap_velocity_accuracy_mps']:.1f} | "
                f"{_f(m.get('gospa_mean_m'), ',.0f')} / {_f(m.get('siap_position_accuracy_m'), '.0f')} | {v['plots_per_s']:,.0f} |"
            )
        reg = sc.get("registration") or {}
        declared, estimated = reg.get("declared", {}), reg.get("estimated", {})
        if estimated:
            out += ["", "Registration: estimated vs declared radar biases:", "",
                    "| sensor | declared range / azimuth / clock | estimated range (m) | estimated azimuth (deg) | estimated clock (s) |",
                    "|---|---|---|---|---|"]
            for sid in sorted(estimated):
                e, dcl = estimated[sid], declared.get(sid, {})
                out.append(
                    f"| {sid} | {_f(dcl.get('range_m'), 'g')} m / {_f(dcl.get('azimuth_deg'), 'g')} deg / "
                    f"{_f(dcl.get('time_s'), 'g')} s | {_f(e.get('range_m'), '.1f')} +/- {_f(e.get('range_sd_m'), '.1f')} | "
                    f"{_f(e.get('azimuth_deg'), '.4f')} +/- {_f(e.get('azimuth_sd_deg'), '.4f')} | "
                    f"{_f(e.get('time_s'), '.3f')} +/- {_f(e.get('time_sd_s'), '.3f')} |"
                )
        out.append("")
    return out


def section_coalition(d: dict) -> list[str]:
    out = [f"## 4. Coalition on `{d['scenario']}`: own sensors alone vs federated vs centralised", ""]
    out += _header(d)
    out += [
        f"{d['duration_s']:.0f} s, {d['plots']:,} plots, {d['observable_truth_objects']} observable aircraft, "
        f"evaluation every {d['eval_step_s']:g} s; messages {d['messages']}; rejected {d['rejected']}.",
        "",
        "| partner | metric | own sensors | coalition (federated) | centralised |",
        "|---|---|---|---|---|",
    ]
    for p, row in d["partner_table"].items():
        for key, label, fmt in (
            ("siap_completeness", "completeness", ".3f"),
            ("siap_completeness_vs_releasable", "completeness vs what it may know", ".3f"),
            ("gospa_mean_m", "GOSPA mean (m)", ",.0f"),
            ("siap_position_accuracy_m", "position accuracy (m)", ".0f"),
            ("siap_ambiguity", "ambiguity", ".3f"),
            ("siap_spuriousness", "spuriousness", ".3f"),
        ):
            out.append(
                f"| {p} | {label} | {_f(row['own'].get(key), fmt)} | {_f(row['coalition'].get(key), fmt)} | "
                f"{_f(row.get('centralised', {}).get(key), fmt)} |"
            )
    out += ["", "Commonality (docs/metrics.md):", ""]
    for pair, v in d["commonality"].items():
        out.append(f"- {pair}: {v['commonality']:.3f} over {v['common']:,} common (object, time) pairs")
    out += ["", f"Stage timings (s): {d['timings_s']}", ""]
    return out


def section_metrics(d: dict) -> list[str]:
    out = ["## 5. Evaluation metrics: siap vs Stone Soup on the same inputs", ""]
    out += _header(d)
    out += ["| case | size | siap (s) | Stone Soup (s) | speed-up | max difference |", "|---|---|---|---|---|---|"]
    for c in d["cases"]:
        out.append(
            f"| {c['case']} | {c['size']} | {_f(c['siap_s'], '.3f')} | {_f(c['stonesoup_s'], '.1f')} | "
            f"{_f(c['speedup'], '.0f')}x | {_f(c['max_abs_diff'], '.1e')} |"
        )
    out.append("")
    return out


def section_runtime(d: dict) -> list[str]:
    r = d["run"]
    out = [f"## 6. The live runtime: {r['n_targets']:,} targets, three partners, 1 s updates", ""]
    out += _header(d)
    out += [
        f"{r['n_sensors']} radars dealt to JPN, USA and AUS, {r['duration_s']:.0f} s, {r['n_plots']:,} plots; "
        f"every partner updates every {r['update_period_s']:g} s (track, release + sign + publish to the two "
        "others, verify + fuse its coalition and own pictures). The same plots on a replay clock at "
        f"x{r['speed']:g} (real time) and on a virtual clock (as fast as possible). CPU is "
        "`time.process_time` for the process and `time.thread_time` per stage for the loop.",
        "",
        "| clock | wall (s) | process CPU (s) | CPU s per simulated s | track + fuse + release, CPU s per "
        "simulated s | loop CPU (s): track / publish / fuse | max lag (s) | mean coalition tracks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("realtime", "virtual"):
        m = r[mode]
        st = m["loop_cpu_s_by_stage"]
        tracks = ", ".join(f"{p} {v:,.0f}" for p, v in m["mean_coalition_tracks"].items())
        out.append(
            f"| {mode} | {m['wall_s']:.1f} | {m['process_cpu_s']:.1f} | {m['process_cpu_s'] / r['duration_s']:.3f} | "
            f"{m['track_fuse_release_cpu_per_sim_s']:.3f} | {st['track']:.2f} / {st['publish']:.2f} / {st['fuse']:.2f} | "
            f"{m['max_lag_s']:.2f} | {tracks} |"
        )
    out += ["", "In real time, CPU s per simulated s is the number of cores used. On the virtual clock wall "
            "time depends on what else the shared machine runs; its CPU is the same work.", ""]
    out += ["", f"Target: {d.get('target', '-')}.", ""]
    return out


def section_formats_asterix(d: dict) -> list[str]:
    r = d["results"]
    out = ["## 7. ASTERIX codecs: siap vs libasterix (same records, one run)", ""]
    out += _header(d)
    out += [
        f"{d['n']:,} records per siap row; libasterix (the reference decoder) on the first "
        f"{d['n_libasterix']:,} of them. Rates per CPU second of one thread (`time.process_time`), "
        "wall-clock beside them.",
        "",
        "| what | siap records/CPU s | siap records/s wall | libasterix records/CPU s | siap / libasterix (CPU) |",
        "|---|---|---|---|---|",
    ]
    pairs = [
        ("CAT048 decode", "siap_decode_cat048", "libasterix_decode_cat048"),
        ("CAT021 decode", "siap_decode_cat021", "libasterix_decode_cat021"),
        ("CAT062 encode", "siap_encode_cat062", "libasterix_encode_cat062"),
        ("CAT048 bytes -> plots", "siap_cat048_to_plots", None),
        ("track batch -> CAT062 bytes", "siap_tracks_to_cat062_and_encode", None),
        ("pcap file source -> time-ordered plots", "siap_file_source_pcap_to_plots", None),
    ]
    for what, mine, ref in pairs:
        if mine not in r:
            continue
        a = r[mine]
        b = r.get(ref) if ref else None
        ratio = f"{a['per_s_cpu'] / b['per_s_cpu']:,.0f}x" if b else "-"
        ref_rate = f"{b['per_s_cpu']:,.0f}" if b else "-"
        out.append(f"| {what} | {a['per_s_cpu']:,.0f} | {a['per_s_wall']:,.0f} | {ref_rate} | {ratio} |")
    out += ["", "Targets (issue 10, one core): 200,000 CAT048 records/s decoded, 100,000 CAT062 tracks/s "
            "encoded. What each figure includes: docs/formats.md, ASTERIX, \"Speed\".", ""]
    return out


def section_formats_modes(d: dict) -> list[str]:
    out = ["## 8. Mode S / ADS-B: siap framing + decoding vs rs1090 alone vs pyModeS", ""]
    out += _header(d)
    out += [
        "Same frames for every contender; siap starts from Beast bytes, rs1090 and pyModeS from hex "
        f"strings. CPU time of one thread, best of {d.get('repeats', '?')}.",
        "",
        "| input | contender | frames/CPU s | positions or frames out | vs rs1090 |",
        "|---|---|---|---|---|",
    ]
    runs = [d]
    full = _load("formats_modes_full_flight")
    if full is not None:
        runs.append(full)
    for run in runs:
        for name, v in run["results"].items():
            out.append(
                f"| {run['input']} ({run['frames']:,} frames) | {name} | {v['frames_per_cpu_s']:,.0f} | "
                f"{v['positions_or_frames_out']:,} | {v['vs_rs1090']:.2f}x |"
            )
    out += ["", "Target (issue 10): 50,000 Mode S frames/s framed and decoded on one core. siap hands "
            "rs1090 only the distinct extended squitters that carry plot fields, so its gain shrinks as "
            "the share of position squitters grows (docs/formats.md).", ""]
    return out


def section_service(d: dict) -> list[str]:
    out = [f"## 9. Live service: {d['clients']} WebSocket clients on a {d['tracks']:,}-track picture", ""]
    out += _header(d)
    out += [
        f"One picture every {d['period_s']:g} s; latency is picture in -> whole frame received by "
        "the client; server and clients share one process.",
        "",
        "| run | frames received / expected | latency p50 (ms) | p99 (ms) | hub view p50 (ms) | "
        "delta frame p50 (KiB) | process CPU per picture (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in d["runs"].items():
        lat = r["latency_ms"]
        out.append(
            f"| {name} | {r['frames_received']} / {r['frames_expected']} | {lat['p50']:.0f} | "
            f"{lat['p99']:.0f} | {r['hub_view_ms_p50']:.0f} | {r['delta_frame_kib_p50']:,.0f} | "
            f"{r['process_cpu_per_picture_ms']:.0f} |"
        )
    out += ["", f"{d.get('note', '')}", "", "Target (issue 9): p99 within the update period + 100 ms.", ""]
    return out


def main() -> int:
    parts = [
        "# Performance",
        "",
        "Generated by `python bench/summarise.py` from `bench/results/*.json` (the last step of",
        "`make bench`); do not edit by hand. Each section names the command, machine and date of",
        "its results file. Times are wall-clock on a shared 2-core machine unless marked CPU; the",
        "JSON files also hold CPU times, which are steadier when the machine is busy.",
        "",
    ]
    for name, fn in (
        ("tracker_vs_stonesoup", section_tracker),
        ("tracker_scale", section_scale),
        ("accuracy", section_accuracy),
        ("coalition", section_coalition),
        ("metrics", section_metrics),
        ("runtime", section_runtime),
        ("formats_asterix", section_formats_asterix),
        ("formats_modes", section_formats_modes),
        ("service", section_service),
    ):
        d = _load(name)
        if d is None:
            parts += [f"(no bench/results/{name}.json yet: run `make bench`)", ""]
            continue
        parts += fn(d)
    notes = ROOT / "bench" / "performance_notes.md"
    if notes.exists():
        parts += [notes.read_text().rstrip(), ""]
    DOC.write_text("\n".join(parts))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
