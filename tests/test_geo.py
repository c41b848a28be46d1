"""siap.geo against pyproj's own transformers on random points worldwide."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from siap import geo


def _random_points(n, seed=0):
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    alt = rng.uniform(-100, 20_000, n)
    return lat, lon, alt


def test_geodetic_ecef_round_trip_under_a_millimetre():
    lat, lon, alt = _random_points(20_000)
    ecef = geo.geodetic_to_ecef(lat, lon, alt)
    lat2, lon2, alt2 = geo.ecef_to_geodetic(ecef)
    back = geo.geodetic_to_ecef(lat2, lon2, alt2)
    assert np.max(np.linalg.norm(back - ecef, axis=1)) < 1e-3
    assert np.max(np.abs(alt2 - alt)) < 1e-3


def test_ecef_matches_an_independent_closed_form():
    # WGS84 closed form (prime vertical radius of curvature), independent of PROJ.
    lat, lon, alt = _random_points(1000, seed=1)
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    la, lo = np.radians(lat), np.radians(lon)
    n = a / np.sqrt(1 - e2 * np.sin(la) ** 2)
    expected = np.stack(
        [(n + alt) * np.cos(la) * np.cos(lo), (n + alt) * np.cos(la) * np.sin(lo), (n * (1 - e2) + alt) * np.sin(la)],
        axis=1,
    )
    assert np.max(np.abs(geo.geodetic_to_ecef(lat, lon, alt) - expected)) < 1e-6


def test_enu_matches_proj_topocentric():
    lat, lon, alt = _random_points(300, seed=2)
    rng = np.random.default_rng(3)
    for i in range(0, 300, 30):
        frame = geo.LocalFrame(lat[i], lon[i], alt[i])
        pipeline = (
            "+proj=pipeline +step +proj=cart +ellps=WGS84 "
            f"+step +proj=topocentric +ellps=WGS84 +lat_0={float(lat[i])} +lon_0={float(lon[i])} +h_0={float(alt[i])}"
        )
        t = Transformer.from_pipeline(pipeline)
        tlat = lat[i] + rng.uniform(-3, 3, 50)
        tlat = np.clip(tlat, -89.9, 89.9)
        tlon = lon[i] + rng.uniform(-3, 3, 50)
        talt = rng.uniform(0, 15_000, 50)
        e, n, u = t.transform(tlon, tlat, talt)
        ours = frame.geodetic_to_enu(tlat, tlon, talt)
        assert np.max(np.abs(ours - np.stack([e, n, u], axis=1))) < 1e-3


def test_enu_round_trip_under_a_millimetre():
    frame = geo.LocalFrame(35.0, 139.0, 10.0)
    pts = np.random.default_rng(4).uniform(-500_000, 500_000, (1000, 3))
    assert np.max(np.abs(frame.ecef_to_enu(frame.enu_to_ecef(pts)) - pts)) < 1e-6


@settings(max_examples=200, deadline=None)
@given(
    r=st.floats(1.0, 500_000.0),
    az=st.floats(0.0, 2 * np.pi - 1e-9),
    el=st.floats(-1.5, 1.5),
)
def test_polar_round_trip(r, az, el):
    enu = geo.polar_to_enu(r, az, el)
    r2, az2, el2 = geo.enu_to_polar(enu)
    assert r2[0] == pytest.approx(r, rel=1e-12)
    assert el2[0] == pytest.approx(el, abs=1e-9)
    if abs(np.cos(el)) > 1e-6:
        d = (az2[0] - az + np.pi) % (2 * np.pi) - np.pi
        assert abs(d) < 1e-9


def test_azimuth_is_clockwise_from_north():
    r, az, el = geo.enu_to_polar(np.array([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]]))
    np.testing.assert_allclose(az, [np.pi / 2, 0.0, 3 * np.pi / 2])


def test_polar_ecef_round_trip_from_moving_sensors():
    rng = np.random.default_rng(5)
    lat = rng.uniform(-60, 60, 500)
    lon = rng.uniform(-180, 180, 500)
    alt = rng.uniform(0, 10_000, 500)
    r = rng.uniform(1_000, 400_000, 500)
    az = rng.uniform(0, 2 * np.pi, 500)
    el = rng.uniform(-0.1, 0.5, 500)
    ecef = geo.polar_to_ecef(r, az, el, lat, lon, alt)
    r2, az2, el2 = geo.ecef_to_polar(ecef, lat, lon, alt)
    np.testing.assert_allclose(r2, r, atol=1e-6)
    np.testing.assert_allclose(np.angle(np.exp(1j * (az2 - az))), 0, atol=1e-9)
    np.testing.assert_allclose(el2, el, atol=1e-9)


def test_radar_horizon_four_thirds_earth():
    # Classic rule: d_km ~= 4.12 (sqrt(h_r) + sqrt(h_t)) with heights in metres.
    d = geo.radar_horizon_range_m(30.0, 10_000.0)
    assert d / 1000 == pytest.approx(4.12 * (np.sqrt(30) + np.sqrt(10_000)), rel=0.01)
