"""ADS-B receiver model: who is reported, how often, how accurately (NACp), quantisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from siap import geo
from siap.records import MeasurementKind
from siap.scenario.models import Scenario
from siap.sensors.base import NACP_EPU_M, nacp_sigma_m
from siap.simulation import simulate

LAT0, LON0 = 35.0, 135.0
FT = 0.3048
GEOD = Geod(ellps="WGS84")


def leg(bearing, r0_km, r1_km, alt_m, **kw):
    lo0, la0, _ = GEOD.fwd(LON0, LAT0, bearing, r0_km * 1e3)
    lo1, la1, _ = GEOD.fwd(LON0, LAT0, bearing, r1_km * 1e3)
    d = {
        "type": "route",
        "waypoints": [
            {"lat_deg": la0, "lon_deg": lo0, "altitude_m": alt_m, "speed_kt": 420},
            {"lat_deg": la1, "lon_deg": lo1, "altitude_m": alt_m, "speed_kt": 420},
        ],
    }
    d.update(kw)
    return d


@pytest.fixture(scope="module")
def run():
    targets = [
        leg(0, 20, 150, 10000.3, nacp=8, mode_s_address="86D2A1", callsign="ANA1", mode_3a="1234"),
        leg(90, 20, 150, 8000, nacp=10),
        leg(180, 20, 150, 9000, nacp=9),
        leg(270, 20, 150, 9000, adsb_equipped=False),  # transponder only
        leg(45, 20, 150, 9000, cooperative=False),
        leg(135, 330, 450, 11000, nacp=9),  # beyond max range
        leg(225, 100, 200, 150, nacp=9),  # low: beyond the radio horizon
    ]
    sensors = [
        {
            "id": "ADSB",
            "type": "adsb_receiver",
            "partner": "JPN",
            "lat_deg": LAT0,
            "lon_deg": LON0,
            "alt_m": 20.0,
            "max_range_km": 300,
            "report_interval_s": 1.0,
            "jitter_s": 0.2,
            "reception_probability": 0.9,
        }
    ]
    s = Scenario.model_validate(
        {
            "name": "adsb",
            "start_time_utc": "2026-01-01T00:00:00Z",
            "duration_s": 600,
            "seed": 4,
            "origin": {"lat_deg": LAT0, "lon_deg": LON0},
            "partners": [{"id": "JPN"}],
            "sensors": sensors,
            "targets": targets,
        }
    )
    return s, simulate(s)


def test_nacp_table_matches_do260b():
    # DO-260B Table 2-70 EPU bounds: NACp 11 < 3 m, 10 < 10 m, 9 < 30 m, 8 < 0.05 NM, 7 < 0.1 NM
    assert NACP_EPU_M[8] == pytest.approx(0.05 * 1852) and NACP_EPU_M[7] == pytest.approx(0.1 * 1852)
    assert NACP_EPU_M[9] == 30.0 and NACP_EPU_M[10] == 10.0 and NACP_EPU_M[11] == 3.0
    # 95 % of a circular Gaussian lies within EPU: check by sampling
    rng = np.random.default_rng(1)
    sig = float(nacp_sigma_m(9)[0])
    e = sig * rng.standard_normal((200_000, 2))
    assert np.mean(np.hypot(e[:, 0], e[:, 1]) <= 30.0) == pytest.approx(0.95, abs=0.003)


def test_only_equipped_in_range_and_line_of_sight(run):
    s, res = run
    p = res.plots
    assert np.all(p["kind"] == MeasurementKind.ADSB)
    seen = set(np.unique(p["truth_id"]).tolist())
    assert seen == {0, 1, 2}
    # truth of the low target: beyond the 4/3-earth radio horizon all the time
    rec = res.truth[res.truth["truth_id"] == 6]
    r = np.linalg.norm(rec["pos_ecef_m"] - geo.geodetic_to_ecef(LAT0, LON0, 20.0)[0], axis=1)
    assert np.all(r > geo.radar_horizon_range_m(20.0, 150.0))
    t0 = p[p["truth_id"] == 0]
    assert np.all(t0["mode_s_address"] == 0x86D2A1) and np.all(t0["callsign"] == "ANA1") and np.all(t0["mode_3a"] == 0o1234)
    assert np.all(np.isnan(p["range_m"])) and np.all(p["sensor_alt_m"] == 20.0)


def test_report_rate_and_interval(run):
    s, res = run
    p = res.plots
    for tid in (0, 1, 2):
        t = np.sort(p["time_s"][p["truth_id"] == tid])
        rec = res.truth[res.truth["truth_id"] == tid]
        span = rec["time_s"][-1] - rec["time_s"][0]
        n_sent = span / 1.0
        expected = 0.9 * n_sent
        assert abs(len(t) - expected) < 4 * math.sqrt(n_sent * 0.9 * 0.1) + 3
        dt = np.diff(t)
        assert dt.min() >= 0.8 - 1e-9  # 1 s - 0.2 s jitter
        assert np.median(dt) == pytest.approx(1.0, abs=0.1)
        # gaps are whole numbers of intervals: missed receptions
        assert np.mean(dt > 1.25) == pytest.approx(0.1, abs=0.05)


def test_position_noise_follows_nacp(run):
    s, res = run
    p = res.plots
    for tid, nacp in ((0, 8), (1, 10), (2, 9)):
        q = p[p["truth_id"] == tid]
        rec = res.truth[res.truth["truth_id"] == tid]
        pos = np.stack([np.interp(q["time_s"], rec["time_s"], rec["pos_ecef_m"][:, j]) for j in range(3)], axis=1)
        lat, lon, alt = geo.ecef_to_geodetic(pos)
        meas = geo.geodetic_to_ecef(q["lat_deg"], q["lon_deg"], alt)
        d = np.einsum("nij,nj->ni", geo.enu_rotation(lat, lon), meas - pos)
        sigma = NACP_EPU_M[nacp] / math.sqrt(-2 * math.log(0.05))
        n = len(q)
        for j in (0, 1):
            assert abs(np.mean(d[:, j])) < 4 * sigma / math.sqrt(n) + 0.05
            assert abs(np.std(d[:, j]) / sigma - 1) < 4 / math.sqrt(2 * n) + 0.01
        np.testing.assert_allclose(q["cov"][:, 0, 0], sigma**2)
        np.testing.assert_allclose(q["cov"][:, 1, 1], sigma**2)
        assert np.all(q["cov"][:, 2, 2] == pytest.approx((25 * FT) ** 2 / 12))
        # altitude: 25 ft steps, within half a step of the truth
        alt_ft = q["alt_m"] / FT
        np.testing.assert_allclose(alt_ft / 25, np.round(alt_ft / 25), atol=1e-6)
        assert np.all(np.abs(q["alt_m"] - alt) <= 12.5 * FT + 1e-3)
    info = res.sensors[0]
    assert info.kind == MeasurementKind.ADSB and info.scan_period_s == 1.0
    assert info.sigmas["horizontal_m_nacp9"] == pytest.approx(30 / 2.4477, rel=1e-4)
    assert res.counts["ADSB"]["plots"] == len(p) and res.counts["ADSB"]["false_alarms"] == 0
