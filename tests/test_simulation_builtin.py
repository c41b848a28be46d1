"""simulate() on the built-in scenarios (reduced durations) and its contracts: sorting, ids,
counts, determinism, progress reports, and plot statistics against the declarations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siap import geo
from siap.records import PLOT_DTYPE, TRUTH_DTYPE, MeasurementKind
from siap.scenario import build_truth, load_scenario
from siap.sensors.base import NACP_EPU_M
from siap.simulation import SimulationResult, simulate


def short(name, duration, seed=None):
    s = load_scenario(name, seed=seed)
    s.duration_s = duration
    return s


@pytest.fixture(scope="module")
def pacific():
    calls = []
    s = short("pacific", 240)
    res = simulate(s, progress=lambda stage, f: calls.append((stage, f)))
    return s, res, calls


@pytest.fixture(scope="module")
def paris():
    s = short("paris-real", 600)
    return s, simulate(s)


def truth_at(truth, tid, t):
    out = np.full((len(t), 3), np.nan)
    for i in np.unique(tid):
        rec = truth[truth["truth_id"] == i]
        m = tid == i
        for j in range(3):
            out[m, j] = np.interp(t[m], rec["time_s"], rec["pos_ecef_m"][:, j], left=np.nan, right=np.nan)
    return out


def check_contracts(s, res: SimulationResult):
    p, tr = res.plots, res.truth
    assert p.dtype == PLOT_DTYPE and tr.dtype == TRUTH_DTYPE
    assert np.all(np.diff(p["time_s"]) >= 0)
    assert len(np.unique(p["plot_id"])) == len(p)
    rel = tr["time_s"] - s.start_time_s
    np.testing.assert_allclose(rel / s.truth_step_s, np.round(rel / s.truth_step_s), atol=1e-6)
    key = np.round(rel / s.truth_step_s) * (tr["truth_id"].max() + 1) + tr["truth_id"]
    assert np.all(np.diff(key) > 0)
    assert sum(c["plots"] for c in res.counts.values()) == len(p)
    for info in res.sensors:
        c = res.counts[info.id]
        q = p[p["sensor_id"] == info.id]
        assert len(q) == c["plots"] > 0, info.id
        assert np.sum(q["truth_id"] == -1) == c["false_alarms"]
        assert np.all(q["partner"] == info.partner) and np.all(q["kind"] == int(info.kind))
    # every plot of a target refers to an existing truth id; sensor positions are filled
    assert set(np.unique(p["truth_id"][p["truth_id"] >= 0])) <= set(np.unique(tr["truth_id"]))
    assert np.all(np.isfinite(p["sensor_lat_deg"])) and np.all(np.isfinite(p["sensor_alt_m"]))
    assert {x.id for x in s.partners} >= set(np.unique(p["partner"]))


def noise_check(res, info, p, min_n=200):
    """Residuals against the truth (via truth_id) for one radar: spread vs declared sigma, mean
    vs declared bias. Tolerances are 5 sigma of the sample statistics plus a small allowance
    for targets manoeuvring between truth samples."""
    q = p[(p["sensor_id"] == info.id) & (p["truth_id"] >= 0)]
    pos = truth_at(res.truth, q["truth_id"], q["time_s"] - info.biases["time_s"])
    ok = np.all(np.isfinite(pos), axis=1)
    q, pos = q[ok], pos[ok]
    n = len(q)
    assert n >= min_n, (info.id, n)
    r, az, el = geo.ecef_to_polar(pos, q["sensor_lat_deg"], q["sensor_lon_deg"], q["sensor_alt_m"])
    dr = q["range_m"] - r
    daz = np.angle(np.exp(1j * (q["azimuth_rad"] - az)))
    sr, sa = info.sigmas["range_m"], info.sigmas["azimuth_rad"]
    assert abs(np.mean(dr) - info.biases["range_m"]) < 5 * sr / math.sqrt(n) + 2.0, info.id
    assert abs(np.mean(daz) - info.biases["azimuth_rad"]) < 5 * sa / math.sqrt(n) + 1e-5, info.id
    assert abs(np.std(dr) / sr - 1) < 5 / math.sqrt(2 * n) + 0.02, info.id
    assert abs(np.std(daz) / sa - 1) < 5 / math.sqrt(2 * n) + 0.02, info.id
    if info.kind == MeasurementKind.RADAR_3D:
        de = q["elevation_rad"] - el
        se = info.sigmas["elevation_rad"]
        assert abs(np.std(de) / se - 1) < 5 / math.sqrt(2 * n) + 0.02, info.id
    return n


def test_pacific_contracts_and_statistics(pacific):
    s, res, calls = pacific
    check_contracts(s, res)
    assert {x.type for x in res.sensors} == {"ground_radar", "airborne_radar", "adsb_receiver"}
    for info in res.sensors:
        if info.kind != MeasurementKind.ADSB:
            noise_check(res, info, res.plots, min_n=150)
    # the declared bias of JPN-GR-MIYAKO shows as a mean offset (150 m, 0.25 deg)
    miy = next(i for i in res.sensors if i.id == "JPN-GR-MIYAKO")
    assert miy.biases["range_m"] == 150.0
    # false alarms per scan against the Poisson mean, summed over radars
    radars = [i for i in res.sensors if i.kind != MeasurementKind.ADSB]
    lam = sum(i.false_alarms_per_scan * res.counts[i.id]["scans"] for i in radars)
    fa = sum(res.counts[i.id]["false_alarms"] for i in radars)
    assert abs(fa - lam) < 4 * math.sqrt(lam)
    # airborne platforms move between plots
    aew = res.plots[res.plots["sensor_id"] == "USA-AEW-1"]
    assert np.ptp(aew["sensor_lat_deg"]) > 0.05 and np.allclose(aew["sensor_alt_m"], 28000 * 0.3048, atol=5)
    # progress was reported for the long stages, ending at 1
    stages = {st for st, _ in calls}
    assert {"truth", "sensors"} <= stages and ("sensors", 1.0) in calls
    assert all(0.0 <= f <= 1.0 for _, f in calls)


def test_pacific_population():
    s = load_scenario("pacific")
    g = build_truth(s)
    n = int(g.alive.any(axis=1).sum())
    assert 150 <= n <= 300
    assert g.cooperative.sum() > 0.7 * n and (~g.cooperative).sum() >= 20
    assert 0.6 * g.cooperative.sum() < g.adsb_equipped.sum() < g.cooperative.sum()
    assert g.alive.shape[1] == 1801


def test_adsb_rate_and_noise_in_pacific(pacific):
    s, res, _ = pacific
    for spec in [x for x in s.sensors if x.type == "adsb_receiver"]:
        q = res.plots[res.plots["sensor_id"] == spec.id]
        ids, n = np.unique(q["truth_id"], return_counts=True)
        assert res.truth["adsb_equipped"][np.isin(res.truth["truth_id"], ids)].all()
        # rate: reports per second of each aircraft's time in coverage (range and radio
        # horizon, from the truth records) against reception_probability / report_interval
        site = geo.geodetic_to_ecef(spec.lat_deg, spec.lon_deg, spec.alt_m)[0]
        tr = res.truth[np.isin(res.truth["truth_id"], ids)]
        rng_m = np.linalg.norm(tr["pos_ecef_m"] - site, axis=1)
        inside = (rng_m <= spec.max_range_km * 1e3) & (rng_m <= geo.radar_horizon_range_m(spec.alt_m, tr["alt_m"]))
        seconds = inside.sum() * s.truth_step_s
        expect = spec.reception_probability / spec.report_interval_s * seconds
        assert abs(n.sum() - expect) < 4 * math.sqrt(expect) + 2 * len(ids), (spec.id, n.sum(), expect)
        # horizontal error normalised by the per-plot NACp sigma is unit normal
        pos = truth_at(res.truth, q["truth_id"], q["time_s"])
        ok = np.all(np.isfinite(pos), axis=1)
        lat, lon, alt = geo.ecef_to_geodetic(pos[ok])
        meas = geo.geodetic_to_ecef(q["lat_deg"][ok], q["lon_deg"][ok], alt)
        d = np.einsum("nij,nj->ni", geo.enu_rotation(lat, lon), meas - pos[ok])
        z = d[:, :2] / np.sqrt(q["cov"][ok][:, 0, 0])[:, None]
        m = len(z)
        assert abs(np.std(z) - 1) < 5 / math.sqrt(4 * m) + 0.02
        epu = np.sqrt(np.unique(q["cov"][:, 0, 0])) * 2.4477
        table = np.array([NACP_EPU_M[k] for k in (8, 9, 10, 11)])
        assert np.all(np.min(np.abs(epu[:, None] / table[None, :] - 1), axis=1) < 1e-3)


def test_paris_real_contracts_and_statistics(paris):
    s, res = paris
    check_contracts(s, res)
    assert res.grid.n_targets > 25
    # real aircraft fill the window from its start (the sample is 4-s spaced)
    assert res.truth["time_s"].min() <= s.start_time_s + 4
    real = res.truth[res.truth["truth_id"] == 0]
    assert real["mode_s_address"][0] > 0 and real["cooperative"].all()
    for info in res.sensors:
        if info.kind != MeasurementKind.ADSB:
            noise_check(res, info, res.plots, min_n=300)
    ev = next(i for i in res.sensors if i.id == "USA-GR-EVREUX")
    assert ev.biases["range_m"] == 90.0 and ev.kind == MeasurementKind.RADAR_2D
    c = res.counts["AUS-GR-ORLEANS"]
    assert c["ssr_replies"] == 0 and c["detections"] == c["primary_detections"]


def test_deterministic_for_a_seed():
    a = simulate(short("paris-real", 120))
    b = simulate(short("paris-real", 120))
    c = simulate(short("paris-real", 120, seed=1))
    for name in PLOT_DTYPE.names:
        np.testing.assert_array_equal(a.plots[name], b.plots[name])
    for name in TRUTH_DTYPE.names:
        np.testing.assert_array_equal(a.truth[name], b.truth[name])
    assert len(a.plots) != len(c.plots) or not np.array_equal(a.plots["range_m"], c.plots["range_m"], equal_nan=True)
    p1 = simulate(short("pacific", 60))
    p2 = simulate(short("pacific", 60))
    np.testing.assert_array_equal(p1.plots["range_m"], p2.plots["range_m"])
    np.testing.assert_array_equal(p1.truth["pos_ecef_m"], p2.truth["pos_ecef_m"])


def test_coverage_radius_for_maps(pacific):
    s, res, _ = pacific
    goto = next(i for i in res.sensors if i.id == "JPN-GR-GOTO")
    # 3000 ft target: the 4/3-earth horizon binds before the 420 km instrumented range
    r = goto.coverage_radius_m(3000 * 0.3048)
    assert r == pytest.approx(min(420e3, float(geo.radar_horizon_range_m(320, 3000 * 0.3048))), rel=0.01) or r < 420e3
    assert goto.coverage_radius_m(12000.0) == pytest.approx(420e3)
    radii = goto.coverage_radius_m(np.array([100.0, 1000.0, 5000.0]))
    assert np.all(np.diff(radii) > 0)
