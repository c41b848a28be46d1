"""Benchmark: ASTERIX decode (CAT048, CAT021) and encode (CAT062), siap's compiled codecs and
libasterix (the pure-Python reference) side by side in one run, one core.

Inputs: ``N`` CAT048 records made from the 128 real records of tests/data/cat_034_048.pcap
(tiled, with range, azimuth, time, address and flight level varied so no two are alike),
encoded by siap into 1400-octet blocks; ``N`` CAT021 records from the same positions as
ADS-B reports; ``N`` CAT062 tracks (random positions, velocities and identities). libasterix
runs on the first ``n_ref`` of each (it is ~1,000 records/s). Each figure is the best of
``repeat`` runs after a warm-up (numba compiled and cached), reported as records per second of
wall time and of process CPU time (the machine is shared: CPU time is the steadier figure).
The siap decode figure includes framing every record, reading its fields and resolving its
time of day; converting to plots is reported separately (``cat048_to_plots``), and so is a
whole file source (a pcap of the CAT048 blocks, one per packet -> plots in time order).

Run: ``python bench/bench_formats_asterix.py [--quick]``; writes
bench/results/formats_asterix.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from machine import machine_info  # noqa: E402

from siap.formats.asterix import (  # noqa: E402
    CAT021_DTYPE,
    AsterixFileSource,
    Site,
    Sites,
    cat048_to_plots,
    decode,
    encode_cat021,
    encode_cat048,
    encode_cat062,
    read_payloads,
    tracks_to_cat062,
)
from siap.records import TrackStatus, empty_tracks  # noqa: E402

RESULTS = HERE / "results" / "formats_asterix.json"


def _timed(fn, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds over ``repeat`` calls."""
    best_wall, best_cpu = np.inf, np.inf
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu


def make_cat048(n: int, rng) -> np.ndarray:
    p = read_payloads(ROOT / "tests" / "data" / "cat_034_048.pcap")
    base = decode(p.data, p.segments, p.time_s).cat048
    t = base[np.arange(n) % len(base)].copy()
    t["range_m"] = rng.uniform(1000, 400_000, n)
    t["azimuth_rad"] = rng.uniform(0, 2 * np.pi, n)
    t["tod_s"] = np.sort(rng.uniform(0, 3600, n)) + 30000
    t["flight_level"] = np.where(np.isfinite(t["flight_level"]), rng.integers(0, 1800, n) / 4, np.nan)
    t["mode_s_address"] = np.where(t["mode_s_address"] >= 0, rng.integers(0, 1 << 24, n), -1)
    return t


def make_cat021(n: int, rng) -> np.ndarray:
    t = np.zeros(n, CAT021_DTYPE)
    t["sac"], t["sic"] = 25, 100
    t["tod_s"] = t["tod_position_s"] = np.sort(rng.uniform(0, 3600, n)) + 30000
    t["tod_reception_s"] = t["tod_position_s"] + 0.1
    t["lat_deg"], t["lon_deg"], t["high_res"] = rng.uniform(40, 55, n), rng.uniform(-5, 15, n), 1
    t["geometric_height_m"] = rng.uniform(0, 12000, n)
    t["flight_level"] = rng.integers(0, 1600, n) / 4
    t["mode_s_address"] = rng.integers(0, 1 << 24, n)
    t["mode_3a"] = rng.integers(0, 0o10000, n)
    t["callsign"] = np.frombuffer(b"AFR1234 " * n, np.uint8).reshape(n, 8)
    t["track_number"] = rng.integers(0, 4096, n)
    t["nic"], t["nacp"] = 8, 9
    t["ground_speed_mps"] = rng.uniform(50, 300, n)
    t["track_angle_rad"] = rng.uniform(0, 6.28, n)
    t["baro_vertical_rate_mps"] = rng.uniform(-10, 10, n)
    return t


def make_tracks(n: int, rng) -> np.ndarray:
    t = empty_tracks(n)
    t["time_s"] = 1_767_225_600.0 + rng.uniform(0, 60, n)
    t["track_id"] = np.arange(n)
    t["status"] = rng.choice([int(s) for s in TrackStatus], n)
    t["lat_deg"], t["lon_deg"], t["alt_m"] = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n), rng.uniform(0, 12000, n)
    t["vel_ecef_mps"] = rng.normal(0, 150, (n, 3))
    t["mode_3a"] = rng.integers(0, 0o10000, n)
    t["mode_s_address"] = rng.integers(0, 1 << 24, n)
    t["callsign"] = "JAL123"
    t["sensors"] = "JPN-R1,USA-R1"
    return t


