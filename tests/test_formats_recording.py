"""Recording and replay (siap.formats.recording) and the `siap record` / `siap modes decode`
commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from siap import records
from siap.formats import modes, recording
from siap.picture import Picture

DATA = Path(__file__).parent / "data"
FLIGHT = DATA / "modes" / "full_flight_short_trim.jsonl.gz"
BEAST = DATA / "modes" / "sample_dump1090.bin"
SRC = Path(__file__).parents[1] / "src"


def _plots(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = records.empty_plots(n)
    p["time_s"] = 1.7e9 + np.sort(rng.uniform(0, 100, n))
    p["plot_id"] = np.arange(n)
    p["sensor_id"] = rng.choice(["JPN-R1", "USA-A1"], n)
    p["partner"] = "JPN"
    p["kind"] = records.MeasurementKind.RADAR_3D
    p["range_m"] = rng.uniform(1e3, 2e5, n)
    p["cov"] = np.eye(3) * rng.uniform(1, 2, (n, 1, 1))
    p["callsign"] = rng.choice(["", "ANA12", "JAL123"], n)
    p["label"] = "JPN//REL USA"
    return p


def _pictures() -> list[Picture]:
    out = []
    for k, t in enumerate([10.0, 15.0, 20.0]):
        for partner, kind, n in (("JPN", "coalition", 3 + k), ("USA", "own", 2), ("AUS", "coalition", 0)):
            tr = records.empty_tracks(n)
            tr["time_s"] = t
            tr["track_id"] = np.arange(n) + 100 * k
            tr["lat_deg"] = 35.0 + np.arange(n)
            tr["cov_ecef"] = np.eye(6) * (k + 1)
            tr["callsign"] = "X"
            tr["partner"] = partner
            out.append(Picture(partner, t, tr, kind))
    return out


def test_recorder_writes_row_groups_as_it_goes_and_reads_back(tmp_path):
    plots = _plots(2_500)
    rec = recording.Recorder(tmp_path / "rec", row_group_rows=1_000, metadata={"scenario": "unit"})
    for lo in range(0, len(plots), 333):
        rec.on_plots(plots[lo : lo + 333])
        assert rec._plots.pending_rows < 1_000  # bounded: at most one row group held
    for pic in _pictures():
        rec.on_picture(pic)
    manifest = rec.close()
    assert manifest["rows"] == {"plots": 2_500, "tracks": (3 + 4 + 5) + 3 * 2}
    assert manifest["scenario"] == "unit" and manifest["pictures"] == 9
    pf = pq.ParquetFile(tmp_path / "rec" / "plots.parquet")
    assert pf.num_row_groups == 3
    assert pf.schema_arrow.metadata[b"siap.dtype"] == b"plots"
    # the plots file is also a plain siap plots Parquet file
    back, meta = records.read_parquet(tmp_path / "rec" / "plots.parquet")
    assert back.tobytes() == plots.tobytes() and meta["scenario"] == "unit"
    batches = list(recording.read_plot_batches(tmp_path / "rec", batch_rows=700))
    assert [len(b) for b in batches] == [700, 700, 700, 400]
    assert records.concatenate(batches).tobytes() == plots.tobytes()


def test_pictures_read_back_in_order(tmp_path):
    pics = _pictures()
    with recording.Recorder(tmp_path, row_group_rows=4) as rec:
        for p in pics:
            rec.on_picture(p)
    got = list(recording.read_pictures(tmp_path))
    nonempty = [p for p in pics if len(p)]  # a picture without tracks leaves no rows
    assert [(p.partner, p.kind, p.time_s, len(p)) for p in got] == [(p.partner, p.kind, p.time_s, len(p)) for p in nonempty]
    for a, b in zip(got, nonempty, strict=True):
        assert a.tracks.tobytes() == b.tracks.tobytes()
    jpn = list(recording.read_pictures(tmp_path, partner="JPN", kind="coalition"))
    assert [p.time_s for p in jpn] == [10.0, 15.0, 20.0]


def test_late_plots_are_dropped_and_counted(tmp_path):
    plots = _plots(100)
    with recording.Recorder(tmp_path) as rec:
        rec.on_plots(plots[:50])
        rec.on_plots(plots[40:])  # 40..48 are older than the last recorded (49), 49 equals it
    assert rec.dropped["late_plot"] == 9
    back = records.concatenate(list(recording.read_plot_batches(tmp_path)))
    assert len(back) == 101 and np.all(np.diff(back["time_s"]) >= 0)


def test_replay_source_reads_recordings_parquet_and_mode_s_files(tmp_path):
    rx = modes.ReceiverConfig(lat_deg=49.0097, lon_deg=2.5479)
    batches = list(recording.replay_source(FLIGHT, receiver=rx))
    ref, _, _ = modes.decode_file(FLIGHT, rx)
    got = records.concatenate(batches)
    assert got.tobytes() == ref.tobytes()
    assert all(np.all(np.diff(b["time_s"]) >= 0) for b in batches)
    assert batches[0]["time_s"][0] <= batches[-1]["time_s"][-1]
    records.write_parquet(ref, tmp_path / "p.parquet")
    again = records.concatenate(list(recording.replay_source(tmp_path / "p.parquet", batch_rows=1000)))
    assert again.tobytes() == ref.tobytes()
    assert list(recording.replay_source(BEAST, receiver=modes.ReceiverConfig(lat_deg=43.6, lon_deg=1.4), start_time_s=1.58e9))
    from siap.errors import InputError

    with pytest.raises(InputError, match="needs a receiver"):
        recording.replay_source(FLIGHT)
    with pytest.raises(InputError, match="not a siap recording"):
        list(recording.read_plot_batches(tmp_path))
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(InputError, match="not a Parquet file"):
        list(recording.read_plot_batches(tmp_path / "bad.parquet"))


def siap(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "siap.cli", *args], capture_output=True, text=True, timeout=600, env=env)


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.slow
def test_modes_decode_command(tmp_path):
    out = tmp_path / "plots.parquet"
    proc = siap("modes", "decode", str(FLIGHT), "-o", str(out), "--receiver", "49.0097,2.5479,119", "--partner", "FRA")
    assert proc.returncode == 0, proc.stderr
    assert "frames 20722" in proc.stdout and "plots 8322" in proc.stdout and "dropped: none" in proc.stdout
    plots, meta = records.read_parquet(out)
    assert len(plots) == 8322 and meta["origin_lat_deg"] == "49.0097"
    # a file with bad lines: decoded, the bad lines named on stderr
    bad = tmp_path / "bad.jsonl"
    lines = FLIGHT.open("rb").read()
    import gzip

    text = gzip.decompress(lines).decode().splitlines()[:200]
    text[5] = "{oops"
    bad.write_text("\n".join(text) + "\n")
    proc = siap("modes", "decode", str(bad), "-o", str(tmp_path / "b.parquet"), "--receiver", "49,2.5")
    assert proc.returncode == 0, proc.stderr
    assert "dropped: bad_json 1" in proc.stdout
    assert f"{bad}: line 6: dropped (bad_json)" in proc.stderr
    # the plots feed the tracker command
    proc = siap("track", str(out), "-o", str(tmp_path / "tracks.parquet"))
    assert proc.returncode == 0, proc.stderr
    tracks, _ = records.read_parquet(tmp_path / "tracks.parquet")
    assert len(np.unique(tracks["track_id"])) <= 3 and len(tracks) > 100


def test_modes_decode_user_errors(tmp_path):
    _one_line_error(siap("modes", "decode", str(tmp_path / "x.bin"), "--receiver", "1,2"), "x.bin", "no such file")
    (tmp_path / "x.csv").write_text("a")
    _one_line_error(siap("modes", "decode", str(tmp_path / "x.csv"), "--receiver", "1,2"), "x.csv", "expected .bin")
    _one_line_error(siap("modes", "decode", str(BEAST), "--receiver", "100,2"), "--receiver", "LAT,LON")
    _one_line_error(siap("modes", "decode", str(BEAST), "--receiver", "1,2", "--start-time", "yesterday"), "--start-time")


@pytest.mark.slow
def test_record_command(tmp_path):
    out = tmp_path / "rec"
    proc = siap("record", str(DATA / "coalition_small.yaml"), "--policy", str(DATA / "coalition_small_policy.yaml"),
                "-o", str(out), "--duration-s", "60")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "recording.json").read_text())
    assert manifest["scenario"] == "coalition-small" and manifest["rows"]["plots"] > 100
    pics = list(recording.read_pictures(out))
    assert {p.kind for p in pics} == {"coalition", "own"} and {p.partner for p in pics} == {"JPN", "USA", "AUS"}
    assert sum(len(p) for p in pics) == manifest["rows"]["tracks"] > 0
    assert all(np.all(p.tracks["time_s"] == p.time_s) for p in pics)
    plots = records.concatenate(list(recording.read_plot_batches(out)))
    truth, _ = records.read_parquet(out / "truth.parquet")
    assert len(plots) == manifest["rows"]["plots"] and len(truth) == manifest["rows"]["truth"]
    assert set(plots["truth_id"][plots["truth_id"] >= 0]) <= set(truth["truth_id"])
    _one_line_error(siap("record", str(DATA / "coalition_small.yaml"), "-o", str(out)), "no built-in policy")
