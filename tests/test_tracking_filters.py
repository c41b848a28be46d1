"""Estimation quality of siap.tracking: accuracy vs truth, NEES consistency, IMM on a turn."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from siap.geo import LocalFrame, enu_rotation
from siap.tracking import TrackerConfig, track
from siap.tracking import filters as kf
from siap.tracking.synthetic import radar_3d_plots, tabulated, turn_truth, wna_truth

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0


def _truth_ecef(pos_enu: np.ndarray, vel_enu: np.ndarray):
    return FRAME.enu_to_ecef(pos_enu), FRAME.vec_enu_to_ecef(vel_enu)


def _errors(tracks: np.ndarray, times: np.ndarray, traj, n_targets: int):
    """Per output row: index of the nearest truth, position error vector (ECEF) and the 6-vector
    (pos, vel) error, matching by nearest truth position at the track time."""
    out = []
    for t in np.unique(tracks["time_s"]):
        rows = tracks[tracks["time_s"] == t]
        p, v = traj(np.arange(n_targets), np.full(n_targets, t))
        pe, ve = _truth_ecef(p, v)
        d = np.linalg.norm(rows["pos_ecef_m"][:, None, :] - pe[None], axis=2)
        j = d.argmin(axis=1)
        err = np.concatenate([rows["pos_ecef_m"] - pe[j], rows["vel_ecef_mps"] - ve[j]], axis=1)
        out.append((rows, j, err))
    return out


def test_cv_accuracy_radar_close_to_expected():
    """5 CV targets seen by a 3D radar: steady-state position RMSE is well below the raw plot
    error and agrees with the filter's own covariance (RMSE^2 ~ mean trace)."""
    rng = np.random.default_rng(3)
    n = 5
    times, pos, vel = wna_truth(n, 80, 1.0, 0.01, rng, spacing_m=15_000.0)
    traj = tabulated(times + T0, pos, vel)
    sr, sa = 30.0, 1.0e-3
    plots = radar_3d_plots(
        traj,
        n,
        FRAME,
        [0.0, -60_000.0, 30.0],
        t0=T0,
        n_scans=79,
        scan_s=1.0,
        sigma_range_m=sr,
        sigma_az_rad=sa,
        sigma_el_rad=sa,
        pd=1.0,
        clutter_per_scan=0,
        rng=rng,
    )
    cfg = TrackerConfig(
        cv_process_noise_m2ps3=0.01,
        imm_enabled=False,
        tentative_max_coast_s=3,
        coasting_after_s=3,
        delete_after_s=6,
    )
    out_t = T0 + np.arange(30, 78) + 0.999
    tracks = track(plots, cfg, out_t)
    assert set(np.unique(tracks["time_s"])) == set(out_t)
    assert np.all(
        np.bincount(np.searchsorted(out_t, tracks["time_s"])) == n
    )  # one track per target
    res = _errors(tracks, out_t, traj, n)
    e2 = np.concatenate([np.sum(err[:, :3] ** 2, axis=1) for _, _, err in res])
    tr = np.concatenate(
        [np.trace(rows["cov_ecef"][:, :3, :3], axis1=1, axis2=2) for rows, _, _ in res]
    )
    rmse = np.sqrt(e2.mean())
    # Raw cartesian plot error: range noise plus ~60 km * azimuth / elevation noise.
    raw = np.sqrt(sr**2 + 2 * (60_000.0 * sa) ** 2)
    assert rmse < 0.6 * raw
    ratio = e2.mean() / tr.mean()
    assert 0.5 < ratio < 1.8, ratio


