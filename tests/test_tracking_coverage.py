"""Coverage-aware track management: the sensors' coverage, revisit and detection probability
learned from plots; tracks ended where no sensor can see them, misses counted only where a
sensor should have seen the aircraft."""

from __future__ import annotations

import numpy as np

from siap.geo import LocalFrame
from siap.tracking import Tracker, TrackerConfig
from siap.tracking.coverage import K_REFRACTION, SensorCoverage
from siap.tracking.synthetic import radar_3d_plots

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0
CFG = dict(origin_lat_deg=35.0, origin_lon_deg=135.0)


def _outbound(speed_mps=250.0, start_m=20_000.0, alt_m=6000.0):
    """Target 0 flies north away from the radars; target 1 holds at 20 km east (it keeps the
    radars' plots coming, so the tracker's maintenance runs); target 2 holds 150 km out, where
    only a long-range radar sees it."""
    p0 = np.array([[0.0, start_m, alt_m], [20_000.0, 0.0, 3000.0], [100_000.0, 110_000.0, 9000.0]])
    v = np.array([[0.0, speed_mps, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])

    def f(idx, t):
        return p0[idx] + v[idx] * (t - T0)[:, None], v[idx].copy()

    return f


def _radar(traj, *, scan_s, n_scans, max_range_m, site=(0.0, 0.0, 30.0), sensor_id="R", seed=0):
    pl = radar_3d_plots(
        traj, 3, FRAME, list(site), t0=T0, n_scans=n_scans, scan_s=scan_s, sigma_range_m=40.0,
        sigma_az_rad=1.5e-3, sigma_el_rad=2e-3, pd=1.0, clutter_per_scan=0,
        rng=np.random.default_rng(seed), sensor_id=sensor_id,
    )  # fmt: skip
    return pl[pl["range_m"] <= max_range_m]


def _first(traj, alive, t_after):
    """Times after ``t_after`` at which target 0's track (the one nearest to it at t = 60 s) is
    not reported."""
    s60 = alive[60.0]
    p, _ = traj(np.array([0]), np.array([T0 + 60.0]))
    d = np.linalg.norm(s60["pos_ecef_m"] - FRAME.enu_to_ecef(p), axis=1)
    tid = int(s60["track_id"][np.argmin(d)])
    return [t for t, s in alive.items() if t > t_after and tid not in s["track_id"].tolist()]


def _run(plots, t_end, step=1.0, **cfg):
    trk = Tracker(TrackerConfig(**CFG, **cfg))
    plots = plots[np.argsort(plots["time_s"], kind="stable")]
    alive = {}
    for t in np.arange(T0 + step, t_end, step):
        trk.process(plots[(plots["time_s"] > t - step) & (plots["time_s"] <= t)])
        trk.advance(t)
        alive[round(float(t - T0), 3)] = trk.snapshot(float(t))
    return trk, alive


def test_horizon_and_range_of_the_learned_coverage():
    cov = SensorCoverage(re_m=6_371_000.0, origin_alt_m=0.0)
    site = np.array([[0.0, 0.0, 100.0]])
    cov.observe_sites(np.array([0]), site, np.array([100.0]))
    cov.observe_plots(np.array([0]), np.array([[0.0, 150_000.0, 9000.0]]))
    assert cov.max_range_m[0] > 150_000.0
    kre = 2 * K_REFRACTION * 6_371_000.0
    # a target at 300 m: line of sight sqrt(2 k Re h_s) + sqrt(2 k Re h_t) ~ 41 + 71 km
    d_h = np.sqrt(kre * 100.0) + np.sqrt(kre * 300.0)
    u = 300.0 - (0.9 * d_h) ** 2 / (2 * 6_371_000.0)  # ENU 'up' of 300 m above the sphere
    inside = np.array([[0.0, 0.9 * d_h, u]])
    beyond = np.array([[0.0, 1.1 * d_h, 300.0 - (1.1 * d_h) ** 2 / (2 * 6_371_000.0)]])
    far = np.array([[0.0, 1.2 * 150_000.0, 9000.0]])
    got = cov.covered(np.concatenate([inside, beyond, far]), np.array([0]))[:, 0]
    assert got.tolist() == [True, False, False]


def test_revisit_and_detection_probability_are_learned_from_the_gaps():
    cov = SensorCoverage(re_m=6_371_000.0, origin_alt_m=0.0)
    cov.ensure(1)
    rng = np.random.default_rng(0)
    for _ in range(40):  # scans of 8 s; a tenth of the looks missed (a 16 s gap)
        gaps = np.where(rng.random(50) < 0.1, 16.0, 8.0) + rng.normal(0, 0.05, 50)
        cov.observe_gaps(np.zeros(50, np.int64), gaps)
        cov.learn()
    assert abs(cov.revisit_s[0] - 8.0) < 0.1
    assert abs(cov.pd[0] - 1 / 1.1) < 0.03  # hits / looks = 1 / (1 + P(miss))


def test_a_track_leaving_coverage_ends_within_the_expected_revisits():
    traj = _outbound()
    # a 10 s radar that sees to 60 km: the aircraft passes 60 km at t = 160 s
    plots = _radar(traj, scan_s=10.0, n_scans=30, max_range_m=60_000.0)
    t_last = float(plots["time_s"][plots["truth_id"] == 0].max()) - T0
    trk, alive = _run(plots, T0 + 290)
    cfg = TrackerConfig(**CFG)
    gone = _first(traj, alive, t_last)
    assert gone, "the track was never ended"
    # outside the coverage (the learned 60 km times the margin) it ends once 1.5 revisits have
    # passed (checked every second of data, at frame ends)
    assert gone[0] <= t_last + cfg.coverage_revisits * 10.0 + 2.0 + 1e-6
    assert trk.stats["tracks_ended_outside_coverage"] == 1
    assert trk.stats["tracks_ended_missed"] == 0
    # without the coverage rules it coasts on to delete_after_s
    _, alive_off = _run(plots, T0 + 290, coverage_management=False)
    assert not _first(traj, {k: v for k, v in alive_off.items() if k <= t_last + 30.0}, t_last)


def test_misses_count_only_where_a_sensor_should_have_seen_the_aircraft():
    traj = _outbound(speed_mps=200.0)
    # radar A (2 s) sees to 40 km only, radar B (8 s) to 200 km: after t = 100 s only B sees
    # the aircraft; A's silence is not a miss and the track lives on
    a = _radar(traj, scan_s=2.0, n_scans=150, max_range_m=40_000.0, sensor_id="A")
    b = _radar(traj, scan_s=8.0, n_scans=38, max_range_m=200_000.0, site=(5000.0, 0.0, 30.0),
               sensor_id="B", seed=1)  # fmt: skip
    plots = np.concatenate([a, b])
    trk, alive = _run(plots, T0 + 295)
    ids = {int(i) for s in alive.values() for i in s["track_id"]}
    assert len(ids) == 3
    assert all(len(s) == 3 for t, s in alive.items() if t >= 20.0)
    assert trk.stats["tracks_ended_missed"] == 0
    assert trk.stats["tracks_ended_outside_coverage"] == 0
    # the aircraft vanishes inside B's coverage (its plots stop at t = 200 s): ended after
    # three of B's looks are missed (P = 0.05^3 < coverage_miss_probability), not 40 s later
    cut = plots[(plots["time_s"] < T0 + 200.0) | (plots["truth_id"] != 0)]
    t_last = float(cut["time_s"][cut["truth_id"] == 0].max()) - T0
    trk, alive = _run(cut, T0 + 295)
    gone = _first(traj, alive, t_last)
    # (checked every second of data, at frame ends)
    assert gone and gone[0] <= t_last + 3.2 * 8.0 + 2.0 + 1e-6
    assert trk.stats["tracks_ended_missed"] == 1
