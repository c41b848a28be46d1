"""Real trajectory loaders (traffic JSON, OpenSky CSV) and their interpolation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.errors import InputError
from siap.scenario import load_trajectories

DATA = Path(__file__).parent / "data"
PKG = Path(__file__).parents[1] / "src" / "siap" / "scenario" / "data" / "paris_2021-10-07_1300-1330.json.gz"
CSV = DATA / "trajectories_opensky_states.csv"


@pytest.fixture(scope="module")
def paris():
    return load_trajectories(PKG)


@pytest.fixture(scope="module")
def opensky():
    return load_trajectories(CSV)


def test_packaged_sample_is_small_and_loads(paris):
    assert PKG.stat().st_size < 1_000_000
    raw = json.loads(gzip.decompress(PKG.read_bytes()))
    n_on = sum(1 for r in raw if r["onground"])
    assert paris.dropped["onground"] == n_on
    kept = sum(len(f.time_s) for f in paris.flights)
    assert kept + paris.dropped["total"] == len(raw)
    assert len(paris) >= 50
    for f in paris.flights:
        assert np.all(np.diff(f.time_s) > 0)
        assert np.all(np.isfinite(f.alt_m)) and np.all(np.isfinite(f.vel_enu_mps))
        assert 47 < f.lat_deg.mean() < 51 and 0 < f.lon_deg.mean() < 5


def test_units_converted(paris):
    raw = pd.read_json(PKG)
    raw = raw[~raw.onground & raw.altitude.notna()]
    f = paris.flights[0]
    rows = raw[raw.icao24 == f.icao24].sort_values("timestamp")
    r = rows.iloc[3]
    t = r.timestamp.value / 1e9 if hasattr(r.timestamp, "value") else r.timestamp / 1000
    k = np.searchsorted(f.time_s, t)
    assert f.time_s[k] == pytest.approx(t)
    assert f.alt_m[k] == pytest.approx(r.altitude * 0.3048)
    gs = np.hypot(f.vel_enu_mps[k, 0], f.vel_enu_mps[k, 1])
    assert gs == pytest.approx(r.groundspeed * 1852 / 3600)
    trk = np.degrees(np.arctan2(f.vel_enu_mps[k, 0], f.vel_enu_mps[k, 1])) % 360
    assert trk == pytest.approx(r.track, abs=1e-6)
    assert f.vel_enu_mps[k, 2] == pytest.approx(r.vertical_rate * 0.3048 / 60)


def test_opensky_csv_drops_ground_rows_and_agrees_with_json(opensky, paris):
    raw = pd.read_csv(CSV)
    assert opensky.dropped["onground"] == int(raw.onground.sum()) == 122
    assert sum(len(f.time_s) for f in opensky.flights) == len(raw) - 122
    # the CSV was converted from the same source: states agree with the traffic sample
    byid = {f.icao24: f for f in paris.flights}
    n = 0
    for f in opensky.flights:
        g = byid[f.icao24]
        ts = f.time_s[(f.time_s >= g.time_s[0]) & (f.time_s <= g.time_s[-1])]
        ts = ts[np.isin(ts, g.time_s)]
        # where the velocity was reported (elsewhere it is derived from positions sampled
        # at 2 s vs 4 s, which need not agree)
        rep = raw[(raw.icao24 == f.icao24) & raw.velocity.notna() & ~raw.onground].time.to_numpy(float)
        ts = ts[np.isin(ts, rep)]
        a = f.interpolate(ts)
        b = g.interpolate(ts)
        np.testing.assert_allclose(a[0], b[0], atol=1e-5)
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
        np.testing.assert_allclose(a[2], b[2], atol=0.02)
        np.testing.assert_allclose(a[3], b[3], atol=0.05)
        n += len(ts)
    assert n > 50
    codes = {f.icao24: f.squawk for f in opensky.flights}
    assert codes["4d20e7"] == 0o657


@settings(max_examples=40, deadline=None)
@given(u=st.floats(0.0, 1.0), k=st.integers(0, 50))
def test_interpolation_is_linear_between_samples(paris, u, k):
    f = paris.flights[1]
    k = min(k, len(f.time_s) - 2)
    t = f.time_s[k] + u * (f.time_s[k + 1] - f.time_s[k])
    lat, lon, alt, vel, ok = f.interpolate([t])
    assert ok[0]
    assert lat[0] == pytest.approx((1 - u) * f.lat_deg[k] + u * f.lat_deg[k + 1], abs=1e-9)
    assert alt[0] == pytest.approx((1 - u) * f.alt_m[k] + u * f.alt_m[k + 1], abs=1e-6)
    assert vel[0, 1] == pytest.approx((1 - u) * f.vel_enu_mps[k, 1] + u * f.vel_enu_mps[k + 1, 1], abs=1e-6)
    _, _, _, _, ok = f.interpolate([f.time_s[0] - 1, f.time_s[-1] + 1])
    assert not ok.any()


def test_bad_rows_counted_and_bad_files_rejected(tmp_path):
    rows = [
        {"timestamp": 1633611600000 + 1000 * i, "icao24": "abc123", "callsign": "TEST1", "latitude": 48.0 + 0.001 * i,
         "longitude": 2.0, "altitude": 10000.0, "groundspeed": 300.0, "track": 0.0, "vertical_rate": 0.0,
         "squawk": 1000.0, "onground": False}
        for i in range(10)
    ]
    rows[2]["latitude"] = None
    rows[4]["altitude"] = None
    rows[6]["onground"] = True
    rows[7]["groundspeed"] = None  # kept: velocity taken from the positions
    rows.append(dict(rows[8]))  # duplicate time
    p = tmp_path / "t.json"
    p.write_text(json.dumps(rows))
    ts = load_trajectories(p)
    assert ts.dropped["bad_position"] == 1
    assert ts.dropped["bad_altitude"] == 1
    assert ts.dropped["onground"] == 1
    assert ts.dropped["duplicate_time"] == 1
    f = ts.flights[0]
    assert len(f.time_s) == 7 and f.squawk == 0o1000 and f.callsign == "TEST1"
    k = int(np.flatnonzero(f.time_s == 1633611607.0)[0])
    assert f.vel_enu_mps[k, 1] == pytest.approx(111.2, rel=0.01)  # 0.001 deg lat per s
    with pytest.raises(InputError):
        load_trajectories(tmp_path / "missing.json")
    (tmp_path / "x.csv").write_text("time,icao24\n1,abc123\n")
    with pytest.raises(InputError, match="column"):
        load_trajectories(tmp_path / "x.csv")


def test_trajectory_file_target_relative_to_scenario(tmp_path):
    """An OpenSky CSV declared in a scenario (path relative to the file) becomes truth."""
    import shutil

    import yaml

    from siap.scenario import build_truth, load_scenario

    shutil.copy(CSV, tmp_path / "states.csv")
    doc = {
        "name": "csv",
        "start_time_utc": "2021-10-07T13:00:00Z",
        "duration_s": 300,
        "origin": {"lat_deg": 48.86, "lon_deg": 2.35},
        "partners": [{"id": "AUS"}],
        "sensors": [{"id": "A", "type": "adsb_receiver", "partner": "AUS", "lat_deg": 48.86, "lon_deg": 2.35}],
        "targets": [{"type": "trajectory_file", "path": "states.csv", "format": "opensky_csv", "adsb_fraction": 1.0, "nacp": 10}],
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    s = load_scenario(tmp_path / "s.yaml")
    g = build_truth(s)
    ts = load_trajectories(CSV)
    assert g.n_targets == len(ts) == 4
    assert sorted(g.mode_s_address.tolist()) == sorted(int(f.icao24, 16) for f in ts.flights)
    assert g.adsb_equipped.all() and (g.nacp == 10).all()
    # the grid reproduces the recorded points at their own times (linear between samples)
    f = ts.flights[1]
    i = int(np.flatnonzero(g.mode_s_address == f.mode_s_address)[0])
    k = np.flatnonzero(g.alive[i])
    t = g.times_s[k]
    np.testing.assert_allclose(g.lat_deg[i, k], np.interp(t, f.time_s, f.lat_deg), atol=1e-9)
    np.testing.assert_allclose(g.alt_m[i, k], np.interp(t, f.time_s, f.alt_m), atol=1e-6)
    assert t[0] >= f.time_s[0] and t[-1] <= min(f.time_s[-1], s.end_time_s)


def test_parquet_reads_like_json(tmp_path, paris):
    df = pd.read_json(PKG)
    df.to_parquet(tmp_path / "p.parquet")
    pq = load_trajectories(tmp_path / "p.parquet")
    assert len(pq) == len(paris) and pq.dropped == paris.dropped
    for a, b in zip(pq.flights, paris.flights, strict=True):
        assert a.icao24 == b.icao24 and a.callsign == b.callsign
        np.testing.assert_allclose(a.time_s, b.time_s)
        np.testing.assert_allclose(a.lat_deg, b.lat_deg)
        np.testing.assert_allclose(a.vel_enu_mps, b.vel_enu_mps)


@pytest.mark.parametrize("flags", [("False", "True"), ("false", "true"), (0, 1), ("0", "1")])
def test_onground_given_as_strings_or_numbers(tmp_path, flags):
    off, on = flags
    rows = [
        {"timestamp": 1633611600000 + 1000 * i, "icao24": "abc123", "callsign": "TEST1", "latitude": 48.0 + 0.001 * i,
         "longitude": 2.0, "altitude": 10000.0, "groundspeed": 300.0, "track": 0.0, "vertical_rate": 0.0,
         "squawk": 1000.0, "onground": on if i == 3 else off}
        for i in range(6)
    ]
    p = tmp_path / "t.json"
    p.write_text(json.dumps(rows))
    ts = load_trajectories(p)
    assert ts.dropped["onground"] == 1
    assert len(ts.flights[0].time_s) == 5