def test_nees_of_cv_filter_inside_chi2_bounds():
    """Linear scenario (ADS-B, truth from the filter's own WNA model): the NEES averaged over
    40 Monte Carlo targets lies in the 95% chi-square interval at >= 85% of the times, and its
    time average is close to the state dimension 6."""
    rng = np.random.default_rng(11)
    n, steps, q = 40, 60, 4.0
    times, pos, vel = wna_truth(n, steps, 1.0, q, rng)
    t_abs = times + T0
    ecef = FRAME.enu_to_ecef(pos.reshape(-1, 3)).reshape(n, steps, 3)
    from siap.geo import ecef_to_geodetic

    sh, sv = 25.0, 40.0
    lat, lon, _ = ecef_to_geodetic(ecef.reshape(-1, 3))
    noise = rng.normal(0, 1, (n * steps, 3)) * [sh, sh, sv]
    ecef_n = ecef.reshape(-1, 3) + np.einsum("kji,kj->ki", enu_rotation(lat, lon), noise)
    from siap.records import MeasurementKind, empty_plots

    pl = empty_plots(n * steps)
    pl["time_s"] = np.tile(t_abs, n)
    pl["lat_deg"], pl["lon_deg"], pl["alt_m"] = ecef_to_geodetic(ecef_n)
    pl["cov"] = np.diag([sh**2, sh**2, sv**2])
    pl["kind"] = int(MeasurementKind.ADSB)
    pl["sensor_id"] = "ADSB"
    pl["plot_id"] = np.arange(n * steps)
    pl["mode_s_address"] = np.repeat(np.arange(n) + 0x100, steps)
    cfg = TrackerConfig(
        imm_enabled=False, cv_process_noise_m2ps3=q, vertical_process_noise_m2ps3=q, confirm_hits=2
    )
    out_t = t_abs[15:]
    tracks = track(pl, cfg, out_t)
    nees = []
    for t_idx, t in enumerate(out_t):
        rows = tracks[tracks["time_s"] == t]
        assert len(rows) == n
        j = rows["mode_s_address"] - 0x100
        k = t_idx + 15
        pe, ve = _truth_ecef(pos[j, k], vel[j, k])
        e = np.concatenate([rows["pos_ecef_m"] - pe, rows["vel_ecef_mps"] - ve], axis=1)
        nees.append(np.einsum("ki,kij,kj->k", e, np.linalg.inv(rows["cov_ecef"]), e).mean())
    nees = np.array(nees)
    lo, hi = chi2.ppf([0.025, 0.975], 6 * n) / n
    inside = np.mean((nees > lo) & (nees < hi))
    assert inside >= 0.85, (inside, nees)
    # Errors are correlated in time, so the time average is held to the per-time interval.
    assert lo < nees.mean() < hi, nees.mean()
    assert abs(nees.mean() - 6.0) < 0.6


def _turn_run(imm: bool):
    rng = np.random.default_rng(5)
    t, pos, vel = turn_truth(250.0, 40.0, 25.0, 0.1, 110.0)  # 25 m/s^2 (2.5 g) turn of 143 deg
    traj = tabulated(t + T0, pos, vel)
    plots = radar_3d_plots(
        traj,
        1,
        FRAME,
        [20_000.0, 0.0, 30.0],
        t0=T0,
        n_scans=105,
        scan_s=1.0,
        sigma_range_m=20.0,
        sigma_az_rad=5e-4,
        sigma_el_rad=5e-4,
        pd=1.0,
        clutter_per_scan=0,
        rng=rng,
    )
    cfg = TrackerConfig(
        imm_enabled=imm,
        cv_process_noise_m2ps3=0.5,
        manoeuvre_process_noise_m2ps3=600.0,
        cv_mean_sojourn_s=60.0,
        manoeuvre_mean_sojourn_s=10.0,
    )
    out_t = T0 + np.arange(10, 104) + 0.999
    tracks = track(plots, cfg, out_t)
    p, v = traj(np.zeros(len(tracks), int), tracks["time_s"])
    pe, _ = _truth_ecef(p, v)
    err = np.linalg.norm(tracks["pos_ecef_m"] - pe, axis=1)
    # The best track at each output time (a filter that loses the target starts new tracks).
    best = []
    for t in out_t:
        rows = np.flatnonzero(tracks["time_s"] == t)
        best.append(rows[err[rows].argmin()] if len(rows) else -1)
    best = np.array(best)
    assert np.all(best >= 0)
    return tracks[best], err[best], len(np.unique(tracks["track_id"]))


def test_imm_switches_mode_in_a_turn_and_beats_cv():
    trk_imm, e_imm, n_ids_imm = _turn_run(True)
    trk_cv, e_cv, _ = _turn_run(False)
    assert n_ids_imm == 1  # the IMM holds the target through the turn with one track
    rel = trk_imm["time_s"] - T0
    before = (rel > 20) & (rel < 39)
    during = (rel > 43) & (rel < 65)
    p_man = trk_imm["model_prob"][:, 1]
    assert p_man[before].mean() < 0.2
    assert p_man[during].mean() > 0.6
    assert np.all(trk_cv["model_prob"][:, 0] == 1.0)
    # During the manoeuvre the IMM is much better; over the whole run it is better too.
    assert np.sqrt(np.mean(e_imm[during] ** 2)) < 0.5 * np.sqrt(np.mean(e_cv[during] ** 2))
    assert np.sqrt(np.mean(e_imm**2)) < np.sqrt(np.mean(e_cv**2))


def test_predict_matches_dense_f_p_ft_plus_q():
    """Blockwise prediction equals F P F' + Q with F, Q of BLK eq. 6.2.2-12/13 built densely."""
    rng = np.random.default_rng(0)
    k = 7
    A = rng.normal(size=(k, 6, 6))
    P = A @ np.swapaxes(A, 1, 2) + np.eye(6)
    x = rng.normal(size=(k, 6))
    dt = rng.uniform(0.1, 12.0, k)
    qh, qv = rng.uniform(0.1, 50, k), rng.uniform(0.1, 5, k)
    xp, Pp = kf.predict(x, P, dt, qh, qv)
    for i in range(k):
        F = np.eye(6)
        F[:3, 3:] = dt[i] * np.eye(3)
        T = dt[i]
        Q = np.zeros((6, 6))
        for ax, q in enumerate([qh[i], qh[i], qv[i]]):
            Q[np.ix_([ax, ax + 3], [ax, ax + 3])] = q * np.array(
                [[T**3 / 3, T**2 / 2], [T**2 / 2, T]]
            )
        np.testing.assert_allclose(xp[i], F @ x[i])
        np.testing.assert_allclose(Pp[i], F @ P[i] @ F.T + Q, rtol=1e-10, atol=1e-8)


