"""Streaming behaviour of siap.tracking: batching, reordering, late and bad plots, ids, config."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.errors import ConfigError, InputError
from siap.geo import LocalFrame, ecef_to_geodetic
from siap.records import TRACK_DTYPE, TrackStatus, empty_plots
from siap.tracking import Tracker, TrackerConfig, track
from siap.tracking.synthetic import adsb_plots, cv_targets, radar_3d_plots

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0
CFG = TrackerConfig(
    tentative_max_coast_s=4.0, coasting_after_s=4.0, delete_after_s=8.0, reorder_window_s=2.0
)


def _scenario(seed: int = 0, n: int = 30, scans: int = 30):
    rng = np.random.default_rng(seed)
    traj = cv_targets(n, rng, half_width_m=40_000.0, t0=T0)
    addr = np.arange(n) + 0x500000
    radar = radar_3d_plots(
        traj,
        n,
        FRAME,
        [0, 0, 20],
        t0=T0,
        n_scans=scans,
        scan_s=1.0,
        sigma_range_m=50,
        sigma_az_rad=1.5e-3,
        sigma_el_rad=1.5e-3,
        pd=0.9,
        clutter_per_scan=5,
        rng=rng,
        clutter_half_width_m=40_000.0,
    )
    radar2 = radar_3d_plots(
        traj,
        n,
        FRAME,
        [30_000, 10_000, 50],
        t0=T0 + 0.3,
        n_scans=scans // 2,
        scan_s=2.0,
        sigma_range_m=80,
        sigma_az_rad=2e-3,
        sigma_el_rad=2e-3,
        pd=0.8,
        clutter_per_scan=3,
        rng=rng,
        clutter_half_width_m=40_000.0,
        sensor_id="R3D-B",
        plot_id_start=500_000,
    )
    adsb = adsb_plots(
        traj,
        np.arange(0, n, 3),
        FRAME,
        t0=T0,
        duration_s=scans,
        period_s=1.0,
        sigma_h_m=20,
        sigma_v_m=30,
        rng=rng,
        mode_s=addr,
    )
    plots = np.concatenate([radar, radar2, adsb])
    return plots[np.argsort(plots["time_s"], kind="stable")], traj


def _run(batches, cfg=CFG, t_end=None):
    trk = Tracker(cfg)
    for b in batches:
        trk.process(b)
    trk.flush()
    return trk, trk.snapshot(t_end)


def _assert_same_tracks(a: np.ndarray, b: np.ndarray):
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a["track_id"], b["track_id"])
    np.testing.assert_array_equal(a["n_updates"], b["n_updates"])
    np.testing.assert_allclose(a["pos_ecef_m"], b["pos_ecef_m"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["cov_ecef"], b["cov_ecef"], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(a["sources"], b["sources"])


def test_many_small_batches_equal_one_batch():
    plots, _ = _scenario()
    t_end = float(plots["time_s"].max())
    trk1, whole = _run([plots], t_end=t_end)
    batches = np.array_split(plots, 173)
    trk2, streamed = _run(batches, t_end=t_end)
    _assert_same_tracks(whole, streamed)
    assert trk1.stats == trk2.stats
    assert len(whole) >= 25


def test_out_of_order_within_window_equals_sorted():
    plots, _ = _scenario(1)
    t_end = float(plots["time_s"].max())
    _, ref = _run(np.array_split(plots, 50), t_end=t_end)
    rng = np.random.default_rng(5)
    # Shuffle inside 1.5 s blocks (less than the 2 s window) and deliver in small batches.
    key = np.floor((plots["time_s"] - T0) / 1.5) + rng.random(len(plots))
    shuffled = plots[np.argsort(key)]
    assert not np.all(np.diff(shuffled["time_s"]) >= 0)
    trk, out = _run(np.array_split(shuffled, 97), t_end=t_end)
    _assert_same_tracks(ref, out)
    assert trk.stats["late_dropped"] == 0


def test_late_plots_are_counted_and_not_applied(caplog):
    plots, _ = _scenario(2)
    t_end = float(plots["time_s"].max())
    early = plots["time_s"] < T0 + 10.0
    # Hold back 40 early plots and deliver them at the end: far older than the window and than
    # out_of_sequence_max_lag_s, so they are not applied out of sequence either.
    held = np.flatnonzero(early)[::7][:40]
    rest = np.setdiff1d(np.arange(len(plots)), held)
    _, ref = _run([plots[rest]], t_end=t_end)
    trk = Tracker(CFG)
    trk.process(plots[rest])
    with caplog.at_level(logging.DEBUG, logger="siap.tracking"):
        trk.process(plots[held])
    trk.flush()
    assert trk.stats["late_dropped"] == 40
    assert "late" in caplog.text
    _assert_same_tracks(ref, trk.snapshot(t_end))


def test_bad_plots_rejected_counted_and_good_ones_still_used(caplog):
    plots, _ = _scenario(3)
    t_end = float(plots["time_s"].max())
    _, ref = _run([plots], t_end=t_end)
    bad = empty_plots(0)
    src = plots[plots["kind"] == 0][:10]

    def variants(field, value, count=2):
        b = src[:count].copy()
        if field == "cov":
            b["cov"] = value
        else:
            b[field] = value
        return b

    bads = {
        "nan": variants("range_m", np.nan),
        "inf": variants("azimuth_rad", np.inf),
        "negative_range": variants("range_m", -5.0),
        "impossible_range": variants("range_m", 5e7),
        "unknown_kind": variants("kind", 9),
        "bad_covariance": variants("cov", np.diag([-1.0, 1e-6, 1e-6])),
        "impossible_angle": variants("elevation_rad", 2.0),
    }
    # A non-symmetric / indefinite covariance and a NaN time as well.
    indefinite = src[:1].copy()
    indefinite["cov"] = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    bads["bad_covariance"] = np.concatenate([bads["bad_covariance"], indefinite])
    nan_time = src[:3].copy()
    nan_time["time_s"] = np.nan
    bads["nan"] = np.concatenate([bads["nan"], nan_time])
    bad = np.concatenate(list(bads.values()))
    bad["plot_id"] = 10_000_000 + np.arange(len(bad))
    mixed = np.concatenate([plots, bad])
    mixed = mixed[np.argsort(np.nan_to_num(mixed["time_s"], nan=T0), kind="stable")]
    with caplog.at_level(logging.DEBUG, logger="siap.tracking"):
        trk, out = _run(np.array_split(mixed, 20), t_end=t_end)
    for reason, b in bads.items():
        assert trk.stats[f"rejected_{reason}"] == len(b), reason
    assert trk.stats["plots_in"] == len(mixed)
    assert trk.stats["plots_used"] == len(plots)
    assert "bad_covariance" in caplog.text
    _assert_same_tracks(ref, out)


def test_track_ids_are_stable_and_follow_their_target():
    plots, traj = _scenario(4)
    times = T0 + np.arange(8, 29) + 0.5
    tracks = track(plots, CFG, times)
    n = 30
    for tid in np.unique(tracks["track_id"]):
        rows = tracks[tracks["track_id"] == tid]
        nearest = []
        for row in rows:
            p, _ = traj(np.arange(n), np.full(n, row["time_s"]))
            nearest.append(
                np.linalg.norm(FRAME.enu_to_ecef(p) - row["pos_ecef_m"], axis=1).argmin()
            )
        assert len(set(nearest)) == 1, tid
        assert np.all(np.diff(rows["n_updates"]) >= 0)
    for t in times:
        ids = tracks["track_id"][tracks["time_s"] == t]
        assert len(ids) == len(np.unique(ids))


def test_snapshot_fields_are_consistent():
    plots, _ = _scenario(5)
    trk, snap = _run([plots], t_end=float(plots["time_s"].max()) + 1.0)
    assert snap.dtype == TRACK_DTYPE
    lat, lon, alt = ecef_to_geodetic(snap["pos_ecef_m"])
    np.testing.assert_allclose(snap["lat_deg"], lat)
    np.testing.assert_allclose(snap["alt_m"], alt)
    np.testing.assert_allclose(snap["model_prob"].sum(axis=1), 1.0, atol=1e-6)
    assert np.all(np.isin(snap["status"], [int(TrackStatus.CONFIRMED), int(TrackStatus.COASTING)]))
    cov = snap["cov_ecef"]
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), rtol=0, atol=1e-9 * np.abs(cov).max())
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    assert set(",".join(snap["sources"]).split(",")) <= {"R3D", "R3D-B", "ADSB"}
    st_ = trk.stats
    assert st_["tracks_confirmed"] >= len(snap)
    assert st_["tracks_initiated"] == st_["tracks_deleted"] + st_["tracks_merged"] + trk.n_tracks
    # Predicting ahead coasts; far ahead the tracks are gone.
    later = trk.snapshot(float(plots["time_s"].max()) + 5.0)
    assert np.all(later["status"] == int(TrackStatus.COASTING))
    assert len(trk.snapshot(float(plots["time_s"].max()) + 60.0)) == 0


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.floats(5.0, 300.0), st.floats(1e-4, 5e-3))
def test_covariances_spd_for_random_scenarios(seed, sigma_r, sigma_a):
    rng = np.random.default_rng(seed)
    traj = cv_targets(8, rng, half_width_m=30_000.0, t0=T0)
    plots = radar_3d_plots(
        traj,
        8,
        FRAME,
        [0, 0, 20],
        t0=T0,
        n_scans=12,
        scan_s=1.0,
        sigma_range_m=sigma_r,
        sigma_az_rad=sigma_a,
        sigma_el_rad=sigma_a,
        pd=0.9,
        clutter_per_scan=3,
        rng=rng,
        clutter_half_width_m=30_000.0,
    )
    out = track(plots, CFG, T0 + np.arange(3, 12))
    cov = out["cov_ecef"]
    assert np.allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-9 * max(1.0, np.abs(cov).max()))
    if len(cov):
        assert np.linalg.eigvalsh(cov).min() > 0


def test_track_progress_and_input_checks():
    plots, _ = _scenario(6, n=5, scans=10)
    seen = []
    out = track(plots, CFG, [T0 + 3, T0 + 6, T0 + 9], progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert set(np.unique(out["time_s"])) <= {T0 + 3, T0 + 6, T0 + 9}
    with pytest.raises(InputError):
        Tracker(CFG).process(np.zeros(3, dtype=[("x", "f8")]))


def test_config_from_yaml(tmp_path):
    good = tmp_path / "t.yaml"
    good.write_text("origin_lat_deg: 36.5\nframe_s: 0.25\nconfirm_hits: 4\n")
    cfg = TrackerConfig.from_yaml(good)
    assert cfg.origin_lat_deg == 36.5 and cfg.frame_s == 0.25 and cfg.confirm_hits == 4
    nested = tmp_path / "n.yaml"
    nested.write_text("tracker:\n  gate_probability: 0.99\n")
    assert TrackerConfig.from_yaml(nested).gate_probability == 0.99
    for text, field in [
        ("frame_s: -1\n", "frame_s"),
        ("bogus: 1\n", "bogus"),
        ("origin_lat_deg: [1\n", "line"),
        ("- 1\n- 2\n", "mapping"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as ei:
            TrackerConfig.from_yaml(bad)
        msg = str(ei.value)
        assert "\n" not in msg and str(bad) in msg and field in msg
    with pytest.raises(ConfigError):
        TrackerConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValueError):
        TrackerConfig(no_such_parameter=1)


def _snapshot_every_batch_and_once(plots, cfg):
    """The final snapshot of a tracker that took a snapshot after every 1 s batch (its encoded
    text cached and invalidated along the way) and of one that took none before."""
    t_end = float(plots["time_s"].max())
    edges = np.searchsorted(plots["time_s"], np.arange(T0, t_end + 1.0, 1.0))
    a, b = Tracker(cfg), Tracker(cfg)
    for s, e in zip(edges[:-1], edges[1:], strict=True):
        for trk in (a, b):
            trk.process(plots[s:e])
        a.snapshot(float(plots["time_s"][s:e].max(initial=T0)))
    for trk in (a, b):
        trk.process(plots[edges[-1] :])
        trk.flush()
    return a.snapshot(t_end), b.snapshot(t_end)


def test_snapshot_text_follows_the_sensors_that_join_a_track():
    """Sensors join tracks over the run (ADS-B, a second radar): the text of a tracker that
    snapshots every second is byte for byte that of one encoding everything at the end."""
    plots, _ = _scenario(3)
    cfg = CFG.model_copy(update={"label": "SIAP//SECRET//REL TO JPN, USA", "partner": "JPN"})
    every, once = _snapshot_every_batch_and_once(plots, cfg)
    assert len(every) > 0 and every.tobytes() == once.tobytes()
    assert set(every["label"]) == {cfg.label} and set(every["partner"]) == {"JPN"}
    assert sum("R3D-B" in s for s in every["sources"]) > 0
    assert sum("," in s for s in every["sources"]) > 0  # tracks of several sensors


def test_snapshot_text_with_more_than_64_sensors():
    """Sensor masks grow past one 64-bit word mid-run: texts are encoded again, and long
    sensor lists are cut (sources with ',...', sensors with ',+')."""
    plots, _ = _scenario(4)
    rng = np.random.default_rng(5)
    radar = plots["kind"] == 0
    later = plots["time_s"] > T0 + 10.0  # sensors 64-89 appear only after 10 s
    n_ids = np.where(later, 90, 64)
    ids = np.array([f"S{i:02d}" for i in range(90)])
    plots["sensor_id"][radar] = ids[rng.integers(0, n_ids[radar])]
    every, once = _snapshot_every_batch_and_once(plots, CFG)
    assert len(every) > 0 and every.tobytes() == once.tobytes()
    assert any(s.endswith(",...") for s in every["sources"])
    assert any(s.endswith(",+") for s in every["sensors"])
    assert any(int(s[1:]) >= 64 for row in every["sensors"] for s in row.split(",")
               if s.startswith("S") and s != "S")  # fmt: skip
