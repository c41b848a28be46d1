"""Information matrix fusion (FusionConfig.method="imf") against known answers.

* two independent sensors, one fusion: the fused estimate is the centralised one (information
  sum of the two measurements);
* two linear Kalman filters on one target with process noise, fused after every local update:
  the fused estimate and covariance equal the centralised Kalman filter's over every step (the
  local tracks' earlier information, a prior common to every fusion, is never counted twice),
  and the NEES over Monte Carlo runs is consistent, where the naive sum of current states is
  overconfident;
* a local track re-sent without new data adds nothing;
* fused at a third of the local rate (approximate): still consistent, and more accurate than CI.
"""

import numpy as np
from scipy.stats import chi2

from siap import records
from siap.fusion import FusionConfig, TrackFuser
from siap.fusion.estimation import information_increment, predict_cv
from siap.fusion.synthetic import objects_on_grid

T0 = 1_700_000_000.0
SIGMA_A = 5.0  # the fuser's process noise (m/s^2), also the targets' and the local filters'
H = np.hstack([np.eye(3), np.zeros((3, 3))])


def _rows(partner, track_id, x, P, t, mode_s=0xABCDEF, n_updates=1):
    r = records.empty_tracks(1)
    r["n_updates"] = n_updates
    r["partner"] = partner
    r["track_id"] = track_id
    r["time_s"] = t
    r["pos_ecef_m"] = x[:3]
    r["vel_ecef_mps"] = x[3:]
    r["cov_ecef"] = P
    r["status"] = records.TrackStatus.CONFIRMED
    r["mode_s_address"] = mode_s
    r["label"] = "L"
    return r


def _kf_update(x, P, z, R):
    S = H @ P @ H.T + R
    K = P @ H.T @ np.linalg.inv(S)
    x = x + K @ (z - H @ x)
    IKH = np.eye(6) - K @ H
    P = IKH @ P @ IKH.T + K @ R @ K.T  # Joseph form (BLK eq. 5.2.3-18)
    return x, 0.5 * (P + P.T)


def _predict(x, P, dt):
    xn, Pn = predict_cv(x[None], P[None], np.array([dt]), SIGMA_A)
    return xn[0], Pn[0]


def _cov(sig_pos, sig_vel):
    return np.diag([sig_pos**2] * 3 + [sig_vel**2] * 3)


def _run(rng, method, steps=30, fuse_every=1, R=(80.0, 150.0)):
    """One Monte Carlo run: truth with white-noise acceleration, two local KFs (position
    measurements, one sensor each), a centralised KF over both, and the fuser. Returns the
    list of (truth, fused x, fused P, central x, central P) at the fusion times."""
    pos0, vel0 = objects_on_grid(1, seed=int(rng.integers(1 << 30)))
    truth = np.concatenate([pos0[0], vel0[0]])
    Rm = [np.eye(3) * r**2 for r in R]
    # diffuse start (the prior holds practically no information, so counting it twice is
    # negligible; local trackers in siap start from their own plots only)
    P0 = _cov(1e5, 1e4)
    loc = [(truth + rng.multivariate_normal(np.zeros(6), P0), P0.copy()) for _ in R]
    cen = (loc[0][0].copy(), P0.copy())
    fuser = TrackFuser(
        FusionConfig(method=method, process_noise_mps2=SIGMA_A, associate_after=1, max_age_s=60)
    )
    dt = 1.0
    out = []
    for k in range(steps):
        t = T0 + k * dt
        if k:
            _, Q = _predict(np.zeros(6), np.zeros((6, 6)), dt)
            truth = _predict(truth, np.zeros((6, 6)), dt)[0] + rng.multivariate_normal(np.zeros(6), Q)
            loc = [_predict(x, P, dt) for x, P in loc]
            cen = _predict(*cen, dt)
        zs = [truth[:3] + rng.multivariate_normal(np.zeros(3), r) for r in Rm]
        loc = [_kf_update(x, P, z, r) for (x, P), z, r in zip(loc, zs, Rm, strict=True)]
        for z, r in zip(zs, Rm, strict=True):
            cen = _kf_update(*cen, z, r)
        if k % fuse_every:
            continue
        batch = np.concatenate(
            [_rows(p, 1, x, P, t, n_updates=k + 1) for p, (x, P) in zip(("JPN", "USA"), loc, strict=True)]
        )
        pic = fuser.update(batch, t)
        assert len(pic) == 1
        xf = np.concatenate([pic["pos_ecef_m"][0], pic["vel_ecef_mps"][0]])
        out.append((truth.copy(), xf, pic["cov_ecef"][0].copy(), cen[0].copy(), cen[1].copy()))
    return out