def test_ekf_update_matches_textbook_kalman_update():
    """With a linear H the update equals the textbook KF (standard form, BLK eq. 5.2.3)."""
    rng = np.random.default_rng(1)
    k = 5
    A = rng.normal(size=(k, 6, 6))
    P = A @ np.swapaxes(A, 1, 2) + np.eye(6)
    B = rng.normal(size=(k, 3, 3))
    R = B @ np.swapaxes(B, 1, 2) + 0.5 * np.eye(3)
    Hp = rng.normal(size=(k, 3, 3))
    x = rng.normal(size=(k, 6))
    nu = rng.normal(size=(k, 3))
    xn, Pn = kf.ekf_update(x, P, nu, Hp, R)
    for i in range(k):
        H = np.hstack([Hp[i], np.zeros((3, 3))])
        S = H @ P[i] @ H.T + R[i]
        K = P[i] @ H.T @ np.linalg.inv(S)
        np.testing.assert_allclose(xn[i], x[i] + K @ nu[i], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(Pn[i], P[i] - K @ S @ K.T, rtol=1e-8, atol=1e-8)


def test_imm_mix_and_combine_against_loops():
    rng = np.random.default_rng(2)
    k = 4
    xm = rng.normal(size=(k, 2, 6))
    A = rng.normal(size=(k, 2, 6, 6))
    Pm = A @ np.swapaxes(A, 2, 3) + np.eye(6)
    mu = rng.dirichlet([1, 1], size=k)
    pi = kf.transition(rng.uniform(0.5, 10, k), 60.0, 15.0)
    np.testing.assert_allclose(pi.sum(axis=2), 1.0)
    x0, P0, c = kf.imm_mix(xm, Pm, mu, pi)
    xc, Pc = kf.combine(xm, Pm, mu)
    for n in range(k):
        for j in range(2):
            cj = sum(pi[n, i, j] * mu[n, i] for i in range(2))
            w = [pi[n, i, j] * mu[n, i] / cj for i in range(2)]
            xj = sum(w[i] * xm[n, i] for i in range(2))
            Pj = sum(w[i] * (Pm[n, i] + np.outer(xm[n, i] - xj, xm[n, i] - xj)) for i in range(2))
            np.testing.assert_allclose(c[n, j], cj)
            np.testing.assert_allclose(x0[n, j], xj)
            np.testing.assert_allclose(P0[n, j], Pj, rtol=1e-10)
        xx = mu[n] @ xm[n]
        PP = sum(mu[n, i] * (Pm[n, i] + np.outer(xm[n, i] - xx, xm[n, i] - xx)) for i in range(2))
        np.testing.assert_allclose(xc[n], xx)
        np.testing.assert_allclose(Pc[n], PP, rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0.01, 30.0),
    st.floats(1.0, 1e4),
    st.floats(1e-5, 1e-2),
    st.floats(1000.0, 400_000.0),
    st.floats(0.0, 2 * np.pi),
    st.integers(0, 2**31 - 1),
)
def test_covariance_stays_symmetric_positive_definite(dt, sr, sa, rng_m, az, seed):
    """Predict + polar EKF update keeps P symmetric positive definite for any geometry/noise
    (ranges from 1 km: closer, the condition number of P reaches 1e16 and definiteness is
    below double precision)."""
    from siap.tracking.measurements import Geometry

    rng = np.random.default_rng(seed)
    g = Geometry(TrackerConfig())
    A = rng.normal(size=(1, 6, 6)) * rng.uniform(1, 1000)
    P = A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(6)
    p = np.array([[rng_m * np.sin(az), rng_m * np.cos(az), 5000.0]])
    x = np.hstack([p, [[200.0, 0.0, 0.0]]])
    for _ in range(3):
        x, P = kf.predict(x, P, np.array([dt]), np.array([10.0]), np.array([1.0]))
        hz, Hp = g.h(x[:, :3], np.array([0]), np.array([False]), np.zeros((1, 3)), np.eye(3)[None])
        z = hz + rng.normal(size=(1, 3)) * [sr, sa, sa]
        nu = g.innovation(z, hz, np.array([0]))
        R = np.diag([sr**2, sa**2, sa**2])[None]
        x, P = kf.ekf_update(x, P, nu, Hp, R)
        assert np.allclose(P, np.swapaxes(P, 1, 2))
        assert np.linalg.eigvalsh(P[0]).min() > 0
