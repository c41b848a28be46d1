"""The optional sequential track score (SPRT): value against a hand computation, confirmation
held back for a weak second plot, deletion after missed revisits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from siap.geo import LocalFrame
from siap.records import MeasurementKind, TrackStatus, empty_plots
from siap.tracking import Tracker, TrackerConfig

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_767_225_600.0
SIG = 50.0
PD = 0.9
LAM_KM2 = 5e-4


def _plots(enu: np.ndarray, times: np.ndarray) -> np.ndarray:
    pl = empty_plots(len(times))
    lat, lon, alt = FRAME.enu_to_geodetic(enu)
    pl["time_s"] = times
    pl["plot_id"] = np.arange(len(times))
    pl["sensor_id"] = "A"
    pl["kind"] = int(MeasurementKind.ADSB)
    pl["lat_deg"], pl["lon_deg"], pl["alt_m"] = lat, lon, alt
    pl["cov"] = np.diag([SIG**2, SIG**2, 10.0**2])
    return pl


def _cfg(**kw) -> TrackerConfig:
    base = dict(
        imm_enabled=False,
        cv_process_noise_m2ps3=0.5,
        initial_velocity_std_mps=150.0,
        gate_probability=float(1 - np.exp(-8)),
        confirm_hits=2,
        tentative_max_coast_s=1.5,
        coasting_after_s=2.5,
        delete_after_s=4.5,
        false_alarm_density_per_km2=LAM_KM2,
        detection_probability=PD,
        score_revisit_s=1.0,
        score_confirm=3.5,
        score_delete=-3.0,
    )
    base.update(kw)
    return TrackerConfig(**base)


def _run(cfg: TrackerConfig, enu: np.ndarray, times: np.ndarray) -> Tracker:
    trk = Tracker(cfg)
    for k in range(len(times)):
        trk.process(_plots(enu[k : k + 1], times[k : k + 1]))
        trk.advance(float(times[k]))
    return trk


def test_score_after_two_plots_equals_hand_computation():
    """score = ln(P_D / lambda) + ln N(nu_h; 0, S_h) with S_h = F P0 F' + Q + R (horizontal)."""
    enu = np.array([[10_000.0, 20_000.0, 10_000.0], [10_150.0, 20_080.0, 10_000.0]])
    times = T0 + np.array([0.0, 1.0])
    trk = _run(_cfg(), enu, times)
    assert trk.n == 1
    # independent: the first plot's position, zero velocity with sd 150, predicted over 1 s
    pos0 = trk.geo.frame.ecef_to_enu(FRAME.enu_to_ecef(enu[:1]))[0]
    var = SIG**2 + 150.0**2 + 0.5 / 3.0
    S = np.diag([var + SIG**2, var + SIG**2])
    lik = multivariate_normal(pos0[:2], S).pdf(enu[1, :2])
    expected = np.log(PD / (LAM_KM2 * 1e-6)) + np.log(lik)
    np.testing.assert_allclose(trk._score[0], expected, rtol=1e-6)
    assert trk.snapshot(float(times[-1]))["track_id"].tolist() == [1]


def test_weak_second_plot_does_not_confirm_but_the_m_of_n_rule_would():
    """A second plot near the gate edge (as clutter would be) scores below score_confirm."""
    enu = np.array([[10_000.0, 20_000.0, 10_000.0], [10_550.0, 20_450.0, 10_000.0]])
    times = T0 + np.array([0.0, 1.0])
    scored = _run(_cfg(), enu, times)
    plain = _run(_cfg(false_alarm_density_per_km2=None), enu, times)
    assert scored.n == plain.n == 1  # the plot is inside the gate in both
    assert len(plain.snapshot(float(times[-1]))) == 1
    assert len(scored.snapshot(float(times[-1]))) == 0
    assert scored._score[0] < 3.5


@pytest.mark.parametrize("delete_confirmed", [None, 2.0])
def test_missed_revisits_delete_a_young_track(delete_confirmed):
    """Each revisit without a plot costs ln(1 - P_D); below score_delete (confirmed tracks:
    score_delete_confirmed when set) the track goes."""
    enu = np.array([[10_000.0, 20_000.0, 10_000.0], [10_150.0, 20_080.0, 10_000.0]])
    times = T0 + np.array([0.0, 1.0])
    cfg = _cfg(coasting_after_s=20.0, delete_after_s=30.0, score_delete_confirmed=delete_confirmed)
    trk = _run(cfg, enu, times)
    s0 = float(trk._score[0])
    level = -3.0 if delete_confirmed is None else delete_confirmed
    n_alive = int(np.floor((s0 - level) / -np.log1p(-PD)))  # misses survived
    for m in range(1, n_alive + 3):
        t = float(times[-1] + m)
        trk.advance(t)
        alive = len(trk.snapshot(t)) == 1 and trk.n_tracks == 1
        assert alive == (m <= n_alive), (m, n_alive)
    assert n_alive >= 2


def test_report_level_hides_a_weak_confirmed_track_and_its_next_plot_brings_it_back():
    """Below score_report_confirmed a confirmed track is left out of snapshots but kept; the
    next plot updates it (same id) and it is reported again. Deleting at that level instead
    (score_delete_confirmed) loses the track, and the plot starts a new tentative one."""
    v = np.array([150.0, 80.0, 0.0])
    start = np.array([10_000.0, 20_000.0, 10_000.0])
    times = T0 + np.array([0.0, 1.0])
    enu = start + v * (times - T0)[:, None]
    t_back = float(times[-1] + 3.0)  # two revisits missed, plot on the third
    back = _plots((start + v * (t_back - T0))[None, :], np.array([t_back]))
    common = dict(coasting_after_s=20.0, delete_after_s=30.0)
    s0 = float(_run(_cfg(**common), enu, times)._score[0])
    miss = -np.log1p(-PD)
    level = s0 - 1.5 * miss  # one miss stays above it, two go below
    hold = _run(_cfg(score_report_confirmed=level, **common), enu, times)
    drop = _run(_cfg(score_delete_confirmed=level, **common), enu, times)
    t_one = float(times[-1] + 1.0)
    for trk in (hold, drop):
        trk.advance(t_one)
        assert trk.snapshot(t_one)["track_id"].tolist() == [1]
    t_hidden = float(times[-1] + 2.0)
    far = _plots(np.array([[60_000.0, 70_000.0, 10_000.0]]), np.array([t_hidden]))
    for trk in (hold, drop):
        trk.process(far)  # a plot far away: a frame at t_hidden, so the deletion rules run
        trk.advance(t_hidden)
        assert len(trk.snapshot(t_hidden)) == 0
    for trk in (hold, drop):
        trk.process(back)
        trk.advance(t_back)
    assert hold.snapshot(t_back)["track_id"].tolist() == [1]
    # deleted at the level: the plot started a new tentative track, not reported
    assert len(drop.snapshot(t_back)) == 0
    alive = drop._status[: drop.n] != int(TrackStatus.DELETED)
    assert 1 not in drop._id[: drop.n][alive].tolist()
