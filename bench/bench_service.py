"""The live service under load: N WebSocket clients (default 20) on a picture of 2,000 tracks
updated every second; latency from picture in (``PictureHub.on_picture``) to frame out (the
whole frame received by a client), p50 / p99, and the hub's per-picture work. Writes
bench/results/service.json.

    python bench/bench_service.py [--clients 20] [--tracks 2000] [--pictures 30] [--quick]
    python bench/bench_service.py --runtime [--quick]   # fed by the live runtime

With ``--runtime`` the pictures come from the live runtime (``siap serve``'s path): the
runtime benchmark's radar network (``scenarios_cv.siap_radar_network_scenario``, 20 radars
shared by JPN/USA/AUS) with ``--tracks`` targets, fast-forwarded 30 s to build the picture,
then run on a replay clock at x1; latency is **plot in -> frame out**: from the wall time at
which the runtime's clock reached a picture's time (its plots up to then released into the
partner nodes) to the whole frame received, so it includes tracking, sharing, fusion and
the hub. Writes bench/results/service_runtime.json.

Server (uvicorn, loopback) and clients run in this one process (so one clock serves both);
the clients' JSON parsing is left out (they read the frame's sequence number only), so the
numbers are the service's, not a browser's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results"
_SEQ = re.compile(r'^\{"seq":(\d+)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--pictures", type=int, default=30)
    ap.add_argument("--period-s", type=float, default=1.0, help="time between pictures (s)")
    ap.add_argument("--quick", action="store_true", help="8 pictures")
    ap.add_argument("--out", type=Path, default=RESULTS / "service.json")
    ap.add_argument("--runtime", action="store_true", help="pictures from the live runtime (plot in -> frame out)")
    args = ap.parse_args(argv)
    if args.runtime:
        return _main_runtime(args)
    runs = {}
    for deflate in (False, True):
        runs["deflate" if deflate else "plain"] = _run_once(args, deflate)
    result = {
        "benchmark": "service",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "clients": args.clients,
        "tracks": args.tracks,
        "period_s": args.period_s,
        "runs": runs,
        "ratio_cpu_deflate_over_plain": round(runs["deflate"]["process_cpu_s"] / max(runs["plain"]["process_cpu_s"], 1e-9), 2),
        "note": "server and clients share this process and its CPU; latency is picture in -> whole frame "
        "received; 'plain' is what siap serve runs (per-message deflate off), 'deflate' the same with "
        "WebSocket per-message compression",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


def _run_once(args, deflate: bool) -> dict:
    n_pictures = 8 if args.quick else args.pictures

    import numpy as np
    import uvicorn
    import websockets

    from siap.picture import Picture
    from siap.service import PictureReplayer, ServiceConfig, create_app
    from siap.service.synthetic import synthetic_pictures
    from siap.sharing.policy import load_policy

    policy = load_policy("pacific")
    rows = synthetic_pictures(args.tracks, n_pictures + 1, ["USA"], policy, step_s=args.period_s)["USA"]
    times = np.unique(rows["time_s"])
    pictures = [Picture("USA", float(t), rows[rows["time_s"] == t]) for t in times]
    source = PictureReplayer({"USA": rows}, policy)
    import tempfile

    tmp = tempfile.mkdtemp(prefix="siap-bench-service-")
    cfg = ServiceConfig.generate(policy.partners, audit_log=Path(tmp) / "audit.jsonl")
    app = create_app(source, cfg, start_source=False)
    hub = app.state.hub
    view_s: list[float] = []
    hub.add_view_listener(lambda v: view_s.append(time.perf_counter() - v.received_s))

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=deflate))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)

    t_in: dict[int, float] = {}
    received: list[tuple[int, int, float, int]] = []  # (client, seq, t_out, bytes)
    url = f"ws://127.0.0.1:{port}/api/v1/partners/USA/stream?token={cfg.tokens['USA']}"

    async def client(i: int, stop: asyncio.Event, ready: asyncio.Event, counter: list[int]) -> None:
        async with websockets.connect(url, max_size=None) as ws:
            counter[0] += 1
            if counter[0] == args.clients:
                ready.set()
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                t = time.perf_counter()
                m = _SEQ.match(msg)
                if m:
                    received.append((i, int(m.group(1)), t, len(msg)))

    async def run() -> float:
        stop, ready, counter = asyncio.Event(), asyncio.Event(), [0]
        hub.on_picture(pictures[0])  # the state every client gets on connect
        tasks = [asyncio.create_task(client(i, stop, ready, counter)) for i in range(args.clients)]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(1.0)
        cpu0 = time.process_time()
        for k, pic in enumerate(pictures[1:], start=2):
            t_in[k] = time.perf_counter()
            hub.on_picture(pic)
            await asyncio.sleep(args.period_s)
        await asyncio.sleep(2.0)
        cpu = time.process_time() - cpu0
        stop.set()
        await asyncio.gather(*tasks)
        return cpu

    cpu_s = asyncio.run(run())
    server.should_exit = True

    lat = np.array([t - t_in[seq] for _, seq, t, _ in received if seq in t_in]) * 1000.0
    got = {(c, s) for c, s, _, _ in received if s in t_in}
    expected = args.clients * len(t_in)
    frame_bytes = [b for _, s, _, b in received if s in t_in]
    return {
        "pictures": len(t_in),
        "frames_expected": expected,
        "frames_received": len(got),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
        },
        "hub_view_ms_p50": round(float(np.median(view_s[1:])) * 1000.0, 1) if len(view_s) > 1 else None,
        "delta_frame_kib_p50": round(float(np.median(frame_bytes)) / 1024, 1),
        "process_cpu_s": round(cpu_s, 2),
        "process_cpu_per_picture_ms": round(cpu_s / len(t_in) * 1000.0, 1),
    }

class _StampedClock:
    """Marks the wall time (perf_counter) at which the runtime's clock reached each step."""

    @staticmethod
    def make(speed: float):
        from siap.runtime import ReplayClock

        class Stamped(ReplayClock):
            def __init__(self, speed):
                super().__init__(speed)
                self.stamps: dict[float, float] = {}

            def wait_until(self, time_s):
                ok = super().wait_until(time_s)
                if ok:
                    self.stamps.setdefault(time_s, time.perf_counter())
                return ok

        return Stamped(speed)


