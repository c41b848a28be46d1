"""`siap asterix`: decode a capture, the simulate -> ASTERIX -> decode -> track -> CAT062 chain,
and user errors as one line with exit code 2."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import asterix.generated as gen
import numpy as np
import pytest
import yaml
from asterix.base import Bits, RawDatablock

from siap import records

DATA = Path(__file__).parent / "data"
SCENARIO = DATA / "coalition_small.yaml"


def siap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siap.cli", *args], capture_output=True, text=True, timeout=600)


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.slow
def test_decode_capture_prints_counts(tmp_path):
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump({"sites": [{"sac": 25, "sic": 201, "sensor_id": "R201", "partner": "FRA", "lat_deg": 48.7, "lon_deg": 2.4}]}))
    proc = siap("asterix", "decode", str(DATA / "cat_034_048.pcap"), "--sites", str(sites), "-o", str(tmp_path / "p.parquet"))
    assert proc.returncode == 0, proc.stderr
    assert "CAT048 128, CAT034 34" in proc.stdout and "25/204 (28)" in proc.stdout
    plots, _ = records.read_parquet(tmp_path / "p.parquet", records.PLOT_DTYPE)
    assert len(plots) == 28 and set(plots["sensor_id"]) == {"R201"}


@pytest.mark.slow
def test_simulate_asterix_decode_track_cat062_chain(tmp_path):
    sc = yaml.safe_load(SCENARIO.read_text())
    sens = {s["id"]: s for s in sc["sensors"]}
    sites = {"sites": [
        {"sac": 1, "sic": 1, "sensor_id": "USA-R1", "partner": "USA", "lat_deg": sens["USA-R1"]["lat_deg"],
         "lon_deg": sens["USA-R1"]["lon_deg"], "alt_m": sens["USA-R1"].get("alt_m", 0.0)},
        {"sac": 1, "sic": 2, "sensor_id": "AUS-ADSB", "partner": "AUS", "kind": "adsb", "lat_deg": sens["AUS-ADSB"]["lat_deg"],
         "lon_deg": sens["AUS-ADSB"]["lon_deg"]},
    ]}  # fmt: skip
    (tmp_path / "sites.yaml").write_text(yaml.safe_dump(sites))
    plots = tmp_path / "plots.parquet"
    assert siap("simulate", str(SCENARIO), "-o", str(plots)).returncode == 0
    sim, _ = records.read_parquet(plots, records.PLOT_DTYPE)
    proc = siap("asterix", "encode", str(plots), "--sites", str(tmp_path / "sites.yaml"), "-o", str(tmp_path / "feed.ast"))
    assert proc.returncode == 0, proc.stderr
    date = dt.datetime.fromtimestamp(float(sim["time_s"][0]), dt.UTC).date().isoformat()
    proc = siap("asterix", "decode", str(tmp_path / "feed.ast"), "--sites", str(tmp_path / "sites.yaml"),
                "--date", date, "-o", str(tmp_path / "decoded.parquet"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "dropped: none" in proc.stdout and "unknown SAC/SIC: none" in proc.stdout
    dec, _ = records.read_parquet(tmp_path / "decoded.parquet", records.PLOT_DTYPE)
    assert len(dec) == int(np.isin(sim["sensor_id"], ["USA-R1", "AUS-ADSB"]).sum())
    proc = siap("track", str(tmp_path / "decoded.parquet"), "-o", str(tmp_path / "tracks.parquet"))
    assert proc.returncode == 0, proc.stderr
    tracks, _ = records.read_parquet(tmp_path / "tracks.parquet", records.TRACK_DTYPE)
    assert len(tracks) > 0
    proc = siap("asterix", "tracks", str(tmp_path / "tracks.parquet"), "-o", str(tmp_path / "tracks.ast"))
    assert proc.returncode == 0, proc.stderr
    n062 = 0
    for db in RawDatablock.parse(Bits.from_bytes((tmp_path / "tracks.ast").read_bytes())):
        if db.get_category() == 62:
            recs = gen.Cat_062_1_21.cv_uap.parse(db.get_raw_records())
            assert not isinstance(recs, ValueError)
            n062 += len(recs)
    assert n062 == len(tracks)


@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path):
    _one_line_error(siap("asterix", "decode", str(tmp_path / "nope.ast")), "nope.ast", "no such file")
    _one_line_error(siap("asterix", "decode", str(DATA / "cat048.raw"), "--date", "2020-13-01"), "--date", "YYYY-MM-DD")
    bad = tmp_path / "sites.yaml"
    bad.write_text("sites: [{sac: 300}]")
    _one_line_error(siap("asterix", "decode", str(DATA / "cat048.raw"), "--sites", str(bad)), "sites.yaml", "sites[0].sac")


@pytest.mark.slow
def test_listen_records_a_udp_feed(tmp_path):
    import socket
    import time

    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump({"sites": [{"sac": 25, "sic": 201, "sensor_id": "R201", "partner": "FRA", "lat_deg": 48.7, "lon_deg": 2.4}]}))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    out = tmp_path / "live.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "siap.cli", "asterix", "listen", "--port", str(port), "--sites", str(sites),
         "--date", "2016-05-05", "--idle-timeout-s", "3", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    block = (DATA / "cat048.raw").read_bytes()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    deadline = time.time() + 60
    sent = 0
    while proc.poll() is None and time.time() < deadline and sent < 24:
        tx.sendto(block, ("127.0.0.1", port))  # until the listener is up, datagrams are lost
        sent += 1
        time.sleep(0.25)
    tx.close()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    plots, _ = records.read_parquet(out, records.PLOT_DTYPE)
    assert 1 <= len(plots) <= sent and set(plots["callsign"]) == {"DLH65A"}
    assert f"plots: {len(plots)}" in stdout