def write_pcap(path: Path, blocks: list[bytes], t0: float) -> None:
    """A classic pcap: one Ethernet/IPv4/UDP frame per data block, 10 ms apart."""
    import struct

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, b in enumerate(blocks):
        udp = struct.pack(">HHHH", 40000, 8600, 8 + len(b), 0) + b
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\1") + udp
        frame = b"\0" * 12 + b"\x08\x00" + ip
        t = t0 + i * 0.01
        out.append(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def libasterix_decode(data: bytes, cat: int) -> int:
    import asterix.generated as gen
    from asterix.base import Bits, RawDatablock

    spec = {48: gen.Cat_048_1_32, 21: gen.Cat_021_2_6}[cat]
    n = 0
    for db in RawDatablock.parse(Bits.from_bytes(data)):
        for rec in spec.cv_uap.parse(db.get_raw_records()):
            # parse (done above, every item to its structure) and look up the items siap reads
            for item in ("010", "140", "040", "070", "090", "220", "240", "161", "200", "071", "131", "080", "145", "160", "170"):
                rec.get_item(item)
            n += 1
    return n


def libasterix_encode062(fields: np.ndarray) -> bytes:
    import asterix.generated as gen

    spec = gen.Cat_062_1_21
    recs = []
    for f in fields:
        recs.append(spec.cv_record.create({
            "010": (("SAC", 7), ("SIC", 9)), "015": 1, "070": (float(f["tod_s"]), "s"),
            "105": (("LAT", (float(f["lat_deg"]), "°")), ("LON", (float(f["lon_deg"]), "°"))),
            "185": (("VX", (float(f["vx_mps"]), "m/s")), ("VY", (float(f["vy_mps"]), "m/s"))),
            "060": int(f["mode_3a"]), "380": {"ADR": int(f["mode_s_address"])}, "040": int(f["track_number"]),
            "080": (int(f["mono"]) << 6 | int(f["tentative"]),), "136": (float(f["alt_m"]) / 30.48, "FL"),
        }))  # fmt: skip
    return b"".join(spec.create(recs[i : i + 30]).unparse().to_bytes() for i in range(0, len(recs), 30))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer records (a smoke run)")
    args = ap.parse_args(argv)
    n, n_ref, repeat = (50_000, 500, 3) if args.quick else (1_000_000, 5_000, 5)
    rng = np.random.default_rng(7)

    t48 = make_cat048(n, rng)
    data48 = b"".join(encode_cat048(t48))
    t21 = make_cat021(n, rng)
    data21 = b"".join(encode_cat021(t21))
    tracks = make_tracks(n, rng)
    first_ref = 1_767_225_600.0 + 43200.0

    # warm-up (compile or load the numba cache)
    decode(data48[:5000], first_ref_s=first_ref, final=False)
    decode(data21[:5000], first_ref_s=first_ref, final=False)
    encode_cat062(tracks_to_cat062(tracks[:10]), 7, 9)

    rows = {}

    def rate(name, count, fn, reps=repeat):
        wall, cpu = _timed(fn, reps)
        rows[name] = {"records": count, "wall_s": wall, "cpu_s": cpu, "per_s_wall": count / wall, "per_s_cpu": count / cpu}

    d48 = decode(data48, first_ref_s=first_ref)
    assert d48.counts["cat048"] == n and len(d48.errors) == 0
    rate("siap_decode_cat048", n, lambda: decode(data48, first_ref_s=first_ref))
    sites = Sites(sites=[Site(sac=25, sic=s, sensor_id=f"R{s}", partner="FRA", lat_deg=48, lon_deg=2) for s in np.unique(t48["sic"]).tolist()])
    rate("siap_cat048_to_plots", n, lambda: cat048_to_plots(d48.cat048, sites))
    rate("siap_decode_cat021", n, lambda: decode(data21, first_ref_s=first_ref))
    fields = tracks_to_cat062(tracks)
    rate("siap_encode_cat062", n, lambda: encode_cat062(fields, 7, 9))
    rate("siap_tracks_to_cat062_and_encode", n, lambda: encode_cat062(tracks_to_cat062(tracks), 7, 9))

    # a whole file source: pcap -> payloads -> decode -> plots -> time order (one core)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "feed.pcap"
        write_pcap(pcap, encode_cat048(t48), 1_767_225_600.0 + 30000)
        rate("siap_file_source_pcap_to_plots", n, lambda: AsterixFileSource(pcap, sites).read_all())

    # libasterix on the first n_ref records (whole blocks)
    ref48 = b"".join(encode_cat048(t48[:n_ref]))
    ref21 = b"".join(encode_cat021(t21[:n_ref]))
    rate("libasterix_decode_cat048", n_ref, lambda: libasterix_decode(ref48, 48), 1)
    rate("libasterix_decode_cat021", n_ref, lambda: libasterix_decode(ref21, 21), 1)
    rate("libasterix_encode_cat062", n_ref, lambda: libasterix_encode062(fields[:n_ref]), 1)

    ratios = {
        "decode_cat048": rows["siap_decode_cat048"]["per_s_cpu"] / rows["libasterix_decode_cat048"]["per_s_cpu"],
        "decode_cat021": rows["siap_decode_cat021"]["per_s_cpu"] / rows["libasterix_decode_cat021"]["per_s_cpu"],
        "encode_cat062": rows["siap_encode_cat062"]["per_s_cpu"] / rows["libasterix_encode_cat062"]["per_s_cpu"],
    }
    result = {
        "benchmark": "formats_asterix",
        "quick": args.quick,
        "n": n,
        "n_libasterix": n_ref,
        "bytes_cat048": len(data48),
        "results": rows,
        "speedup_cpu_vs_libasterix": ratios,
        "targets_per_s": {"decode_cat048": 200_000, "encode_cat062": 100_000},
        "machine": machine_info(),
        "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{'':36s} {'records':>9s} {'rec/s (wall)':>14s} {'rec/s (CPU)':>14s}")
    for k, r in rows.items():
        print(f"{k:36s} {r['records']:9d} {r['per_s_wall']:14,.0f} {r['per_s_cpu']:14,.0f}")
    for k, v in ratios.items():
        print(f"siap / libasterix {k}: {v:,.0f}x (CPU)")
    print(f"wrote {RESULTS}")
    return result


if __name__ == "__main__":
    main()