def _main_runtime(args) -> dict:
    import tempfile

    import numpy as np
    import scenarios_cv as sc_cv
    import uvicorn
    import websockets
    from bench_runtime import coalition_policy

    from siap.pipeline import tracker_config_for
    from siap.runtime import Runtime, SimulatorSource
    from siap.service import ServiceConfig, create_app

    n_pictures = 8 if args.quick else args.pictures
    warm_s = 30.0
    t0 = time.perf_counter()
    scenario, sim = sc_cv.siap_radar_network_scenario(args.tracks, 1, duration_s=warm_s + n_pictures * args.period_s + 20)
    sim_s = time.perf_counter() - t0
    policy = coalition_policy([s.id for s in sim.sensors])
    clock = _StampedClock.make(1.0)
    rt = Runtime(policy, [SimulatorSource(sim)], sensor_ids=[s.id for s in sim.sensors],
                 tracker_config=tracker_config_for(scenario), clock=clock, update_period_s=args.period_s,
                 start_s=scenario.start_time_s, end_s=scenario.end_time_s, sensors=sim.sensors, hold_at_end=True)
    tmp = tempfile.mkdtemp(prefix="siap-bench-service-")
    cfg = ServiceConfig.generate(policy.partners, audit_log=Path(tmp) / "audit.jsonl")
    app = create_app(rt, cfg)
    hub = app.state.hub
    seq_time: dict[int, float] = {}
    hub.add_view_listener(lambda v: seq_time.__setitem__(v.seq, v.time_s) if v.partner == "USA" else None)
    rt.pause()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    w0 = time.perf_counter()
    rt.seek(scenario.start_time_s + warm_s)  # fast-forward (paused) to build the picture
    while (p := rt.picture("USA")) is None or p.time_s < scenario.start_time_s + warm_s:
        time.sleep(0.05)
    warm_wall_s = time.perf_counter() - w0
    n_tracks = len(rt.picture("USA"))
    received: list[tuple[int, int, float]] = []
    url = f"ws://127.0.0.1:{port}/api/v1/partners/USA/stream?token={cfg.tokens['USA']}"

    async def client(i: int, stop: asyncio.Event, ready: asyncio.Event, counter: list[int]) -> None:
        async with websockets.connect(url, max_size=None) as ws:
            counter[0] += 1
            if counter[0] == args.clients:
                ready.set()
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                m = _SEQ.match(msg)
                if m:
                    received.append((i, int(m.group(1)), time.perf_counter()))

    async def run() -> tuple[float, float]:
        stop, ready, counter = asyncio.Event(), asyncio.Event(), [0]
        tasks = [asyncio.create_task(client(i, stop, ready, counter)) for i in range(args.clients)]
        await asyncio.wait_for(ready.wait(), 120)
        await asyncio.sleep(1.0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        rt.resume()
        await asyncio.sleep(n_pictures * args.period_s + 2.0)
        rt.pause()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stop.set()
        await asyncio.gather(*tasks)
        return cpu, wall

    resume_at = time.perf_counter()
    cpu_s, wall_s = asyncio.run(run())
    server.should_exit = True
    lat = []
    for _, seq, t_out in received:
        t_pic = seq_time.get(seq)
        stamp = clock.stamps.get(t_pic) if t_pic is not None else None
        if stamp is not None and stamp >= resume_at:
            lat.append((t_out - stamp) * 1000.0)
    lat = np.array(lat)
    live = sorted({t for t, w in clock.stamps.items() if w >= resume_at})
    result = {
        "benchmark": "service_runtime",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "command": "python bench/bench_service.py --runtime" + (" --quick" if args.quick else ""),
        "clients": args.clients,
        "targets": args.tracks,
        "usa_picture_tracks_at_start": n_tracks,
        "period_s": args.period_s,
        "simulate_s": round(sim_s, 1),
        "fast_forward_30s_wall_s": round(warm_wall_s, 1),
        "steps_live": len(live),
        "frames_received": int(len(lat)),
        "latency_plot_in_to_frame_out_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
        } if len(lat) else None,
        "target_p99_ms": round(args.period_s * 1000 + 100),
        "process_cpu_s": round(cpu_s, 2),
        "cores_used": round(cpu_s / wall_s, 2),
        "note": "runtime (3 partner nodes: tracking, signed sharing, fusion), service and 20 clients share this "
        "process; latency is from the runtime's clock reaching a picture's time (its plots released) to the "
        "whole frame received by a client",
    }
    rt.stop()
    out = args.out if args.out != RESULTS / "service.json" else RESULTS / "service_runtime.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return result


if __name__ == "__main__":
    main()
