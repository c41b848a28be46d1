"""Plot conversion into the tracker frame (siap.tracking.measurements.Geometry.prepare, compiled:
kernels.plots.radar_sites / kernels.plots.plots_to_local) against the batched NumPy formulation
it replaced,
on random mixed plots: 3D radar, 2D radar with and without Mode C, ADS-B, ground and moving
(airborne) sensor sites, interleaved."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.geo import enu_rotation, geodetic_to_ecef
from siap.records import MeasurementKind, empty_plots
from siap.tracking import TrackerConfig
from siap.tracking.kernels.plots import radar_sites
from siap.tracking.measurements import Geometry

RADAR_3D = int(MeasurementKind.RADAR_3D)
RADAR_2D = int(MeasurementKind.RADAR_2D)
ADSB = int(MeasurementKind.ADSB)


# ---- reference: the NumPy formulation the kernels replaced
def _numpy_prepare(g: Geometry, plots: np.ndarray) -> dict[str, np.ndarray]:
    m = len(plots)
    kind = plots["kind"].astype(np.int64)
    isa, is2 = kind == ADSB, kind == RADAR_2D
    cov = np.array(plots["cov"], dtype=float)
    alt = plots["alt_m"]
    has_alt = is2 & np.isfinite(alt) & np.isfinite(cov[:, 2, 2])
    out = {
        "z": np.zeros((m, 3)),
        "R": np.zeros((m, 3, 3)),
        "site": np.zeros((m, 3)),
        "rot": np.broadcast_to(np.eye(3), (m, 3, 3)).copy(),
        "pos": np.zeros((m, 3)),
        "pos_cov": np.zeros((m, 3, 3)),
        "has_alt": has_alt,
        "dim": np.where(is2 & ~has_alt, 2, 3),
    }
    ir = np.flatnonzero(~isa)
    if len(ir):
        slat, slon = plots["sensor_lat_deg"][ir], plots["sensor_lon_deg"][ir]
        salt = plots["sensor_alt_m"][ir]
        site = (geodetic_to_ecef(slat, slon, salt) - g.origin_ecef) @ g.E.T
        T = enu_rotation(slat, slon) @ g.E.T  # tracker ENU -> sensor ENU
        r = plots["range_m"][ir]
        az = np.mod(plots["azimuth_rad"][ir], 2 * np.pi)
        el = np.array(plots["elevation_rad"][ir], dtype=float)
        two, ha = is2[ir], has_alt[ir]
        a_r = np.where(ha, alt[ir], 0.0)
        ht = np.where(ha, a_r, g.default_alt)
        rs, rt = g.re + salt, g.re + ht
        s = (rt * rt - rs * rs - r * r) / (2 * r * rs)
        el = np.where(two, np.arcsin(np.clip(s, -1.0, 1.0)), el)
        c = cov[ir].copy()
        off = two & ~ha
        c[off, 2, :] = 0.0
        c[off, :, 2] = 0.0
        c[off, 2, 2] = 1.0
        R = 0.5 * (c + np.swapaxes(c, 1, 2))
        ce, se, ca, sa = np.cos(el), np.sin(el), np.cos(az), np.sin(az)
        d = np.stack([r * ce * sa, r * ce * ca, r * se], axis=1)
        J = np.zeros((len(ir), 3, 3))
        J[:, 0] = np.stack([ce * sa, r * ce * ca, -r * se * sa], axis=1)
        J[:, 1] = np.stack([ce * ca, -r * ce * sa, -r * se * ca], axis=1)
        J[:, 2] = np.stack([se, np.zeros_like(r), r * ce], axis=1)
        alt_var = np.where(ha, c[:, 2, 2], g.default_alt_var)
        c[two, 2, :] = 0.0
        c[two, :, 2] = 0.0
        c[two, 2, 2] = (alt_var / np.maximum(r * ce, 1.0) ** 2)[two]
        cs = J @ c @ np.swapaxes(J, 1, 2)
        Tt = np.swapaxes(T, 1, 2)
        out["z"][ir] = np.stack([r, az, np.where(two, a_r, el)], axis=1)
        out["R"][ir] = R
        out["site"][ir] = site
        out["rot"][ir] = T
        out["pos"][ir] = site + (Tt @ d[:, :, None])[:, :, 0]
        out["pos_cov"][ir] = Tt @ cs @ T
    ia = np.flatnonzero(isa)
    if len(ia):
        lat, lon = plots["lat_deg"][ia], plots["lon_deg"][ia]
        p = (geodetic_to_ecef(lat, lon, alt[ia]) - g.origin_ecef) @ g.E.T
        A = g.E @ np.swapaxes(enu_rotation(lat, lon), 1, 2)
        c = A @ cov[ia] @ np.swapaxes(A, 1, 2)
        c = 0.5 * (c + np.swapaxes(c, 1, 2))
        out["z"][ia] = out["pos"][ia] = p
        out["R"][ia] = out["pos_cov"][ia] = c
    return out


def _random_plots(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pl = empty_plots(n)
    pl["time_s"] = np.sort(rng.uniform(0, 10, n))
    pl["plot_id"] = np.arange(n)
    kind = rng.choice([RADAR_3D, RADAR_2D, ADSB], n)
    pl["kind"] = kind
    # a few ground sites, interleaved, and one airborne sensor whose site moves every plot
    sites = np.array([[34.0, 134.0, 120.0], [36.5, 136.0, 40.0], [35.2, 133.1, 900.0]])
    which = rng.integers(0, 4, n)
    s = sites[np.minimum(which, 2)].copy()
    air = which == 3
    s[air] = [35.5, 135.5, 9000.0] + rng.normal(0, 0.01, (air.sum(), 3)) * [1, 1, 100]
    pl["sensor_lat_deg"], pl["sensor_lon_deg"], pl["sensor_alt_m"] = s.T
    pl["sensor_id"] = np.array(["G0", "G1", "G2", "AIR"])[which]
    pl["range_m"] = rng.uniform(2e3, 300e3, n)
    pl["azimuth_rad"] = rng.uniform(-1.0, 7.5, n)  # outside [0, 2 pi) too
    pl["elevation_rad"] = np.where(kind == RADAR_3D, rng.uniform(-0.05, 0.4, n), np.nan)
    pl["lat_deg"] = rng.uniform(33.0, 37.0, n)
    pl["lon_deg"] = rng.uniform(133.0, 137.0, n)
    pl["alt_m"] = rng.uniform(100.0, 12000.0, n)
    mode_c = rng.random(n) < 0.5
    pl["alt_m"][(kind == RADAR_2D) & ~mode_c] = np.nan
    B = rng.normal(size=(n, 3, 3)) * rng.uniform(1, 50, (n, 1, 1))
    cov = B @ np.swapaxes(B, 1, 2) + np.eye(3)
    radar_cov = np.zeros((n, 3, 3))
    radar_cov[:, 0, 0] = rng.uniform(20, 80, n) ** 2
    radar_cov[:, 1, 1] = rng.uniform(1e-3, 4e-3, n) ** 2
    radar_cov[:, 2, 2] = np.where(kind == RADAR_3D, rng.uniform(3e-3, 8e-3, n) ** 2, 30.0**2)
    radar_cov[:, 0, 1] = radar_cov[:, 1, 0] = 0.1 * np.sqrt(radar_cov[:, 0, 0] * radar_cov[:, 1, 1])
    cov = np.where((kind == ADSB)[:, None, None], cov, radar_cov)
    cov[(kind == RADAR_2D) & ~mode_c, 2, 2] = np.nan
    pl["cov"] = cov
    pl["mode_s_address"] = np.where(rng.random(n) < 0.5, rng.integers(0, 2**24, n), -1)
    pl["mode_3a"] = np.where(rng.random(n) < 0.5, rng.integers(0, 4096, n), -1)
    pl["callsign"] = np.where(rng.random(n) < 0.3, "JAL123", "")
    return pl


def _assert_prepared_equal(out: np.ndarray, ref: dict, plots: np.ndarray, sensor: np.ndarray):
    for f in ("has_alt", "dim"):
        np.testing.assert_array_equal(out[f], ref[f], err_msg=f)
    np.testing.assert_array_equal(out["kind"], plots["kind"])
    np.testing.assert_array_equal(out["time_s"], plots["time_s"])
    np.testing.assert_array_equal(out["plot_id"], plots["plot_id"])
    np.testing.assert_array_equal(out["mode_s"], plots["mode_s_address"])
    np.testing.assert_array_equal(out["mode_3a"], plots["mode_3a"])
    np.testing.assert_array_equal(out["callsign"], plots["callsign"])
    np.testing.assert_array_equal(out["sensor"], sensor)
    for f in ("z", "site", "pos"):
        np.testing.assert_allclose(out[f], ref[f], rtol=1e-13, atol=1e-9, err_msg=f)
    np.testing.assert_allclose(out["rot"], ref["rot"], rtol=0, atol=1e-15)
    for f in ("R", "pos_cov"):
        scale = np.abs(ref[f]).max(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(out[f] / scale, ref[f] / scale, rtol=0, atol=1e-13, err_msg=f)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 60))
def test_prepare_equals_numpy_formulation(seed, n):
    g = Geometry(TrackerConfig(origin_lat_deg=35.0, origin_lon_deg=135.0, origin_alt_m=50.0))
    plots = _random_plots(seed, n)
    sensor = np.arange(n, dtype=np.int64) % 3
    out = g.prepare(plots, sensor)
    _assert_prepared_equal(out, _numpy_prepare(g, plots), plots, sensor)


def test_prepare_single_kind_batches():
    """All ADS-B, all radar, and empty batches."""
    g = Geometry(TrackerConfig(origin_lat_deg=35.0, origin_lon_deg=135.0))
    plots = _random_plots(5, 200)
    for sel in (plots["kind"] == ADSB, plots["kind"] != ADSB, np.zeros(200, bool)):
        sub = plots[sel]
        sensor = np.zeros(len(sub), np.int64)
        out = g.prepare(sub, sensor)
        assert len(out) == len(sub)
        if len(sub):
            _assert_prepared_equal(out, _numpy_prepare(g, sub), sub, sensor)


def test_radar_sites_first_appearance_order():
    kind = np.array([ADSB, RADAR_3D, RADAR_3D, ADSB, RADAR_2D, RADAR_3D, RADAR_2D, ADSB], np.uint8)
    lat = np.array([9.0, 1.0, 1.0, 9.0, 2.0, 1.0, 3.0, 9.0])
    lon = np.array([9.0, 1.0, 1.0, 9.0, 2.0, 1.0, 3.0, 9.0])
    alt = np.array([9.0, 1.0, 1.0, 9.0, 2.0, 1.0, 3.0, 9.0])
    sites, inv = radar_sites(kind, lat, lon, alt)
    np.testing.assert_array_equal(sites, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    np.testing.assert_array_equal(inv, [-1, 0, 0, -1, 1, 0, 2, -1])
    # same as np.unique over the radar rows, relabelled by first appearance
    rng = np.random.default_rng(1)
    k = rng.choice([RADAR_3D, RADAR_2D, ADSB], 500).astype(np.uint8)
    a = rng.integers(0, 4, (500, 3)).astype(float)
    sites, inv = radar_sites(k, a[:, 0], a[:, 1], a[:, 2])
    r = k != ADSB
    np.testing.assert_array_equal(inv[~r], -1)
    np.testing.assert_array_equal(sites[inv[r]], a[r])
    assert len(sites) == len(np.unique(a[r], axis=0))
    first = [np.flatnonzero(r & (a == s).all(axis=1))[0] for s in sites]
    assert first == sorted(first)
