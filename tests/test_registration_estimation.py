"""Online sensor registration (siap.tracking.registration): convergence to declared biases,
anchoring through overlapping radars, correction against truth, bad input, helpers checked
against brute force / finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from siap import geo
from siap.records import MeasurementKind
from siap.scenario import load_scenario
from siap.simulation import simulate
from siap.tracking.registration import (
    RegistrationConfig,
    SensorRegistration,
    _bracket,
    _polar_and_jacobian,
    _sites,
    track_with_registration,
)

DECLARED = {
    "R1": (150.0, 0.25, 0.4),  # range m, azimuth deg, clock s
    "R2": (0.0, 0.0, 0.0),
    "R3": (-100.0, -0.2, 0.0),
}


def _scenario_yaml(path, duration_s=600, seed=11, n=16):
    """R1, R2 (3D) inside the ADS-B receiver's coverage; R3 (2D) far east, overlapping R2 but
    not the ADS-B receiver (120 km around 133.5E; R3 reaches 180 km around 137E)."""
    rng = np.random.default_rng(seed)

    def radar(sid, lat, lon, dim, period, rmax, sr, sa, bias, partner="JPN"):
        r, a, t = bias
        d = dict(
            id=sid,
            type="ground_radar",
            partner=partner,
            lat_deg=lat,
            lon_deg=lon,
            alt_m=150,
            dimension=dim,
            scan_period_s=period,
            max_range_km=rmax,
            range_sigma_m=sr,
            azimuth_sigma_deg=sa,
            detection=dict(pd_at_ref_range=0.9, ref_range_km=250),
            false_alarms_per_scan=2,
            ssr=dict(pd=0.97),
            bias=dict(range_m=r, azimuth_deg=a, time_s=t),
        )
        if dim == "3d":
            d["elevation_sigma_deg"] = 0.3
        return d

    sensors = [
        radar("R1", 35.6, 134.0, "3d", 10, 250, 60, 0.15, DECLARED["R1"]),
        radar("R2", 34.6, 135.0, "3d", 6, 250, 50, 0.12, DECLARED["R2"]),
        radar("R3", 35.0, 137.0, "2d", 5, 180, 40, 0.10, DECLARED["R3"], partner="USA"),
        dict(
            id="ADSB",
            type="adsb_receiver",
            partner="AUS",
            lat_deg=35.0,
            lon_deg=133.5,
            alt_m=50,
            max_range_km=120,
        ),
    ]
    targets = []
    for i in range(n):
        lat0, lon0 = rng.uniform(34.0, 36.0), rng.uniform(132.8, 137.5)
        hdg = math.radians(rng.uniform(0, 360))
        dlat = 200e3 * math.cos(hdg) / 111e3
        dlon = 200e3 * math.sin(hdg) / (111e3 * math.cos(math.radians(lat0)))
        alt, spd = float(rng.uniform(15000, 39000)), float(rng.uniform(350, 480))
        targets.append(
            dict(
                type="route",
                name=f"ac{i}",
                cooperative=bool(i % 5 != 4),
                adsb_equipped=bool(i % 5 < 3),
                waypoints=[
                    dict(lat_deg=float(lat0), lon_deg=float(lon0), altitude_ft=alt, speed_kt=spd),
                    dict(
                        lat_deg=float(lat0 + dlat),
                        lon_deg=float(lon0 + dlon),
                        altitude_ft=alt,
                        speed_kt=spd,
                    ),
                ],
            )
        )
    doc = dict(
        name="registration-test",
        start_time_utc="2026-01-01T00:00:00Z",
        duration_s=duration_s,
        seed=seed,
        truth_step_s=1.0,
        origin=dict(lat_deg=35.0, lon_deg=135.0, alt_m=0.0),
        partners=[dict(id="JPN"), dict(id="USA"), dict(id="AUS")],
        sensors=sensors,
        targets=targets,
    )
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(load_scenario(_scenario_yaml(tmp_path_factory.mktemp("reg") / "reg.yaml")))


def _run(plots, cfg=None, step_s=5.0):
    reg = SensorRegistration(cfg)
    t = plots["time_s"]
    cuts = np.searchsorted(t, np.arange(t.min(), t.max() + step_s, step_s))
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        reg.observe(plots[a:b])
    reg.observe(plots[cuts[-1] :])
    return reg


@pytest.fixture(scope="module")
def reg(sim):
    return _run(sim.plots)


def test_biased_radar_converges_to_declared_biases(reg):
    e = reg.estimates["R1"]
    r, a, t = DECLARED["R1"]
    assert e.converged
    assert e.range_sd_m < 15.0 and e.azimuth_sd_deg < 0.02 and e.time_sd_s < 0.1
    assert abs(e.range_m - r) < 3 * e.range_sd_m
    assert abs(e.azimuth_deg - a) < 3 * e.azimuth_sd_deg
    assert abs(e.time_s - t) < 3 * e.time_sd_s


def test_unbiased_radar_is_estimated_near_zero(reg):
    e = reg.estimates["R2"]
    assert e.converged
    assert abs(e.range_m) < 3 * e.range_sd_m and abs(e.range_m) < 15.0
    assert abs(e.azimuth_deg) < 3 * e.azimuth_sd_deg and abs(e.azimuth_deg) < 0.02
    assert abs(e.time_s) < 3 * e.time_sd_s


def test_radar_without_adsb_overlap_registered_through_overlapping_radar(sim, reg):
    # ADS-B alone cannot reach R3: with radar pairs off it keeps its prior
    alone = _run(sim.plots, RegistrationConfig(use_radar_pairs=False)).estimates["R3"]
    assert alone.n_pairs == 0 and not alone.converged
    e = reg.estimates["R3"]
    r, a, _ = DECLARED["R3"]
    assert e.converged and e.n_pairs > 100
    assert abs(e.range_m - r) < 3 * e.range_sd_m and e.range_sd_m < 15.0
    assert abs(e.azimuth_deg - a) < 3 * e.azimuth_sd_deg and e.azimuth_sd_deg < 0.02


def _residuals(plots, sim, clock_bias_s):
    """(range, azimuth) of radar plots minus truth at their true times (truth_id: test only)."""
    truth = sim.truth
    order = np.lexsort((truth["time_s"], truth["truth_id"]))
    tr = truth[order]
    t_true = plots["time_s"] - clock_bias_s
    key_t = tr["truth_id"] * 1e5 + (tr["time_s"] - tr["time_s"].min())
    key_p = plots["truth_id"] * 1e5 + (t_true - tr["time_s"].min())
    k = np.clip(np.searchsorted(key_t, key_p) - 1, 0, len(tr) - 2)
    ok = (tr["truth_id"][k] == plots["truth_id"]) & (tr["truth_id"][k + 1] == plots["truth_id"])
    w = ((t_true - tr["time_s"][k]) / (tr["time_s"][k + 1] - tr["time_s"][k]))[:, None]
    pos = (1 - w) * tr["pos_ecef_m"][k] + w * tr["pos_ecef_m"][k + 1]
    rng, az, _ = geo.ecef_to_polar(
        pos, plots["sensor_lat_deg"][0], plots["sensor_lon_deg"][0], plots["sensor_alt_m"][0]
    )
    dr = plots["range_m"] - rng
    da = (plots["azimuth_rad"] - az + np.pi) % (2 * np.pi) - np.pi
    return dr[ok], np.degrees(da[ok])


def test_correction_removes_the_bias_against_truth(sim, reg):
    p = sim.plots
    late = p[
        (p["sensor_id"] == "R1") & (p["truth_id"] >= 0) & (p["time_s"] > p["time_s"].min() + 300)
    ]
    dr0, da0 = _residuals(late, sim, DECLARED["R1"][2])
    fixed = reg.correct(late)
    dr1, da1 = _residuals(fixed, sim, 0.0)  # corrected time stamps are true times
    assert (
        abs(dr0.mean() - 150.0) < 10 and abs(da0.mean() - 0.25) < 0.02
    )  # the declared bias is there
    assert abs(dr1.mean()) < 15.0 and abs(da1.mean()) < 0.02
    assert abs(dr1.mean()) < 0.2 * abs(dr0.mean()) and abs(da1.mean()) < 0.2 * abs(da0.mean())
    # the estimate's variance is added to the plot covariance
    e = reg.estimates["R1"]
    assert np.allclose(fixed["cov"][:, 0, 0] - late["cov"][:, 0, 0], e.range_sd_m**2)
    assert np.allclose(fixed["cov"][:, 1, 1] - late["cov"][:, 1, 1], e.azimuth_sd_rad**2)


def test_correct_leaves_adsb_and_unconverged_sensors_alone(sim, reg):
    p = sim.plots[:3000]
    out = reg.correct(p)
    adsb = p["kind"] == int(MeasurementKind.ADSB)
    assert adsb.any() and out[adsb].tobytes() == p[adsb].tobytes()
    fresh = SensorRegistration()
    fresh.observe(p[:50])
    assert fresh.correct(p).tobytes() == p.tobytes()
    assert p is not out


def test_nan_plots_are_ignored_and_counted(sim, reg):
    p = sim.plots.copy()
    rng = np.random.default_rng(3)
    radar = np.flatnonzero(p["kind"] != int(MeasurementKind.ADSB))
    adsb = np.flatnonzero(p["kind"] == int(MeasurementKind.ADSB))
    bad_r = rng.choice(radar, 200, replace=False)
    bad_a = rng.choice(adsb, 100, replace=False)
    p["range_m"][bad_r[:100]] = np.nan
    p["azimuth_rad"][bad_r[100:]] = np.inf
    p["lat_deg"][bad_a] = np.nan
    r2 = _run(p)
    assert r2.stats["rejected_nan"] == 300
    assert r2.stats["plots_in"] == len(p)
    for sid in ("R1", "R2", "R3"):
        a, b = r2.estimates[sid], reg.estimates[sid]
        assert a.converged
        assert abs(a.range_m - b.range_m) < 2 * b.range_sd_m + 2.0
    fixed = r2.correct(p)
    assert np.isnan(fixed["range_m"][bad_r[:100]]).all()


def test_config_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ValidationError):
        RegistrationConfig(prior_range_sd=10.0)
    with pytest.raises(ValidationError):
        RegistrationConfig(prior_range_sd_m=-1.0)


def test_track_with_registration_returns_tracks_and_estimates(sim):
    from siap.pipeline import evaluation_times, tracker_config_for

    times = evaluation_times(sim.truth, 5.0)
    tracks, est = track_with_registration(sim.plots, tracker_config_for(sim.scenario), times)
    assert set(est) == {"R1", "R2", "R3"}
    assert len(tracks) > 0 and np.isin(tracks["time_s"], times).all()
    assert est["R1"].converged and abs(est["R1"].range_m - 150.0) < 3 * est["R1"].range_sd_m


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(0, 50, allow_nan=False)), min_size=0, max_size=30
    ),
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(-2, 52, allow_nan=False)), min_size=1, max_size=10
    ),
    st.floats(0.5, 20),
)
@example(buf=[(0, 0.0), (1, 0.0), (1, 7.177298443694393e-177)], queries=[(1, 0.0)], max_gap=1.0)
def test_bracket_matches_brute_force(buf, queries, max_gap):
    b = (
        np.array(sorted(buf), dtype=[("g", "i8"), ("t", "f8")])
        if buf
        else np.zeros(0, [("g", "i8"), ("t", "f8")])
    )
    gq = np.array([q[0] for q in queries], dtype=np.int64)
    tq = np.array([q[1] for q in queries])
    i1, i2 = _bracket(b["g"], b["t"], gq, tq, max_gap)
    for k in range(len(gq)):
        rows = [j for j in range(len(b)) if b["g"][j] == gq[k]]
        before = [j for j in rows if b["t"][j] <= tq[k]]
        after = [j for j in rows if b["t"][j] > tq[k]]
        if before and after and b["t"][after[0]] - b["t"][before[-1]] <= max_gap:
            assert b["t"][i1[k]] == b["t"][before[-1]] and b["t"][i2[k]] == b["t"][after[0]]
            assert b["g"][i1[k]] == gq[k] == b["g"][i2[k]]
        elif i1[k] >= 0:
            # only other valid brackets (equal times on the right edge) may be returned
            assert (
                b["t"][i1[k]] <= tq[k] <= b["t"][i2[k]] and b["t"][i2[k]] - b["t"][i1[k]] <= max_gap
            )
            assert b["g"][i1[k]] == gq[k] == b["g"][i2[k]]


def test_polar_jacobian_matches_finite_differences():
    rng = np.random.default_rng(5)
    lat, lon, alt = np.full(20, 35.0), np.full(20, 135.0), np.full(20, 100.0)
    site, rot = _sites(lat, lon, alt)
    p = geo.polar_to_ecef(
        rng.uniform(20e3, 300e3, 20),
        rng.uniform(0, 2 * np.pi, 20),
        rng.uniform(0.01, 0.2, 20),
        lat,
        lon,
        alt,
    )
    r, az, J = _polar_and_jacobian(p, site, rot)
    r_ref, az_ref, _ = geo.ecef_to_polar(p, lat, lon, alt)
    assert np.allclose(r, r_ref, atol=1e-3) and np.allclose(az, az_ref, atol=1e-9)
    h = 1.0
    for k in range(3):
        dp = np.zeros(3)
        dp[k] = h
        r2, az2, _ = geo.ecef_to_polar(p + dp, lat, lon, alt)
        assert np.allclose((r2 - r_ref) / h, J[:, 0, k], atol=1e-4)
        assert np.allclose((az2 - az_ref) / h, J[:, 1, k], atol=1e-8)


def test_estimates_do_not_depend_on_batching_or_order_within_a_batch(sim, reg):
    p = sim.plots
    # plots shuffled inside each 5 s batch: the buffers are sorted on merge, same constraints
    rng = np.random.default_rng(9)
    t = p["time_s"]
    cuts = np.searchsorted(t, np.arange(t.min(), t.max() + 5.0, 5.0))
    shuffled = np.concatenate(
        [p[a:b][rng.permutation(b - a)] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        + [p[cuts[-1] :]]
    )
    r_shuf = _run(shuffled)
    for sid, e in reg.estimates.items():
        f = r_shuf.estimates[sid]
        assert math.isclose(f.range_m, e.range_m, rel_tol=1e-6, abs_tol=1e-6)
        assert math.isclose(f.azimuth_rad, e.azimuth_rad, rel_tol=1e-6, abs_tol=1e-9)
        assert f.n_pairs == e.n_pairs
    # 1 s and 30 s batches: different update instants, same answer within the reported sd
    for step in (1.0, 30.0):
        r = _run(p, step_s=step)
        assert r.stats["late_dropped"] == 0
        for sid, e in reg.estimates.items():
            f = r.estimates[sid]
            assert f.converged
            assert abs(f.range_m - e.range_m) < 2 * e.range_sd_m
            assert abs(f.azimuth_rad - e.azimuth_rad) < 2 * e.azimuth_sd_rad


def _reference_tracks(sim, sigma_m=120.0, step_s=5.0, seed=3):
    """Another partner's tracks of the cooperative aircraft: truth every ``step_s`` with an
    error of ``sigma_m`` per axis (declared in the covariance) and the Mode S address."""
    from siap import records

    tr = sim.truth
    tr = tr[(tr["mode_s_address"] >= 0) & (np.round(tr["time_s"] - tr["time_s"].min()) % step_s == 0)]
    rng = np.random.default_rng(seed)
    out = records.empty_tracks(len(tr))
    out["time_s"] = tr["time_s"]
    out["pos_ecef_m"] = tr["pos_ecef_m"] + rng.normal(0.0, sigma_m, (len(tr), 3))
    out["vel_ecef_mps"] = tr["vel_ecef_mps"]
    cov = np.zeros((len(tr), 6, 6))
    cov[:, :3, :3] = np.eye(3) * sigma_m**2
    cov[:, 3:, 3:] = np.eye(3) * 25.0
    out["cov_ecef"] = cov
    out["mode_s_address"] = tr["mode_s_address"]
    out["status"] = records.TrackStatus.CONFIRMED
    out["partner"] = "USA"
    return out


def test_radar_alone_is_registered_from_received_tracks(sim):
    """Track-to-track registration: R1's plots alone (no ADS-B, no other radar) give no
    constraint; with another partner's tracks of the same aircraft as references R1's
    range, azimuth and clock biases converge to the declared ones."""
    plots = sim.plots[sim.plots["sensor_id"] == "R1"]
    alone = _run(plots).estimates["R1"]
    assert alone.n_pairs == 0 and not alone.converged
    refs = _reference_tracks(sim)
    reg = SensorRegistration()
    t = plots["time_s"]
    step = 5.0
    cuts = np.searchsorted(t, np.arange(t.min(), t.max() + step, step))
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b > a:
            # the references that have arrived by the end of this slice
            reg.observe_tracks(refs[(refs["time_s"] >= t[a] - step) & (refs["time_s"] < t[a])])
        reg.observe(plots[a:b])
    e = reg.estimates["R1"]
    r, az, clk = DECLARED["R1"]
    assert reg.stats["track_pairs"] > 100 and reg.stats["adsb_pairs"] == 0
    assert e.converged
    assert abs(e.range_m - r) < max(3 * e.range_sd_m, 0.1 * r)
    assert abs(e.azimuth_deg - az) < max(3 * e.azimuth_sd_deg, 0.1 * az)
    assert abs(e.time_s - clk) < max(3 * e.time_sd_s, 0.1 * clk)


def test_reference_tracks_without_mode_s_or_finite_state_are_ignored(sim):
    refs = _reference_tracks(sim)[:50].copy()
    refs["mode_s_address"][:10] = -1
    refs["pos_ecef_m"][10:20] = np.nan
    reg = SensorRegistration()
    reg.observe_tracks(refs)
    reg._merge_buffers()
    assert len(reg._tracks) == 30
