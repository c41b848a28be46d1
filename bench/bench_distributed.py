"""Distributed coalition on this machine: the multi-process network as `siap up` builds it.

Three NATS servers (one per partner site, a JetStream cluster, an account per partner, TLS) and
a gateway and a partner node process per partner, over the built-in ``pacific`` scenario:

* **capacity**: gateways publish the whole span first; then the three partner nodes run as
  fast as they can (replay clock far ahead): plots applied per wall second, end to end (verify,
  track, release, sign, publish, receive, verify, fuse, publish the picture), and CPU;
* **live**: gateways and nodes together on a replay clock at ``--speed``; a reader in this
  process timestamps every picture as it arrives: plot-to-picture latency = arrival wall time
  minus the wall time at which the picture's scenario time (the newest plots in it) passed;
* **links**: every release envelope stored per (sender -> recipient): sizes and bytes per
  scenario second;
* **degraded links**: the live run again with USA's and AUS's releases to JPN given a budget of
  10 % of the bytes/s they used; JPN's coalition picture against the full-bandwidth one.

Run: ``python bench/bench_distributed.py [--duration 300] [--speed 2] [--quick]``
(``--quick``: 120 scenario seconds). Writes ``bench/results/distributed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

DEFAULT_OUT = HERE / "results" / "distributed.json"
PARTNERS = ("AUS", "JPN", "USA")
SRC = str(HERE.parent / "src")


def _pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


class Net:
    def __init__(self, root: Path, speed: float) -> None:
        from siap.nodes.up import write_network

        self.net = write_network("pacific", "pacific", root, cop=False, speed=speed, start_delay_s=0.0)
        self.root = root
        self.servers: list[subprocess.Popen] = []
        self.env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def start_servers(self) -> None:
        from siap.nodes.network import nats_server_binary, wait_for_port

        for s in self.net.sites:
            log = open(self.root / f"nats-{s.partner}.log", "ab")
            self.servers.append(subprocess.Popen([nats_server_binary(), "-c", str(self.net.server_configs[s.partner])],
                                                 stdout=log, stderr=subprocess.STDOUT))
        for proc, s in zip(self.servers, self.net.sites, strict=True):
            wait_for_port(s.port, proc=proc)

    def config(self, name: str, **changes) -> Path:
        import yaml

        path = self.net.node_configs[name]
        cfg = yaml.safe_load(path.read_text())
        cfg.update(changes)
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(self, name: str, **changes) -> subprocess.Popen:
        from siap.nodes.up import node_argv

        role = name.split("-", 1)[0]
        log = open(self.root / f"{name}.log", "ab")
        return subprocess.Popen(node_argv(self.config(name, **changes), role), stdout=log, stderr=subprocess.STDOUT,
                                env=self.env)

    def bus(self, partner: str, prefix: str):
        from siap.nodes.network import inbound_subjects, site_tag
        from siap.transport import NatsBus

        s = next(x for x in self.net.sites if x.partner == partner)
        return NatsBus(s.url, subjects=inbound_subjects(partner), durable_prefix=prefix, deliver_new=False,
                       user=partner, password=self.net.passwords[partner], tls_ca_file=str(self.net.ca_file),
                       placement_tags=[site_tag(partner)])

    def close(self) -> None:
        for p in self.servers:
            p.terminate()
            p.wait(10)


def _wait_all(procs: dict[str, subprocess.Popen], root: Path) -> None:
    for name, p in procs.items():
        if p.wait(900) != 0:
            raise SystemExit(f"{name} failed: {(root / f'{name}.log').read_text()[-800:]}")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def capacity(root: Path, duration_s: float) -> dict:
    net = Net(root, speed=1000.0)
    net.start_servers()
    try:
        t0 = time.perf_counter()
        _wait_all({f"gateway-{p}": net.start(f"gateway-{p}", duration_s=duration_s) for p in PARTNERS}, root)
        gw_wall = time.perf_counter() - t0
        cpu0, t0 = _children_cpu(), time.perf_counter()
        _wait_all({f"partner-{p}": net.start(f"partner-{p}", duration_s=duration_s) for p in PARTNERS}, root)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        summaries = {p: json.loads((root / "state" / f"partner-{p}" / "summary.json").read_text()) for p in PARTNERS}
        gw = {}
        import pickle

        for p in PARTNERS:
            with open(root / "state" / f"gateway-{p}" / "gateway.pkl", "rb") as f:
                gw[p] = pickle.load(f)
        plots = sum(g["plots"] for g in gw.values())
        links = _links(net, root)
    finally:
        net.close()
    return dict(
        scenario_s=duration_s, plots=plots, plot_envelopes=sum(g["sent"] for g in gw.values()),
        gateways_wall_s=round(gw_wall, 2), nodes_wall_s=round(wall, 2), nodes_cpu_s=round(cpu, 2),
        plots_per_s_incl_startup=round(plots / wall, 1),
        # the runtime loops' own wall time (from the first step: process start-up, imports and
        # compilation excluded); the three nodes run in parallel, so the slowest one counts
        loop_wall_s=max(s["run_wall_s"] for s in summaries.values()),
        plots_per_s=round(plots / max(s["run_wall_s"] for s in summaries.values()), 1),
        realtime_factor=round(duration_s / max(s["run_wall_s"] for s in summaries.values()), 2),
        loop_cpu_s_by_partner={p: s["run_cpu_s"] for p, s in summaries.items()},
        cores_used=round(cpu / wall, 2),
        updates={p: s["updates"] for p, s in summaries.items()},
        tracks_accepted={p: s["tracks_accepted"] for p, s in summaries.items()},
        tracks_rejected={p: s["tracks_rejected"] for p, s in summaries.items()},
        links=links,
    )


def _links(net: Net, root: Path) -> dict:
    """Every release envelope stored for each recipient, by sender: count, sizes, bytes per
    scenario second."""
    from siap.records import TRACK_DTYPE
    from siap.sharing.signing import SignedEnvelope, decode_batch

    out = {}
    for r in PARTNERS:
        bus = net.bus(r, "bench-links")
        msgs = []
        while True:
            got = bus.drain(f"siap.run.{net.net.run}.tracks.{r}", wait_s=3.0)
            if not got:
                break
            msgs += got
        bus.close()
        by_sender: dict[str, list[tuple[int, float]]] = {}
        for m in msgs:
            env = SignedEnvelope.from_bytes(m)
            n_rows = len(decode_batch(env.payload, TRACK_DTYPE))
            by_sender.setdefault(env.origin_partner, []).append((len(m), env.time_s, n_rows))
        for s, rows in by_sender.items():
            tracks = sum(k for _, _, k in rows)
            sizes = np.array([n for n, _, _ in rows])
            times = np.array([t for _, t, _ in rows])
            span = max(float(times.max() - times.min()), 1.0)
            out[f"{s}->{r}"] = dict(envelopes=len(rows), bytes=int(sizes.sum()), size_p50_B=_pct(sizes, 50),
                                    size_max_B=int(sizes.max()), track_rows=tracks,
                                    bytes_per_track_row=round(float(sizes.sum()) / max(tracks, 1), 1),
                                    bytes_per_scenario_s=round(float(sizes.sum()) / span, 1))
    return out


def live(root: Path, duration_s: float, speed: float, budgets: dict[str, dict[str, float]] | None = None,
         keep: dict | None = None) -> dict:
    """``budgets[sender] = {recipient: bytes/s}`` (wall seconds); ``keep`` receives every
    picture of JPN by scenario time (position rows, tracks with another partner's data)."""
    from siap.nodes.roles import open_picture
    from siap.sharing.signing import TrustStore

    net = Net(root, speed=speed)
    net.start_servers()
    readers = {p: net.bus(p, "bench-live") for p in PARTNERS}
    trust = TrustStore.load(net.root / "keys" / "trust.yaml")
    wall_start = time.time() + 30.0  # the nodes need seconds to start (imports, compilation, simulation)
    clock = {"speed": speed, "wall_start_s": wall_start}
    start_s = 1772420400.0
    lat: dict[str, list[float]] = {p: [] for p in PARTNERS}
    stop = threading.Event()

    def read(p: str) -> None:
        subj = f"siap.run.{net.net.run}.picture.{p}"
        while not stop.is_set():
            for m in readers[p].drain(subj, wait_s=0.2):
                now = time.time()
                _seq, pic = open_picture(m, trust, p)
                lat[p].append(now - (wall_start + (pic.time_s - start_s) / speed))
                if keep is not None and p == "JPN":
                    foreign = np.array([any(not s.startswith("JPN-") for s in x.split(",") if s)
                                        for x in pic.tracks["sensors"].tolist()], dtype=bool)
                    keep[pic.time_s] = (pic.tracks["pos_ecef_m"].copy(), int(foreign.sum()))
            time.sleep(0.02)

    threads = [threading.Thread(target=read, args=(p,), daemon=True) for p in PARTNERS]
    try:
        for t in threads:
            t.start()
        cpu0, t0 = _children_cpu(), time.perf_counter()
        procs = {}
        for p in PARTNERS:
            procs[f"gateway-{p}"] = net.start(f"gateway-{p}", duration_s=duration_s, clock=clock)
            extra = {"link_budget_bytes_per_s": budgets[p]} if budgets and p in budgets else {}
            procs[f"partner-{p}"] = net.start(f"partner-{p}", duration_s=duration_s, clock=clock, **extra)
        _wait_all(procs, root)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(5)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        summaries = {p: json.loads((root / "state" / f"partner-{p}" / "summary.json").read_text()) for p in PARTNERS}
    finally:
        for r in readers.values():
            r.close()
        net.close()
    allv = np.concatenate([np.array(v) for v in lat.values()])
    return dict(
        scenario_s=duration_s, speed=speed, wall_s=round(wall, 1), nodes_cpu_s=round(cpu, 2),
        pictures=int(allv.size),
        latency_s={"p50": _pct(allv, 50), "p99": _pct(allv, 99), "max": _pct(allv, 100)},
        latency_s_by_partner={p: {"p50": _pct(v, 50), "p99": _pct(v, 99)} for p, v in lat.items()},
        max_lag_s={p: s["max_lag_s"] for p, s in summaries.items()},
        tracks_accepted={p: s["tracks_accepted"] for p, s in summaries.items()},
        tracks_rejected={p: s["tracks_rejected"] for p, s in summaries.items()},
        release_bytes_sent={p: s["sent_bytes"] for p, s in summaries.items()},
        superseded={p: s["superseded"] for p, s in summaries.items()},
    )


def quality(full: dict, thin: dict, radius_m: float = 2_000.0) -> dict:
    """JPN's coalition picture under the budget against the full-bandwidth run's, at the
    picture times both have: the fraction of the full picture's tracks with a track within
    ``radius_m`` in the thinned one, and the tracks carrying another partner's data."""
    from scipy.spatial import cKDTree

    times = sorted(set(full) & set(thin))
    kept, n_full, foreign_full, foreign_thin = 0, 0, 0, 0
    for t in times:
        a, fa = full[t]
        b, fb = thin[t]
        n_full += len(a)
        foreign_full += fa
        foreign_thin += fb
        if len(a) and len(b):
            d, _ = cKDTree(b).query(a, k=1)
            kept += int((d <= radius_m).sum())
    return dict(picture_times=len(times), tracks_full=n_full, retained_fraction=round(kept / max(n_full, 1), 3),
                tracks_with_partner_data_full=foreign_full, tracks_with_partner_data_thinned=foreign_thin,
                partner_data_fraction=round(foreign_thin / max(foreign_full, 1), 3), match_radius_m=radius_m)


def main(argv: list[str] | None = None) -> dict:
    from machine import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=300.0, help="scenario seconds")
    ap.add_argument("--speed", type=float, default=2.0, help="replay speed of the live run")
    ap.add_argument("--quick", action="store_true", help="120 scenario seconds")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.duration = 120.0
    with tempfile.TemporaryDirectory(prefix="siap-bench-dist-") as tmp:
        cap = capacity(Path(tmp) / "capacity", args.duration)
        full: dict = {}
        liv = live(Path(tmp) / "live", args.duration, args.speed, keep=full)
        # degraded links: USA's and AUS's releases to JPN at 10 % of the bytes/s they used
        wall = args.duration / args.speed
        budgets = {}
        for sender in ("AUS", "USA"):
            sent = next(v for k, v in liv["release_bytes_sent"][sender].items() if k.endswith(".tracks.JPN"))
            budgets[sender] = {"JPN": round(0.1 * sent / wall, 1)}
        thin: dict = {}
        deg = live(Path(tmp) / "degraded", args.duration, args.speed, budgets=budgets, keep=thin)
        deg["budgets_bytes_per_s"] = budgets
        deg["quality_vs_full"] = quality(full, thin)
    result = dict(
        benchmark="distributed",
        timestamp_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        command=" ".join(["python", "bench/bench_distributed.py", *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        setup="pacific; 3 nats-server (JetStream cluster, account per partner, TLS); gateway + partner node per partner",
        capacity=cap,
        live=liv,
        degraded_10pct=deg,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("capacity", "live", "degraded_10pct")}, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
