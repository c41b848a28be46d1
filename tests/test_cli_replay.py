"""`siap replay`: recordings (ASTERIX file, Mode S file) played into the live runtime, with the
outputs attached as runtime sinks (CAT062 per partner to a file, CoT per partner over UDP, a
Parquet recording); every bad option or file is one line and exit code 2."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_formats_asterix_encode import _libasterix_records

from siap import records
from siap.formats import cot
from siap.formats.recording import read_manifest, read_pictures

DATA = Path(__file__).parent / "data"
SCENARIO = DATA / "coalition_small.yaml"
POLICY = DATA / "coalition_small_policy.yaml"
FLIGHT = DATA / "modes" / "full_flight_short_trim.jsonl.gz"


def siap(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siap.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """coalition_small (60 s) as a raw ASTERIX file: USA-R1 as CAT048, AUS-ADSB as CAT021."""
    from siap.formats.asterix import (
        encode_cat021,
        encode_cat048,
        load_sites,
        plots_to_cat021,
        plots_to_cat048,
    )
    from siap.records import MeasurementKind
    from siap.scenario import load_scenario
    from siap.simulation import simulate

    tmp = tmp_path_factory.mktemp("replay")
    sc = load_scenario(SCENARIO).model_copy(update={"duration_s": 60.0})
    sim = simulate(sc)
    sens = {s.id: s for s in sim.sensors}
    sites = {"sites": [
        {"sac": 1, "sic": 1, "sensor_id": "USA-R1", "partner": "USA", "lat_deg": sens["USA-R1"].lat_deg,
         "lon_deg": sens["USA-R1"].lon_deg, "alt_m": sens["USA-R1"].alt_m},
        {"sac": 1, "sic": 2, "sensor_id": "AUS-ADSB", "partner": "AUS", "kind": "adsb",
         "lat_deg": sens["AUS-ADSB"].lat_deg, "lon_deg": sens["AUS-ADSB"].lon_deg},
    ]}  # fmt: skip
    (tmp / "sites.yaml").write_text(yaml.safe_dump(sites))
    site_cfg = load_sites(tmp / "sites.yaml")
    p = sim.plots
    r2 = p[(p["sensor_id"] == "USA-R1") & (p["kind"] == MeasurementKind.RADAR_2D)]
    ad = p[p["sensor_id"] == "AUS-ADSB"]
    blocks = encode_cat048(plots_to_cat048(r2, site_cfg)) + encode_cat021(plots_to_cat021(ad, site_cfg))
    (tmp / "feed.ast").write_bytes(b"".join(blocks))
    date = dt.datetime.fromtimestamp(float(p["time_s"][0]), dt.UTC).date().isoformat()
    return tmp, date, len(r2) + len(ad)


@pytest.mark.slow
def test_replay_asterix_to_cat062_cot_and_a_recording(feed, tmp_path):
    folder, date, n_plots = feed
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    proc = siap("replay", str(folder / "feed.ast"), "--sites", str(folder / "sites.yaml"), "--date", date,
                "--policy", str(POLICY), "--speed", "200", "--update-s", "2",
                "--cat062", f"USA={tmp_path / 'usa.ast'}", "--cot", f"AUS=udp://127.0.0.1:{rx.getsockname()[1]}",
                "--record", str(tmp_path / "rec"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{n_plots} plots of AUS-ADSB, USA-R1" in proc.stdout
    assert f"plots released {n_plots}, dropped 0" in proc.stdout
    # the recording holds the plots and every partner's pictures (coalition and own; JPN has
    # no sensor in this feed, so its own pictures are empty, and an empty picture has no rows)
    manifest = read_manifest(tmp_path / "rec")
    assert manifest["rows"]["plots"] == n_plots and manifest["policy"] == "coalition-small"
    pictures = list(read_pictures(tmp_path / "rec"))
    kinds = {(p.partner, p.kind) for p in pictures}
    assert kinds == {("JPN", "coalition"), ("USA", "coalition"), ("AUS", "coalition"), ("USA", "own"), ("AUS", "own")}
    usa = [p for p in pictures if p.partner == "USA" and p.kind == "coalition"]
    # CAT062 carries USA's coalition pictures, and only those: one record per track row
    recs = _libasterix_records((tmp_path / "usa.ast").read_bytes())
    assert len(recs[62]) == sum(len(p) for p in usa) > 0
    # an end of batch per picture (the recording leaves out empty pictures: the first ones)
    assert sum(1 for r in recs[65] if r.get_item("000").as_uint() == 2) >= len(usa)
    # CoT: AUS's picture (the sink sends the newest picture when it is free: some may be skipped)
    events = []
    try:
        while True:
            events.extend(cot.parse_cot(rx.recv(65536)))
    except TimeoutError:
        pass
    rx.close()
    assert events and all(e["uid"].startswith("siap.AUS.") for e in events)
    aus_ids = {f"siap.AUS.{int(t)}" for p in pictures if p.partner == "AUS" and p.kind == "coalition" for t in p.tracks["track_id"]}
    assert {e["uid"] for e in events} <= aus_ids


@pytest.mark.slow
def test_replay_a_mode_s_file(tmp_path):
    policy = {"policy": "fra", "label_policy": "SIAP", "partners": {"FRA": {
        "clearance": "SECRET", "track_label": "SIAP//UNCLASSIFIED",
        "sensors": {"rx-cdg": {"label": "SIAP//UNCLASSIFIED", "share_plots": True}}}}}  # fmt: skip
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    proc = siap("replay", str(FLIGHT), "--receiver", "49.0097,2.5479,119", "--receiver-id", "rx-cdg",
                "--partner", "FRA", "--policy", str(tmp_path / "policy.yaml"), "--speed", "10000", "--update-s", "10",
                "--record", str(tmp_path / "rec"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    n = int(proc.stdout.split(" plots of rx-cdg")[0].rsplit(" ", 1)[-1])
    assert n > 100 and f"plots released {n}, dropped 0" in proc.stdout
    plots, _ = records.read_parquet(tmp_path / "rec" / "plots.parquet", records.PLOT_DTYPE)
    assert len(plots) == n and np.all(np.diff(plots["time_s"]) >= 0)
    fra = [p for p in read_pictures(tmp_path / "rec", partner="FRA", kind="coalition")]
    assert max(len(p.confirmed()) for p in fra) >= 1  # the tracker follows the aircraft


@pytest.mark.slow  # eleven processes
def test_replay_user_errors_are_one_line(feed, tmp_path):
    folder, date, _ = feed
    ast, sites = str(folder / "feed.ast"), str(folder / "sites.yaml")
    base = [ast, "--sites", sites, "--date", date, "--policy", str(POLICY)]
    _one_line_error(siap("replay", str(tmp_path / "nosuch.ast")), "nosuch.ast: no such file")
    _one_line_error(siap("replay", str(SCENARIO)), "coalition_small.yaml: expected a siap recording")
    _one_line_error(siap("replay", ast, "--policy", str(POLICY)), "feed.ast", "needs --sites")
    _one_line_error(siap("replay", str(FLIGHT), "--policy", str(POLICY)), "needs --receiver")
    _one_line_error(siap("replay", *base, "--cat062", "USA"), "--cat062 'USA'", "PARTNER=DESTINATION")
    _one_line_error(siap("replay", *base, "--cat062", "FRA=x.ast"), "no partner 'FRA'")
    _one_line_error(siap("replay", *base, "--cot", "AUS=http://127.0.0.1:80"), "udp://HOST:PORT or tcp://HOST:PORT")
    _one_line_error(siap("replay", *base, "--cot", "AUS=udp://127.0.0.1:0"), "port 1..65535")
    _one_line_error(siap("replay", *base, "--speed", "0"), "--speed")
    _one_line_error(siap("replay", ast, "--sites", sites, "--date", date, "--policy", "pacific"),
                    "sensor 'AUS-ADSB' is not declared in policy pacific")
    _one_line_error(siap("replay", ast, "--sites", sites, "--date", date), "feed.ast: no built-in policy", "--policy")