def test_two_independent_sensors_fuse_to_the_centralised_estimate():
    rng = np.random.default_rng(1)
    pos, vel = objects_on_grid(1)
    x0 = np.concatenate([pos[0], vel[0]])
    P1, P2 = _cov(100.0, 10.0), _cov(40.0, 3.0)
    P2[0, 1] = P2[1, 0] = 500.0
    x1 = x0 + rng.multivariate_normal(np.zeros(6), P1)
    x2 = x0 + rng.multivariate_normal(np.zeros(6), P2)
    f = TrackFuser(FusionConfig(associate_after=1))
    pic = f.update(np.concatenate([_rows("JPN", 1, x1, P1, T0), _rows("USA", 2, x2, P2, T0)]), T0)
    assert len(pic) == 1
    Y = np.linalg.inv(P1) + np.linalg.inv(P2)
    P_c = np.linalg.inv(Y)
    x_c = P_c @ (np.linalg.solve(P1, x1) + np.linalg.solve(P2, x2))
    np.testing.assert_allclose(pic["cov_ecef"][0], P_c, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pic["pos_ecef_m"][0], x_c[:3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pic["vel_ecef_mps"][0], x_c[3:], rtol=0, atol=1e-9)


def test_full_rate_fusion_equals_the_centralised_filter_at_every_step():
    """From the sixth step on: the two diffuse starts (1e5 m, 1e4 m/s) are counted twice at
    the first fusion, a difference that has decayed below 6e-6 (covariance) and 3 cm by then."""
    rng = np.random.default_rng(7)
    for _truth, xf, Pf, xc, Pc in _run(rng, "imf")[5:]:
        np.testing.assert_allclose(Pf, Pc, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(xf, xc, rtol=0, atol=0.05)
    # the naive sum of the current states counts the common process noise twice: smaller
    _, _, Pf, _, Pc = _run(np.random.default_rng(8), "naive")[-1]
    assert np.trace(Pf[:3, :3]) < 0.9 * np.trace(Pc[:3, :3])


def _nees(runs):
    """Mean NEES over runs of the last fused estimate (6 dof) and its 99 % two-sided bounds."""
    e = []
    for out in runs:
        truth, xf, Pf, _, _ = out[-1]
        d = truth - xf
        e.append(d @ np.linalg.solve(Pf, d))
    n = len(e)
    lo, hi = chi2.ppf([0.005, 0.995], 6 * n) / n
    return float(np.mean(e)), lo, hi


def test_nees_is_consistent_over_monte_carlo_runs():
    rng = np.random.default_rng(21)
    runs = [_run(rng, "imf", steps=16) for _ in range(60)]
    nees, lo, hi = _nees(runs)
    assert lo <= nees <= hi, (nees, lo, hi)


def test_nees_at_a_third_of_the_local_rate_is_close_to_consistent():
    """Fusing after every third local update, IMF is approximate [TB09]: the fuser predicts
    over 3 s with one white-noise-acceleration step where the targets and local filters took
    three, so the local prior it subtracts is slightly too weak. Measured (150 runs): mean NEES
    7.7 for 6 dof (28 % overconfident); the naive sum is far worse (test below)."""
    rng = np.random.default_rng(23)
    runs = [_run(rng, "imf", steps=16, fuse_every=3) for _ in range(60)]
    nees, lo, _ = _nees(runs)
    naive = _nees([_run(np.random.default_rng(23 + i), "naive", steps=16, fuse_every=3) for i in range(60)])[0]
    assert lo <= nees <= 1.4 * 6, nees
    assert nees < naive


def test_naive_sum_is_overconfident_where_imf_is_not():
    """The check above can fail: the naive sum of the current local states (which counts
    the common process noise twice) is outside the bounds on the same runs."""
    rng = np.random.default_rng(21)
    runs = [_run(rng, "naive", steps=16) for _ in range(60)]
    nees, lo, hi = _nees(runs)
    assert nees > hi, (nees, lo, hi)


def test_imf_is_more_accurate_than_ci():
    errs = {}
    for method in ("imf", "ci"):
        rng = np.random.default_rng(5)
        runs = [_run(rng, method, steps=16, fuse_every=3) for _ in range(30)]
        errs[method] = np.sqrt(np.mean([np.sum((o[-1][0][:3] - o[-1][1][:3]) ** 2) for o in runs]))
    assert errs["imf"] < errs["ci"]


def test_a_track_predicted_without_new_measurements_adds_nothing():
    """A local snapshot predicted to a later time (same n_updates) holds no new information,
    even if the local filter predicts with less process noise than the fuser."""
    x, _ = objects_on_grid(1)
    xa = np.concatenate([x[0], [200.0, 0, 0]])
    Pa, Pb = _cov(100.0, 10.0), _cov(60.0, 8.0)
    f = TrackFuser(FusionConfig(associate_after=1, process_noise_mps2=SIGMA_A))
    p1 = f.update(np.concatenate([_rows("JPN", 1, xa, Pa, T0, n_updates=5), _rows("USA", 2, xa, Pb, T0, n_updates=9)]), T0)
    later = []
    for p, tid, P, n in (("JPN", 1, Pa, 5), ("USA", 2, Pb, 9)):
        xl, Pl = predict_cv(xa[None], P[None], np.array([3.0]), 0.5)  # the local's own, quieter model
        later.append(_rows(p, tid, xl[0], Pl[0], T0 + 3.0, n_updates=n))
    p2 = f.update(np.concatenate(later), T0 + 3.0)
    x1 = np.concatenate([p1["pos_ecef_m"][0], p1["vel_ecef_mps"][0]])
    _, Pp = _predict(x1, p1["cov_ecef"][0], 3.0)
    np.testing.assert_allclose(p2["cov_ecef"][0], Pp, rtol=1e-9, atol=1e-9)


def test_a_track_resent_without_new_data_adds_nothing():
    x, _ = objects_on_grid(1)
    xa = np.concatenate([x[0], [200.0, 0, 0]])
    Pa, Pb = _cov(100.0, 10.0), _cov(60.0, 8.0)
    f = TrackFuser(FusionConfig(associate_after=1, process_noise_mps2=SIGMA_A))
    batch = np.concatenate([_rows("JPN", 1, xa, Pa, T0), _rows("USA", 2, xa + 30.0, Pb, T0)])
    p1 = f.update(batch, T0)
    p2 = f.update(batch, T0 + 2.0)  # the same rows again: no new information
    x1 = np.concatenate([p1["pos_ecef_m"][0], p1["vel_ecef_mps"][0]])
    xp, Pp = _predict(x1, p1["cov_ecef"][0], 2.0)
    np.testing.assert_allclose(p2["cov_ecef"][0], Pp, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p2["pos_ecef_m"][0], xp[:3], rtol=0, atol=1e-6)


def test_a_member_leaving_restarts_from_the_remaining_members():
    x, _ = objects_on_grid(1)
    xa = np.concatenate([x[0], [200.0, 0, 0]])
    P = [_cov(100.0, 10.0), _cov(60.0, 8.0), _cov(80.0, 9.0)]
    f = TrackFuser(FusionConfig(associate_after=1, process_noise_mps2=SIGMA_A, max_age_s=5.0))
    rows = [_rows(p, 1, xa + 10.0 * i, P[i], T0) for i, p in enumerate(("AUS", "JPN", "USA"))]
    f.update(np.concatenate(rows), T0)
    rows2 = [_rows(p, 1, xa + 10.0 * i, P[i], T0 + 6.0) for i, p in enumerate(("AUS", "JPN"))]
    pic = f.update(np.concatenate(rows2), T0 + 6.0)  # USA aged out
    assert len(pic) == 1
    P_c = np.linalg.inv(np.linalg.inv(P[0]) + np.linalg.inv(P[1]))
    np.testing.assert_allclose(pic["cov_ecef"][0], P_c, rtol=1e-9, atol=1e-9)


def test_information_increment_of_a_kalman_update_is_the_measurement_information():
    rng = np.random.default_rng(3)
    x = rng.normal(size=6) * 100
    P = _cov(200.0, 20.0)
    R = np.diag([50.0**2, 70.0**2, 90.0**2])
    z = x[:3] + rng.normal(size=3) * 60
    xn, Pn = _kf_update(x, P, z, R)
    dY, dy, widened = information_increment(xn[None], Pn[None], x[None], P[None])
    np.testing.assert_allclose(dY[0], H.T @ np.linalg.solve(R, H), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(dy[0], H.T @ np.linalg.solve(R, z), rtol=1e-6)
    assert not widened[0]


def test_a_widened_local_covariance_restarts_the_fused_track():
    """A member whose filter widened its covariance (manoeuvre model) gives no negative
    information: the fused track restarts from its members' current states."""
    x = np.zeros((1, 6))
    _, _, widened = information_increment(x, _cov(150.0, 12.0)[None], x, _cov(100.0, 10.0)[None])
    assert widened[0]
    pos, _ = objects_on_grid(1)
    xa = np.concatenate([pos[0], [200.0, 0, 0]])
    Pa, Pb = _cov(100.0, 10.0), _cov(60.0, 8.0)
    f = TrackFuser(FusionConfig(associate_after=1, process_noise_mps2=SIGMA_A))
    f.update(np.concatenate([_rows("JPN", 1, xa, Pa, T0, n_updates=1), _rows("USA", 2, xa, Pb, T0)]), T0)
    Pa_wide = _cov(400.0, 40.0)  # JPN's filter now far less sure than its prediction
    xa2 = xa + np.array([300.0, 0, 0, 0, 0, 0])
    pic = f.update(
        np.concatenate([_rows("JPN", 1, xa2, Pa_wide, T0 + 1, n_updates=2), _rows("USA", 2, xa, Pb, T0 + 1)]),
        T0 + 1,
    )
    # the information sum of the members' current states (USA's row, at T0 + 1, holds Pb)
    P_c = np.linalg.inv(np.linalg.inv(Pa_wide) + np.linalg.inv(Pb))
    np.testing.assert_allclose(pic["cov_ecef"][0], P_c, rtol=1e-9, atol=1e-9)
