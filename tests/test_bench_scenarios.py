"""The benchmark generators produce what they declare, and the GOSPA helper is right.

Statistical checks use tolerances of about 4-5 standard errors of the estimate, with fixed
seeds, so they fail when a parameter is wrong (e.g. sigma 45 m instead of 50 m, Pd 0.85).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import scenarios_cv as sc  # noqa: E402

from siap import geo  # noqa: E402
from siap.records import MeasurementKind  # noqa: E402


@pytest.fixture(scope="module")
def scn():
    return sc.make_cv_scenario(60, seed=7, n_scans=100)


def test_cv_detection_probability(scn):
    n_opportunities = scn.n_targets * scn.n_scans
    n_detected = int((scn.det_truth >= 0).sum())
    pd_hat = n_detected / n_opportunities
    se = np.sqrt(0.9 * 0.1 / n_opportunities)  # ~0.0039
    assert abs(pd_hat - 0.9) < 4 * se
    # at most one detection per target per scan
    key = scn.det_scan[scn.det_truth >= 0] * 1000 + scn.det_truth[scn.det_truth >= 0]
    assert np.unique(key).size == key.size


def test_cv_clutter_rate_and_spread(scn):
    clutter = scn.det_truth < 0
    per_scan = np.bincount(scn.det_scan[clutter], minlength=scn.n_scans)
    # Poisson(5): mean 5, variance 5 (standard error of the mean 0.22)
    assert abs(per_scan.mean() - 5.0) < 1.0
    assert 2.5 < per_scan.var(ddof=1) < 9.0
    xy = scn.det_xy[clutter]
    assert xy.min() >= 0 and xy.max() <= scn.area_m
    # uniform over the square: mean L/2 (se ~ L/sqrt(12 n) ~ 1.3 km), variance L^2/12
    assert np.all(np.abs(xy.mean(axis=0) - scn.area_m / 2) < 6_000)
    assert np.all(np.abs(xy.std(axis=0) / (scn.area_m / np.sqrt(12)) - 1) < 0.15)


def test_cv_measurement_noise_sigma(scn):
    real = scn.det_truth >= 0
    resid = scn.det_xy[real] - scn.truth_xy[scn.det_scan[real], scn.det_truth[real]]
    n = resid.shape[0]
    assert np.all(np.abs(resid.mean(axis=0)) < 4 * 50 / np.sqrt(n))
    sd = resid.std(axis=0, ddof=1)
    assert np.all(np.abs(sd / 50.0 - 1) < 4 / np.sqrt(2 * n) + 0.005)  # se of sd ~ sigma/sqrt(2n)
    # Gaussian tails: about 4.6 % beyond 2 sigma per axis
    frac = np.mean(np.abs(resid) > 100.0)
    assert 0.035 < frac < 0.058


def test_cv_targets_stay_inside_and_move_as_declared(scn):
    assert scn.truth_xy.shape == (scn.n_scans, scn.n_targets, 2)
    assert scn.truth_xy.min() >= 0 and scn.truth_xy.max() <= scn.area_m
    speed0 = np.hypot(*scn.truth_vel[0].T)
    assert speed0.min() >= 100 and speed0.max() <= 250
    # nearly constant velocity: position increments equal the velocity within the q noise
    step = np.diff(scn.truth_xy, axis=0)
    pred = scn.truth_vel[:-1] * scn.dt_s
    dev = step - pred  # ~ N(0, q dt^3/3 + ...) : sd of order sqrt(q/3) ~ 0.4 m
    assert np.abs(dev).max() < 10.0
    # headings are spread round the compass
    hdg = np.arctan2(scn.truth_vel[0, :, 0], scn.truth_vel[0, :, 1])
    assert np.ptp(hdg) > np.pi


def test_cv_same_seed_same_inputs():
    a = sc.make_cv_scenario(10, seed=3, n_scans=20)
    b = sc.make_cv_scenario(10, seed=3, n_scans=20)
    c = sc.make_cv_scenario(10, seed=4, n_scans=20)
    np.testing.assert_array_equal(a.det_xy, b.det_xy)
    assert a.det_xy.shape != c.det_xy.shape or not np.array_equal(a.det_xy, c.det_xy)


def test_detections_to_plots_round_trip(scn):
    frame = geo.LocalFrame(35.0, 135.0, 0.0)
    plots = sc.detections_to_plots(scn, frame)
    assert np.all(plots["kind"] == MeasurementKind.ADSB)
    assert np.all(plots["mode_s_address"] == -1)
    assert np.all(np.diff(plots["time_s"]) >= 0)
    ecef = geo.geodetic_to_ecef(plots["lat_deg"], plots["lon_deg"], plots["alt_m"])
    xy = sc.ecef_to_local_xy(ecef, frame)
    np.testing.assert_allclose(xy, scn.det_xy, atol=1e-3)
    np.testing.assert_allclose(plots["cov"][0], np.diag([2500.0, 2500.0, 100.0]))


# ---------------------------------------------------------------------------------------- GOSPA


def test_gospa_hand_case():
    # truths (0,0) and (1000,0); one track at (3,4): localisation 5, one missed (c/2 = 250)
    r = sc.gospa(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [1000.0, 0.0]]), c=500, p=1)
    assert r["distance"] == pytest.approx(255.0)
    assert r["localisation"] == pytest.approx(5.0)
    assert r["missed"] == pytest.approx(250.0) and r["false"] == 0.0
    # a track farther than c from every truth: one missed + one false = c
    r = sc.gospa(np.array([[0.0, 600.0]]), np.array([[0.0, 0.0]]), c=500, p=1)
    assert r["distance"] == pytest.approx(500.0) and r["n_assigned"] == 0
    # p = 2: sqrt(3^2 + 4^2 ... ) -> distance^2 = 25 + 250^2/2 ... check closed form
    r = sc.gospa(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0], [1000.0, 0.0]]), c=500, p=2)
    assert r["distance"] == pytest.approx(np.sqrt(25.0 + 500.0**2 / 2))
    assert sc.gospa(np.zeros((0, 2)), np.zeros((0, 2)))["distance"] == 0.0
    assert sc.gospa(np.zeros((0, 2)), np.zeros((3, 2)), c=500)["distance"] == pytest.approx(750.0)


def _stonesoup_gospa(est, tru, c, p):
    from stonesoup.metricgenerator.ospametric import GOSPAMetric
    from stonesoup.types.state import State

    ts = dt.datetime(2026, 1, 1)
    m = GOSPAMetric(c=c, p=p)
    res, _ = m.compute_gospa_metric([State(x.reshape(2, 1), timestamp=ts) for x in est],
                                    [State(x.reshape(2, 1), timestamp=ts) for x in tru])
    return res.value


@settings(max_examples=40, deadline=None)
@given(
    n_est=st.integers(0, 7),
    n_tru=st.integers(0, 7),
    seed=st.integers(0, 2**31 - 1),
    p=st.sampled_from([1.0, 2.0]),
)
def test_gospa_matches_stonesoup(n_est, n_tru, seed, p):
    assume(n_est + n_tru > 0)  # Stone Soup needs at least one state to find the time
    rng = np.random.default_rng(seed)
    tru = rng.uniform(0, 2000, (n_tru, 2))
    est = rng.uniform(0, 2000, (n_est, 2))
    ours = sc.gospa(est, tru, c=500.0, p=p)
    ref = _stonesoup_gospa(est, tru, 500.0, p)
    assert ours["distance"] == pytest.approx(float(ref["distance"]), rel=1e-9, abs=1e-9)
    assert ours["localisation"] == pytest.approx(float(ref["localisation"]), rel=1e-9, abs=1e-9)
    assert ours["missed"] == pytest.approx(float(ref["missed"]), abs=1e-9)
    assert ours["false"] == pytest.approx(float(ref["false"]), abs=1e-9)


def test_gospa_matches_siap_evaluation_if_present():
    ev = pytest.importorskip("siap.evaluation.gospa")
    rng = np.random.default_rng(11)
    for _ in range(20):
        tru = rng.uniform(0, 3000, (rng.integers(0, 9), 2))
        est = rng.uniform(0, 3000, (rng.integers(0, 9), 2))
        ours = sc.gospa(est, tru, c=500.0, p=1.0)
        theirs = ev.gospa(tru, est, c=500.0, p=1.0)
        assert ours["distance"] == pytest.approx(theirs.distance, abs=1e-9)


# ------------------------------------------------------------------------------ radar network


@pytest.fixture(scope="module")
def net():
    return sc.make_radar_network_scenario(300, seed=5, duration_s=40.0)


def test_radar_plots_are_well_formed(net):
    p = net.plots
    assert np.all(p["kind"] == MeasurementKind.RADAR_3D)
    assert np.all(np.diff(p["time_s"]) >= 0)
    assert p["time_s"].min() >= sc.EPOCH_S and p["time_s"].max() < sc.EPOCH_S + 40.0
    assert np.all(p["mode_s_address"] == -1)
    assert np.all(np.isfinite(p["sensor_lat_deg"])) and np.all(np.isfinite(p["range_m"]))
    assert np.unique(p["plot_id"]).size == len(p)
    # most targets covered by 2-4 radars (the declared "realistic overlap")
    assert sum(v for k, v in net.coverage_hist.items() if 2 <= k <= 4) > 0.7


def test_radar_false_alarm_rate(net):
    false = net.plots[net.plots["truth_id"] < 0]
    expected = sum(s.false_per_scan * 40.0 / s.period_s for s in net.sites)
    assert abs(len(false) - expected) < 5 * np.sqrt(expected)


def test_radar_noise_and_beam_timing(net):
    p = net.plots[net.plots["truth_id"] >= 0]
    sites = {s.sensor_id: s for s in net.sites}
    true_ecef = net.truth_ecef(p["truth_id"], p["time_s"])
    r, az, el = geo.ecef_to_polar(true_ecef, p["sensor_lat_deg"], p["sensor_lon_deg"], p["sensor_alt_m"])
    sr = np.array([sites[s].sigma_range_m for s in p["sensor_id"]])
    sa = np.array([sites[s].sigma_az_rad for s in p["sensor_id"]])
    zr = (p["range_m"] - r) / sr
    za = np.angle(np.exp(1j * (p["azimuth_rad"] - az))) / sa
    n = len(p)
    for z in (zr, za):
        assert abs(z.mean()) < 5 / np.sqrt(n)
        assert abs(z.std() - 1) < 5 / np.sqrt(2 * n)
    # time-stamped as the beam passes: the beam azimuth at the plot time is the true azimuth
    period = np.array([sites[s].period_s for s in p["sensor_id"]])
    az0 = np.array([sites[s].az0_rad for s in p["sensor_id"]])
    beam = np.mod(az0 + 2 * np.pi * (p["time_s"] - sc.EPOCH_S) / period, 2 * np.pi)
    assert np.abs(np.angle(np.exp(1j * (beam - az)))).max() < 1e-6


def test_radar_one_plot_per_target_per_revolution(net):
    p = net.plots[net.plots["truth_id"] >= 0]
    periods = {s.sensor_id: s.period_s for s in net.sites}
    order = np.lexsort((p["time_s"], p["truth_id"], p["sensor_id"]))
    q = p[order]
    same = (q["sensor_id"][1:] == q["sensor_id"][:-1]) & (q["truth_id"][1:] == q["truth_id"][:-1])
    gaps = np.diff(q["time_s"])[same]
    period = np.array([periods[s] for s in q["sensor_id"][1:][same]])
    # consecutive plots of one target by one radar are whole revolutions apart (within the
    # target's own azimuth motion), never two in one revolution
    assert np.all(gaps > 0.9 * period)


def test_trajectory_scenario_uses_real_flights_inside_the_area():
    sample = Path(__file__).parents[1] / "src/siap/scenario/data/paris_2021-10-07_1300-1330.json.gz"
    scn = sc.make_trajectory_scenario(sample, 20, seed=3, n_scans=60)
    assert scn.n_targets >= 1 and scn.n_targets <= 20
    assert scn.truth_xy.shape == (60, scn.n_targets, 2)
    assert np.all((scn.truth_xy >= 0) & (scn.truth_xy <= scn.area_m))
    speeds = np.linalg.norm(scn.truth_vel, axis=-1)
    assert np.all((speeds > 30) & (speeds < 350))  # airborne aircraft, m/s
    # position steps agree with the recorded velocities (the projection is consistent)
    step = np.linalg.norm(np.diff(scn.truth_xy, axis=0), axis=-1)
    assert np.median(np.abs(step - speeds[:-1] * scn.dt_s)) < 15.0
    # sensing model as declared: detections of targets only near them, clutter labelled -1
    own = scn.det_truth >= 0
    err = scn.det_xy[own] - scn.truth_xy[scn.det_scan[own], scn.det_truth[own]]
    assert abs(err.std() - scn.sigma_m) < 0.2 * scn.sigma_m
    assert scn.params["trajectories"].endswith(".json.gz")
