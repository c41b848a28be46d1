"""Benchmark: Mode S framing + decoding into ADS-B plots, siap vs rs1090 alone vs pyModeS.

Input: a JSON-lines recording (default ``tests/data/modes/full_flight_short_trim.jsonl.gz``,
20,722 frames of one flight, 75 % extended squitters: the hard case for siap, which skips
the other frames before decoding; ``--input`` takes another file, e.g. the untrimmed
57,793-frame ``full_flight_short.jsonl.gz``). Its frames are re-encoded as a Beast byte
stream in memory (escapes included), and every contender gets the same frames:

* ``siap_beast``: :class:`siap.formats.modes.BeastFramer` over the Beast bytes (numba) then
  :class:`siap.formats.modes.ModeSDecoder` (CRC and filter, rs1090 batch decode of the
  squitters that carry plot fields, per-aircraft CPR, plot batch): bytes in, plots out;
* ``siap_decode_only``: the decoder alone on already framed frames; ``siap_framing_only``:
  the Beast framer alone;
* ``rs1090``: ``rs1090.decode(hex_frames, timestamps, reference=receiver)`` on every frame
  (hex strings given: no framing), its own CPR;
* ``pymodes``: ``pyModeS.decode(hex_frames, timestamps=..., surface_ref=receiver)`` (GPL-3,
  used here only to measure it).

Rates are frames per CPU second (``time.process_time``, single thread), best of ``repeats``;
wall times beside them. Run: ``python bench/bench_formats_modes.py [--quick] [--input FILE]``.
Writes ``bench/results/formats_modes.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from machine import machine_info  # noqa: E402

from siap.formats import modes  # noqa: E402

DEFAULT_INPUT = ROOT / "tests" / "data" / "modes" / "full_flight_short_trim.jsonl.gz"
RECEIVER = modes.ReceiverConfig(receiver_id="bench", lat_deg=49.0097, lon_deg=2.5479, alt_m=119.0)


def _timed(fn, repeats: int):
    best_cpu, best_wall, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall, result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat instead of three")
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "formats_modes.json")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else 3

    frames = modes.frame_jsonl(modes.sources._open_text(args.input))
    n = len(frames)
    ticks = ((frames.time_s - frames.time_s[0]) * 12e6).astype(np.int64)
    beast = modes.encode_beast(frames.msg, frames.length, ticks, np.full(n, 0x1A))
    hexes = [frames.hex(i) for i in range(n)]
    ts = frames.time_s.tolist()
    t0 = float(frames.time_s[0])

    # warm up the compiled kernels (numba cache) outside the timings
    modes.ModeSDecoder(RECEIVER).decode(modes.BeastFramer(t0).feed(beast[:5000], final=True))

    def siap_beast():
        framer = modes.BeastFramer(t0)
        dec = modes.ModeSDecoder(RECEIVER)
        out = []
        step = 1 << 20
        for i in range(0, len(beast), step):
            out.append(dec.decode(framer.feed(beast[i : i + step], final=i + step >= len(beast), arrival_s=t0)).plots)
        return sum(len(p) for p in out)

    def siap_decode_only():
        return len(modes.ModeSDecoder(RECEIVER).decode(frames).plots)

    def siap_framing_only():
        return len(modes.BeastFramer(t0).feed(beast, final=True, arrival_s=t0))

    def rs1090_alone():
        import rs1090

        out = rs1090.decode(hexes, ts, reference=(RECEIVER.lat_deg, RECEIVER.lon_deg))
        return sum("latitude" in m for m in out if m)

    def pymodes():
        import pyModeS

        out = pyModeS.decode(hexes, timestamps=ts, surface_ref=(RECEIVER.lat_deg, RECEIVER.lon_deg))
        return sum(o.get("latitude") is not None for o in out)

    contenders = {
        "siap_beast": siap_beast,
        "siap_decode_only": siap_decode_only,
        "siap_framing_only": siap_framing_only,
        "rs1090": rs1090_alone,
        "pymodes": pymodes,
    }
    rows = {}
    for name, fn in contenders.items():
        cpu, wall, positions = _timed(fn, repeats)
        rows[name] = {
            "frames": n,
            "cpu_s": round(cpu, 4),
            "wall_s": round(wall, 4),
            "frames_per_cpu_s": round(n / cpu),
            "positions_or_frames_out": int(positions),
        }
    base = rows["rs1090"]["frames_per_cpu_s"]
    for r in rows.values():
        r["vs_rs1090"] = round(r["frames_per_cpu_s"] / base, 2)
    result = {
        "benchmark": "formats_modes",
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python bench/bench_formats_modes.py" + (" --quick" if args.quick else "")
        + (f" --input {args.input}" if args.input != DEFAULT_INPUT else ""),
        "input": str(args.input.name),
        "frames": n,
        "beast_bytes": len(beast),
        "repeats": repeats,
        "machine": machine_info(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{n} frames ({args.input.name}), CPU time, best of {repeats}")
    print(f"{'contender':<20}{'frames/CPU s':>14}{'CPU s':>9}{'wall s':>9}{'vs rs1090':>11}{'out':>8}")
    for name, r in rows.items():
        print(f"{name:<20}{r['frames_per_cpu_s']:>14,}{r['cpu_s']:>9.3f}{r['wall_s']:>9.3f}{r['vs_rs1090']:>11.2f}{r['positions_or_frames_out']:>8}")
    return result


if __name__ == "__main__":
    main()
