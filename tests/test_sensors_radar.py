"""Rotating radar model: Pd curve, false alarms, noise, biases, beam-crossing times, coverage,
SSR replies, airborne platform. Each test builds a small scenario and checks the plots'
statistics against what the scenario declares, using the truth records (not the simulator's
own interpolation) and pyproj-based geodesy from siap.geo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from siap import geo
from siap.records import PLOT_DTYPE, MeasurementKind
from siap.scenario.models import Scenario
from siap.sensors.base import apparent_elevation_rad, coverage_radius_m, swerling1_pd
from siap.simulation import simulate

LAT0, LON0 = 35.0, 135.0
FT = 0.3048


def make(sensors, targets, duration=600.0, seed=11) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "radar-test",
            "start_time_utc": "2026-01-01T00:00:00Z",
            "duration_s": duration,
            "seed": seed,
            "origin": {"lat_deg": LAT0, "lon_deg": LON0},
            "partners": [{"id": "JPN"}, {"id": "USA"}],
            "sensors": sensors,
            "targets": targets,
        }
    )


def radar(**kw):
    d = {
        "id": "R",
        "type": "ground_radar",
        "partner": "JPN",
        "lat_deg": LAT0,
        "lon_deg": LON0,
        "alt_m": 50.0,
        "scan_period_s": 4.0,
        "max_range_km": 350,
        "range_sigma_m": 0.0,
        "azimuth_sigma_deg": 0.0,
        "elevation_sigma_deg": 0.0,
        "detection": {"pd_at_ref_range": 0.8, "ref_range_km": 220, "pfa": 1e-6},
    }
    d.update(kw)
    return d


def orbit(radius_km, bearing, alt_ft=30000, coop=False, **kw):
    d = {
        "type": "orbit",
        "lat_deg": LAT0,
        "lon_deg": LON0,
        "radius_km": radius_km,
        "start_bearing_deg": bearing,
        "altitude_ft": alt_ft,
        "speed_kt": 300,
        "cooperative": coop,
    }
    d.update(kw)
    return d


def route(points, coop=False, speed_kt=450, **kw):
    """points: (bearing_deg, range_km, alt_m) from the radar site."""
    wps = []
    for b, r, a in points:
        lon, lat, _ = geo_fwd(b, r * 1e3)
        wps.append({"lat_deg": lat, "lon_deg": lon, "altitude_m": a, "speed_kt": speed_kt})
    d = {"type": "route", "waypoints": wps, "cooperative": coop}
    d.update(kw)
    return d


def geo_fwd(bearing, dist_m, lat=LAT0, lon=LON0):
    from pyproj import Geod

    return Geod(ellps="WGS84").fwd(lon, lat, bearing, dist_m)


def truth_at(truth, tid, t):
    """Independent linear interpolation of the truth records (1 s) in ECEF."""
    out = np.full((len(t), 3), np.nan)
    for i in np.unique(tid):
        rec = truth[truth["truth_id"] == i]
        m = tid == i
        for j in range(3):
            out[m, j] = np.interp(t[m], rec["time_s"], rec["pos_ecef_m"][:, j], left=np.nan, right=np.nan)
    return out


def residuals(res, plots, time_shift=0.0):
    pos = truth_at(res.truth, plots["truth_id"], plots["time_s"] - time_shift)
    r, az, el = geo.ecef_to_polar(pos, plots["sensor_lat_deg"], plots["sensor_lon_deg"], plots["sensor_alt_m"])
    return plots["range_m"] - r, np.angle(np.exp(1j * (plots["azimuth_rad"] - az))), plots["elevation_rad"] - el, (r, az, el)


# ------------------------------------------------------------------------------------------


def test_swerling1_pd_matches_monte_carlo():
    """Pd = Pfa^(1/(1+SNR)) against a direct simulation of a square-law detector on a
    Rayleigh-fluctuating target in complex Gaussian noise."""
    rng = np.random.default_rng(0)
    pfa, snr = 1e-3, 10.0
    n = 400_000
    thr = -math.log(pfa)  # noise power 1: |n|^2 ~ Exp(1)
    amp = np.sqrt(snr / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    noise = np.sqrt(0.5) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    pd_mc = np.mean(np.abs(amp + noise) ** 2 > thr)
    ref_range = 100e3
    pd_ref = pfa ** (1 / (1 + snr))
    assert swerling1_pd(ref_range, ref_range, pd_ref, pfa) == pytest.approx(pd_ref)
    assert pd_mc == pytest.approx(pd_ref, abs=4 * math.sqrt(pd_ref * (1 - pd_ref) / n))
    # r^-4: doubling the range divides SNR by 16
    assert swerling1_pd(2 * ref_range, ref_range, pd_ref, pfa) == pytest.approx(pfa ** (1 / (1 + snr / 16)))
    assert np.all(np.diff(swerling1_pd(np.linspace(1e3, 500e3, 50), ref_range, pd_ref, pfa)) < 0)


RADII = [120, 180, 220, 260, 300]


@pytest.fixture(scope="module")
def pd_run():
    targets = [orbit(r, (72 * i + b) % 360) for i, r in enumerate(RADII) for b in (0, 180)]
    s = make([radar()], targets, duration=1200)
    return s, simulate(s)


def test_detection_rate_follows_declared_pd_curve(pd_run):
    s, res = pd_run
    info = res.sensors[0]
    T = s.sensors[0].scan_period_s
    t0, t1 = s.start_time_s, s.end_time_s
    plots = res.plots
    for tid in range(len(RADII) * 2):
        rec = res.truth[res.truth["truth_id"] == tid]
        r, az, _ = geo.ecef_to_polar(rec["pos_ecef_m"], LAT0, LON0, 50.0)
        # crossings: beam angle swept minus the target's own azimuth travel (both clockwise)
        swept = 2 * np.pi * (t1 - t0) / T
        moved = np.unwrap(az)[-1] - np.unwrap(az)[0]
        n_cross = (swept - moved) / (2 * np.pi)
        pd = float(np.mean(info.pd_at_range(r)))
        k = int(np.sum(plots["truth_id"] == tid))
        tol = 4 * math.sqrt(n_cross * pd * (1 - pd)) + 2
        assert abs(k - pd * n_cross) <= tol, (tid, k, pd * n_cross, tol)
    # the falling curve is visible: far orbits detected clearly less often than near ones
    near = np.sum(plots["truth_id"] < 2)
    far = np.sum(plots["truth_id"] >= 8)
    assert far < 0.7 * near


def test_plots_are_stamped_when_the_beam_passes(pd_run):
    s, res = pd_run
    p = res.plots
    T, t0 = s.sensors[0].scan_period_s, s.start_time_s
    beam = np.mod(2 * np.pi * (p["time_s"] - t0) / T, 2 * np.pi)  # clockwise from north
    np.testing.assert_allclose(np.angle(np.exp(1j * (p["azimuth_rad"] - beam))), 0, atol=1e-6)  # float64 Unix time resolves ~2e-7 s
    # and the target really is at that azimuth at that time (no noise declared)
    _, daz, _, (r, _, _) = residuals(res, p)
    assert np.max(np.abs(daz)) < 2e-5
    # plots are spread over the whole scan, not bunched at scan end
    frac = np.mod((p["time_s"] - t0) / T, 1.0)
    counts, _ = np.histogram(frac, bins=10, range=(0, 1))
    assert counts.min() > 0.2 * counts.mean()
    assert p.dtype == PLOT_DTYPE and np.all(np.diff(p["time_s"]) >= 0)
    assert len(np.unique(p["plot_id"])) == len(p)


def test_counterclockwise_rotation_and_start_azimuth():
    s = make([radar(rotation="counterclockwise", start_azimuth_deg=90.0, scan_period_s=6.0)], [orbit(100, b) for b in (0, 120, 240)], duration=240)
    res = simulate(s)
    p = res.plots
    beam = np.mod(np.radians(90.0) - 2 * np.pi * (p["time_s"] - s.start_time_s) / 6.0, 2 * np.pi)
    np.testing.assert_allclose(np.angle(np.exp(1j * (p["azimuth_rad"] - beam))), 0, atol=1e-6)  # float64 Unix time resolves ~2e-7 s
    _, daz, _, _ = residuals(res, p)
    assert np.max(np.abs(daz)) < 2e-5
    assert len(p) > 100


@pytest.fixture(scope="module")
def fa_run():
    s = make([radar(false_alarms_per_scan=8.0, scan_period_s=5.0, min_range_km=20, max_range_km=300)], [orbit(500, 0)], duration=1000)
    return s, simulate(s)


def test_false_alarm_count_per_scan_is_poisson(fa_run):
    s, res = fa_run
    p = res.plots
    fa = p[p["truth_id"] == -1]
    assert len(fa) == len(p)  # the only target is out of range
    n_scans = 200
    assert res.counts["R"]["scans"] == n_scans and res.counts["R"]["false_alarms"] == len(fa)
    lam = 8.0
    assert abs(len(fa) - lam * n_scans) <= 4 * math.sqrt(lam * n_scans)
    scan = np.floor((fa["time_s"] - s.start_time_s) / 5.0).astype(int)
    per = np.bincount(scan, minlength=n_scans)
    # index of dispersion ~ chi2(n-1) for Poisson counts
    disp = np.sum((per - per.mean()) ** 2) / per.mean()
    assert 1e-4 < stats.chi2.sf(disp, n_scans - 1) < 1 - 1e-4
    # uniform in area over the annulus: r^2 uniform, azimuth uniform
    r2 = (fa["range_m"] ** 2 - 20e3**2) / (300e3**2 - 20e3**2)
    assert stats.kstest(r2, "uniform").pvalue > 1e-4
    assert stats.kstest(fa["azimuth_rad"] / (2 * np.pi), "uniform").pvalue > 1e-4
    beam = np.mod(2 * np.pi * (fa["time_s"] - s.start_time_s) / 5.0, 2 * np.pi)
    np.testing.assert_allclose(np.angle(np.exp(1j * (fa["azimuth_rad"] - beam))), 0, atol=1e-6)  # float64 Unix time resolves ~2e-7 s
    assert np.all(fa["mode_s_address"] == -1) and np.all(np.isfinite(fa["lat_deg"]))


@pytest.fixture(scope="module")
def noise_run():
    sig = dict(range_sigma_m=50.0, azimuth_sigma_deg=0.1, elevation_sigma_deg=0.2)
    bias = {"range_m": 200.0, "azimuth_deg": 0.3, "elevation_deg": 0.1, "time_s": 1.5}
    targets = [
        route([(b, 40, 7000), (b, 280, 7000)]) for b in (10, 100, 190)
    ] + [route([(b, 280, 6000), (b, 40, 6000)]) for b in (55, 145, 235, 325)]
    s = make([radar(**sig, bias=bias, scan_period_s=5.0), radar(id="U", partner="USA", **sig, scan_period_s=5.0)], targets, duration=900)
    return s, simulate(s)


def test_noise_spread_matches_declared_sigmas(noise_run):
    s, res = noise_run
    p = res.plots[res.plots["sensor_id"] == "U"]
    dr, daz, de, _ = residuals(res, p)
    n = len(p)
    assert n > 500
    for x, sigma in ((dr, 50.0), (daz, math.radians(0.1)), (de, math.radians(0.2))):
        assert abs(np.mean(x)) < 4 * sigma / math.sqrt(n)
        assert abs(np.std(x) / sigma - 1) < 4 / math.sqrt(2 * n)
        assert stats.normaltest(x / sigma).pvalue > 1e-4
    info = res.sensors[1]
    assert info.sigmas["range_m"] == 50.0 and info.sigmas["azimuth_rad"] == pytest.approx(math.radians(0.1))
    np.testing.assert_allclose(p["cov"][:, 0, 0], 2500.0)
    np.testing.assert_allclose(p["cov"][:, 2, 2], math.radians(0.2) ** 2)
    assert np.all(p["kind"] == MeasurementKind.RADAR_3D)


def test_declared_bias_is_a_mean_offset(noise_run):
    s, res = noise_run
    p = res.plots[res.plots["sensor_id"] == "R"]
    dr, daz, de, _ = residuals(res, p, time_shift=1.5)
    n = len(p)
    assert abs(np.mean(dr) - 200.0) < 4 * 50 / math.sqrt(n)
    assert abs(np.mean(daz) - math.radians(0.3)) < 4 * math.radians(0.1) / math.sqrt(n)
    assert abs(np.mean(de) - math.radians(0.1)) < 4 * math.radians(0.2) / math.sqrt(n)
    assert np.std(dr) == pytest.approx(50.0, rel=0.1)
    # the clock bias: residual scatter is smallest when the truth is taken 1.5 s earlier
    spreads = {tau: np.nanstd(residuals(res, p, time_shift=tau)[0]) for tau in (0.0, 0.75, 1.5, 2.25, 3.0)}
    assert min(spreads, key=spreads.get) == 1.5
    assert spreads[0.0] > 2 * spreads[1.5]
    info = res.sensors[0]
    assert info.biases == pytest.approx({"range_m": 200.0, "azimuth_rad": math.radians(0.3), "elevation_rad": math.radians(0.1), "time_s": 1.5})


def test_horizon_and_min_elevation_respected():
    low, high = 500 * FT, 3000.0
    targets = [route([(30, 20, low), (30, 160, low)]), route([(200, 20, high), (200, 160, high)])]
    sensors = [
        radar(id="H", alt_m=30.0, min_elevation_deg=-2.0, detection={"pd_at_ref_range": 0.9, "ref_range_km": 150}),
        radar(id="E", partner="USA", alt_m=30.0, min_elevation_deg=1.0, detection={"pd_at_ref_range": 0.9, "ref_range_km": 150}),
    ]
    s = make(sensors, targets, duration=700)
    res = simulate(s)
    p = res.plots
    pos = truth_at(res.truth, p["truth_id"], p["time_s"])
    lat, lon, alt = geo.ecef_to_geodetic(pos)
    r, az, el = geo.ecef_to_polar(pos, LAT0, LON0, 30.0)
    # horizon (4/3 earth) binds radar H on the low target
    h = (p["sensor_id"] == "H") & (p["truth_id"] == 0)
    horizon = geo.radar_horizon_range_m(30.0, low)
    assert np.all(r[h] <= horizon + 1.0)
    assert r[h].max() > horizon - 3e3
    # minimum elevation binds radar E on the high target
    e = (p["sensor_id"] == "E") & (p["truth_id"] == 1)
    ground = np.hypot(*[geo.LocalFrame(LAT0, LON0, 30.0).ecef_to_enu(pos[e])[:, j] for j in (0, 1)])
    el_app = apparent_elevation_rad(el[e], ground)
    assert np.all(el_app >= math.radians(1.0) - 1e-9)
    info_e = res.sensors[1]
    assert r[e].max() == pytest.approx(float(info_e.coverage_radius_m(high)), abs=2e3)
    assert r[e].max() < 0.95 * float(res.sensors[0].coverage_radius_m(high))
    # the low target is never seen by E (below 1 deg everywhere beyond ~3 km)
    assert not np.any((p["sensor_id"] == "E") & (p["truth_id"] == 0) & (r > 10e3))
    assert float(res.sensors[0].coverage_radius_m(low)) == pytest.approx(horizon)


def test_ssr_replies_mode_c_and_identity():
    targets = [
        route([(b, 50, 9000), (b, 200, 9000)], coop=True, mode_s_address="86D2A1" if b == 0 else None, mode_3a="2471" if b == 0 else None, callsign="JAL123" if b == 0 else None)
        for b in (0, 90, 180)
    ] + [route([(270, 50, 9000), (270, 200, 9000)], coop=False)]
    s = make([radar(dimension="2d", ssr={"pd": 0.7}, detection={"pd_at_ref_range": 0.5, "ref_range_km": 100})], targets, duration=500)
    res = simulate(s)
    p = res.plots
    c = res.counts["R"]
    coop_opp = c["opportunities"] * 3 / 4  # four targets on symmetric paths, three cooperative
    assert abs(c["ssr_replies"] - 0.7 * coop_opp) < 4 * math.sqrt(coop_opp * 0.21) + 6
    reply = p["mode_3a"] >= 0
    assert not np.any(reply & (p["truth_id"] == 3))
    t0 = p[reply & (p["truth_id"] == 0)]
    assert np.all(t0["mode_s_address"] == 0x86D2A1) and np.all(t0["mode_3a"] == 0o2471) and np.all(t0["callsign"] == "JAL123")
    # Mode C: 100 ft steps, within half a step of the truth altitude
    alt_ft = p["alt_m"][reply] / FT
    np.testing.assert_allclose(alt_ft, np.round(alt_ft), atol=1e-6)
    assert np.all(np.round(alt_ft) % 100 == 0)
    assert np.all(np.abs(p["alt_m"][reply] - 9000.0) <= 50 * FT + 1e-6)
    assert np.all(np.isnan(p["alt_m"][~reply])) and np.all(np.isinf(p["cov"][~reply][:, 2, 2]))
    assert np.all(np.isnan(p["elevation_rad"])) and np.all(p["kind"] == MeasurementKind.RADAR_2D)
    # with a PSR Pd well below 1, cooperative targets are plotted more often than the other
    n_coop = np.array([np.sum(p["truth_id"] == i) for i in range(3)])
    assert n_coop.min() > 1.5 * np.sum(p["truth_id"] == 3)
    # 2D plot positions from range, azimuth and Mode C are near the truth
    pos = truth_at(res.truth, p["truth_id"][reply], p["time_s"][reply])
    lat, lon, _ = geo.ecef_to_geodetic(pos)
    assert np.max(np.abs(p["lat_deg"][reply] - lat)) < 0.01


def test_airborne_radar_platform_and_horizon():
    plat = {"lat_deg": 34.0, "lon_deg": 135.0, "heading_deg": 90, "leg_length_km": 100, "turn_radius_km": 15, "altitude_ft": 30000, "speed_kt": 300}
    aew = {
        "id": "AEW",
        "type": "airborne_radar",
        "partner": "USA",
        "platform": plat,
        "scan_period_s": 10,
        "max_range_km": 700,
        "range_sigma_m": 80.0,
        "azimuth_sigma_deg": 0.2,
        "elevation_sigma_deg": 0.4,
        "detection": {"pd_at_ref_range": 0.9, "ref_range_km": 500},
    }
    far_low = {"type": "route", "cooperative": False, "waypoints": [
        {"lat_deg": 37.0, "lon_deg": 135.5, "altitude_ft": 1000, "speed_kt": 450},
        {"lat_deg": 39.5, "lon_deg": 135.5, "altitude_ft": 1000, "speed_kt": 450}]}
    s = make([aew], [orbit(40, b, alt_ft=20000) for b in (0, 120, 240)] + [far_low], duration=900)
    res = simulate(s)
    p = res.plots
    assert len(p) > 200
    # the platform flies its racetrack: altitude held, speed 300 kt, within the pattern
    np.testing.assert_allclose(p["sensor_alt_m"], 30000 * FT, atol=5.0)
    tt, ii = np.unique(p["time_s"], return_index=True)
    sp = geo.geodetic_to_ecef(p["sensor_lat_deg"][ii], p["sensor_lon_deg"][ii], p["sensor_alt_m"][ii])
    v = np.linalg.norm(np.diff(sp, axis=0), axis=1) / np.diff(tt)
    ok = np.diff(tt) > 2.0
    assert np.all(v[ok] <= 300 * 1852 / 3600 * 1.01) and np.median(v[ok]) > 300 * 1852 / 3600 * 0.95
    from pyproj import Geod

    _, _, d = Geod(ellps="WGS84").inv(np.full(len(ii), 135.0), np.full(len(ii), 34.0), p["sensor_lon_deg"][ii], p["sensor_lat_deg"][ii])
    assert d.max() < 100e3 + 2 * 15e3 + 5e3 and np.ptp(p["sensor_lon_deg"]) > 0.5
    # measurements are relative to the platform position at plot time
    dr, daz, de, (r, _, _) = residuals(res, p)
    assert np.std(dr) == pytest.approx(80.0, rel=0.12)
    assert np.std(daz) == pytest.approx(math.radians(0.2), rel=0.12)
    assert np.std(de) == pytest.approx(math.radians(0.4), rel=0.12)
    # radar horizon from the platform altitude limits the low far target
    low = p["truth_id"] == 3
    assert np.all(r[low] <= geo.radar_horizon_range_m(30000 * FT, 1000 * FT) + 1.0)
    assert res.sensors[0].platform_track is not None and res.sensors[0].kind == MeasurementKind.RADAR_3D


# ------------------------------------------------------------------------------------------
# invariants


@settings(max_examples=60, deadline=None)
@given(pd_ref=st.floats(0.05, 0.99), log_pfa=st.floats(-9, -2), ref_km=st.floats(10, 400))
def test_pd_curve_invariants(pd_ref, log_pfa, ref_km):
    pfa = 10.0**log_pfa
    r = np.array([ref_km / 10, ref_km / 2, ref_km, ref_km * 1.5, ref_km * 3]) * 1e3
    pd = swerling1_pd(r, ref_km * 1e3, pd_ref, pfa)
    assert pd[2] == pytest.approx(pd_ref, rel=1e-9)
    assert np.all(np.diff(pd) < 0) and pd[0] > 0.99 * max(pd_ref, 0.5) and pd[-1] >= pfa


@settings(max_examples=60, deadline=None)
@given(hs=st.floats(0, 3000), ht=st.floats(0, 15000), el_deg=st.floats(-1.0, 5.0))
def test_coverage_radius_at_min_elevation(hs, ht, el_deg):
    """Where the minimum elevation binds, the apparent (k-earth) elevation there equals it;
    otherwise the horizon or the instrumented range binds."""
    kR = geo.EFFECTIVE_EARTH_FACTOR * geo.EARTH_MEAN_RADIUS_M
    d = float(coverage_radius_m(hs, ht, 1e9, el_deg))
    hor = float(geo.radar_horizon_range_m(hs, ht))
    assert d <= hor + 1e-6
    if 0 < d < hor - 1.0:
        tan_app = (ht - hs) / d - d / (2 * kR)
        assert math.atan(tan_app) == pytest.approx(math.radians(el_deg), abs=1e-9)
    assert float(coverage_radius_m(hs, ht, 50e3, el_deg)) <= 50e3


@settings(max_examples=15, deadline=None)
@given(
    bearing=st.floats(0, 359),
    r0=st.floats(40, 150),
    heading=st.floats(0, 359),
    speed=st.floats(150, 600),
    period=st.floats(3, 12),
    az0=st.floats(0, 359),
    ccw=st.booleans(),
)
def test_one_plot_per_scan_at_the_beam(bearing, r0, heading, speed, period, az0, ccw):
    lon0, lat0, _ = geo_fwd(bearing, r0 * 1e3)
    lon1, lat1, _ = geo_fwd(heading, 2000e3, lat0, lon0)
    tgt = {"type": "route", "cooperative": False, "waypoints": [
        {"lat_deg": lat0, "lon_deg": lon0, "altitude_m": 10000, "speed_kt": speed},
        {"lat_deg": lat1, "lon_deg": lon1, "altitude_m": 10000, "speed_kt": speed}]}
    sen = radar(scan_period_s=period, start_azimuth_deg=az0, rotation="counterclockwise" if ccw else "clockwise",
                max_range_km=900, detection={"pd_at_ref_range": 0.999999, "ref_range_km": 900})
    s = make([sen], [tgt], duration=120)
    res = simulate(s)
    p = res.plots
    sign = -1.0 if ccw else 1.0
    beam = np.radians(az0) + sign * 2 * np.pi * (p["time_s"] - s.start_time_s) / period
    np.testing.assert_allclose(np.angle(np.exp(1j * (p["azimuth_rad"] - beam))), 0, atol=1e-6)
    _, daz, _, _ = residuals(res, p)
    assert np.max(np.abs(daz)) < 2e-5
    # one look per scan: consecutive plots about one period apart, none missed
    assert np.all(np.abs(np.diff(p["time_s"]) - period) < 0.2 * period)
    assert abs(len(p) - 120 / period) <= 1.5
