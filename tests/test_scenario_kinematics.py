"""Synthetic target kinematics: legs, coordinated turns, climbs, orbits, traffic, truth grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from siap import geo
from siap.records import TRUTH_DTYPE
from siap.scenario import build_truth
from siap.scenario.models import Scenario

G = Geod(ellps="WGS84")


def scenario(targets, duration=600.0, seed=5, step=1.0) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "k",
            "start_time_utc": "2026-01-01T00:00:00Z",
            "duration_s": duration,
            "seed": seed,
            "truth_step_s": step,
            "origin": {"lat_deg": 35.0, "lon_deg": 135.0},
            "partners": [{"id": "JPN"}],
            "sensors": [
                {"id": "A", "type": "adsb_receiver", "partner": "JPN", "lat_deg": 35.0, "lon_deg": 135.0}
            ],
            "targets": targets,
        }
    )


def wp(lat, lon, alt_m, spd):
    return {"lat_deg": lat, "lon_deg": lon, "altitude_m": alt_m, "speed_mps": spd}


def track_of(grid, i):
    a = grid.alive[i]
    return grid.times_s[a], grid.lat_deg[i, a], grid.lon_deg[i, a], grid.alt_m[i, a], grid.vel_ecef_mps[i, a], grid.pos_ecef_m[i, a]


def test_constant_velocity_leg_follows_geodesic():
    s = scenario([{"type": "route", "waypoints": [wp(35.0, 135.0, 9000, 230), wp(37.0, 136.0, 9000, 230)]}])
    g = build_truth(s)
    t, lat, lon, alt, vel, pos = track_of(g, 0)
    _, _, d = G.inv(np.full(len(t), 135.0), np.full(len(t), 35.0), lon, lat)
    np.testing.assert_allclose(d, 230.0 * (t - t[0]), rtol=2e-3, atol=5)
    np.testing.assert_allclose(alt, 9000.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vel, axis=1), 230.0, rtol=1e-6)
    # cross-track distance from the geodesic start -> end stays small
    az_line, _, _ = G.inv(135.0, 35.0, 136.0, 37.0)
    az_pt, _, _ = G.inv(np.full(len(t), 135.0), np.full(len(t), 35.0), lon[1:].tolist() + [lon[-1]], lat[1:].tolist() + [lat[-1]])
    xt = d[1:] * np.sin(np.radians(np.asarray(az_pt)[:-1] - az_line))
    assert np.max(np.abs(xt)) < 300.0


def test_velocity_is_derivative_of_position():
    s = scenario(
        [
            {"type": "route", "bank_deg": 30, "waypoints": [wp(35, 135, 3000, 200), wp(35.5, 135, 6000, 220), wp(35.5, 135.6, 6000, 180)]},
            {"type": "orbit", "lat_deg": 35.2, "lon_deg": 135.2, "radius_km": 15, "altitude_ft": 10000, "speed_kt": 300},
        ]
    )
    g = build_truth(s)
    for i in range(g.n_targets):
        t, _, _, _, vel, pos = track_of(g, i)
        # integration is trapezoidal: each step's displacement is the mean of its end velocities
        fd = (pos[1:] - pos[:-1]) / np.diff(t)[:, None]
        np.testing.assert_allclose(fd, 0.5 * (vel[1:] + vel[:-1]), atol=0.05)


def test_coordinated_turn_rate_and_climb():
    bank, v = 30.0, 200.0
    s = scenario([{"type": "route", "bank_deg": bank, "waypoints": [wp(35, 135, 3000, v), wp(35.5, 135, 6000, v), wp(35.5, 136.0, 6000, v)]}], duration=900)
    g = build_truth(s)
    t, lat, lon, alt, vel, pos = track_of(g, 0)
    rot = geo.enu_rotation(lat, lon)
    venu = np.einsum("nij,nj->ni", rot, vel)
    hdg = np.unwrap(np.arctan2(venu[:, 0], venu[:, 1]))
    rate = np.diff(hdg) / np.diff(t)
    omega = 9.80665 * np.tan(np.radians(bank)) / v  # coordinated turn
    assert np.max(np.abs(rate)) == pytest.approx(omega, rel=0.03)
    assert hdg[-1] - hdg[0] == pytest.approx(np.pi / 2, abs=np.radians(2))
    # climbs from 3000 m to 6000 m on the first leg and holds it
    assert np.all(np.diff(alt) >= -0.05) and alt.max() < 6000 + 5
    _, _, d_wp1 = G.inv(lon, lat, np.full(len(t), 135.0), np.full(len(t), 35.5))
    k = np.argmin(d_wp1)
    assert alt[k] == pytest.approx(6000, abs=150)
    assert alt[-1] == pytest.approx(6000, abs=1)


def test_orbit_radius_and_racetrack_repeat():
    s = scenario(
        [
            {"type": "orbit", "lat_deg": 35.0, "lon_deg": 135.0, "radius_km": 30, "altitude_ft": 20000, "speed_kt": 300, "cooperative": False},
            {"type": "racetrack", "lat_deg": 35.0, "lon_deg": 136.0, "heading_deg": 90, "leg_length_km": 40, "turn_radius_km": 10, "altitude_ft": 15000, "speed_kt": 250},
        ],
        duration=1500,
    )
    g = build_truth(s)
    t, lat, lon, *_ = track_of(g, 0)
    _, _, d = G.inv(np.full(len(t), 135.0), np.full(len(t), 35.0), lon, lat)
    assert np.all(np.abs(d - 30e3) < 0.02 * 30e3)
    t, lat, lon, *_ = track_of(g, 1)
    _, _, d0 = G.inv(np.full(len(t), 136.0), np.full(len(t), 35.0), lon, lat)
    # laps: 2*40 km + 2*pi*10 km at 128.6 m/s -> ~1111 s; it comes back near its start
    late = t - t[0] > 900
    assert d0[late].min() < 3e3
    _, _, across = G.inv(np.full(len(t), 136.0), np.full(len(t), 35.0), lon, lat)
    assert across.max() < 40e3 + 2 * 10e3 + 3e3
    assert g.cooperative.tolist() == [False, True] and g.mode_s_address[0] == -1


def test_traffic_population_deterministic():
    tr = {
        "type": "traffic",
        "airports": ["RJTT", "RJBB", "RJFF", "RKSI", "ROAH"],
        "airliners": 30,
        "non_cooperative": 6,
        "manoeuvring": 6,
        "adsb_fraction": 0.5,
        "area": {"lat_min_deg": 30, "lat_max_deg": 36, "lon_min_deg": 128, "lon_max_deg": 136},
    }
    a = build_truth(scenario([tr], duration=300))
    b = build_truth(scenario([tr], duration=300))
    c = build_truth(scenario([tr], duration=300, seed=6))
    assert a.n_targets == 42
    np.testing.assert_array_equal(a.pos_ecef_m, b.pos_ecef_m)
    assert not np.array_equal(np.nan_to_num(a.pos_ecef_m), np.nan_to_num(c.pos_ecef_m))
    assert a.cooperative[:30].all() and not a.cooperative[30:36].any()
    assert (a.mode_s_address[:30] >= 0x400000).all() and (a.mode_s_address[30:36] == -1).all()
    assert 5 <= a.adsb_equipped[:30].sum() <= 25
    assert len(set(a.mode_s_address[:30])) == 30
    speeds = np.linalg.norm(a.vel_ecef_mps, axis=-1)[a.alive]
    assert np.nanmax(speeds) < 300 and np.nanmin(a.alt_m[a.alive]) > -1


def test_truth_records_sorted_at_step_multiples():
    s = scenario(
        [
            {"type": "route", "start_s": 7, "waypoints": [wp(35, 135, 3000, 150), wp(35.2, 135, 3000, 150)]},
            {"type": "orbit", "lat_deg": 35.2, "lon_deg": 135.2, "radius_km": 15, "altitude_ft": 10000, "speed_kt": 300},
        ],
        duration=200,
        step=2.0,
    )
    g = build_truth(s)
    tr = g.truth_records(2.0)
    assert tr.dtype == TRUTH_DTYPE
    rel = tr["time_s"] - s.start_time_s
    np.testing.assert_allclose(rel % 2.0, 0.0)
    key = rel * 10 + tr["truth_id"]
    assert np.all(np.diff(key) > 0)
    first0 = rel[tr["truth_id"] == 0].min()
    assert first0 == 8.0  # appears 7 s after start: first multiple of 2 s at or after it
    assert (tr["truth_id"] == 1).sum() == 101
    # ECEF and geodetic columns agree (pyproj)
    lat, lon, alt = geo.ecef_to_geodetic(tr["pos_ecef_m"])
    np.testing.assert_allclose(lat, tr["lat_deg"], atol=1e-9)
    np.testing.assert_allclose(alt, tr["alt_m"], atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(0, 198), u=st.floats(0, 1))
def test_hermite_interpolation_hits_grid_points(k, u):
    g = _GRID
    pos, vel, alt, ok = g.interp([0], [g.t0_s + k * g.dt_s])
    assert ok[0]
    np.testing.assert_allclose(pos[0], g.pos_ecef_m[0, k], atol=1e-6)
    np.testing.assert_allclose(vel[0], g.vel_ecef_mps[0, k], atol=1e-6)
    pos_u, _, _, _ = g.interp([0], [g.t0_s + (k + u) * g.dt_s])
    # between grid points the cubic leaves the chord by dt u (1 - u) (v0 - v1) / 2 when the
    # grid is trapezoidally consistent (p1 - p0 = dt (v0 + v1) / 2)
    mid = (1 - u) * g.pos_ecef_m[0, k] + u * g.pos_ecef_m[0, k + 1]
    dv = g.vel_ecef_mps[0, k] - g.vel_ecef_mps[0, k + 1]
    np.testing.assert_allclose(pos_u[0] - mid, g.dt_s * u * (1 - u) * dv / 2, atol=0.05)
    _, _, _, ok = g.interp([0], [g.t0_s - 1.0])
    assert not ok[0]


_GRID = build_truth(
    Scenario.model_validate(
        {
            "name": "h",
            "start_time_utc": "2026-01-01T00:00:00Z",
            "duration_s": 200,
            "origin": {"lat_deg": 35.0, "lon_deg": 135.0},
            "partners": [{"id": "JPN"}],
            "sensors": [{"id": "A", "type": "adsb_receiver", "partner": "JPN", "lat_deg": 35.0, "lon_deg": 135.0}],
            "targets": [{"type": "orbit", "lat_deg": 35.2, "lon_deg": 135.2, "radius_km": 8, "altitude_ft": 10000, "speed_kt": 300}],
        }
    )
)
