"""JPDA in siap.tracking: exact marginals against brute-force enumeration, the PDA update
against the moment-matched mixture of per-hypothesis Kalman updates, and the tracker's
``association='jpda'`` option end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.errors import ConfigError
from siap.geo import LocalFrame
from siap.tracking import Tracker, TrackerConfig, track
from siap.tracking import jpda as jp
from siap.tracking.synthetic import radar_3d_plots, tabulated

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0
FAST = dict(tentative_max_coast_s=3.0, coasting_after_s=3.0, delete_after_s=6.0)
# coverage rules off: a track that loses its target in the crossing would be ended after four
# looks without a plot in its gate and restarted (3 plots to confirm), which these tests of the
# association do not count on
JPDA = dict(
    FAST,
    association="jpda",
    false_alarm_density_per_km2=0.01,
    detection_probability=0.9,
    coverage_management=False,
)


def _brute_marginals(n_plots, gated, lr, miss):
    """Enumerate every joint event with itertools: each track takes one of its gated plots
    or none, no plot twice."""
    nt = len(gated)
    beta = [dict.fromkeys(g, 0.0) for g in gated]
    beta0 = np.zeros(nt)
    total = 0.0
    for choice in itertools.product(*[[None, *g] for g in gated]):
        taken = [c for c in choice if c is not None]
        if len(taken) != len(set(taken)):
            continue
        w = 1.0
        for t, c in enumerate(choice):
            w *= miss[t] if c is None else lr[t][c]
        total += w
        for t, c in enumerate(choice):
            if c is None:
                beta0[t] += w
            else:
                beta[t][c] += w
    return [{k: v / total for k, v in b.items()} for b in beta], beta0 / total


@settings(max_examples=60, deadline=None)
@given(
    n_tracks=st.integers(1, 5),
    n_plots=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_marginals_equal_brute_force_enumeration(n_tracks, n_plots, seed):
    rng = np.random.default_rng(seed)
    gated = []
    lr = []
    for _ in range(n_tracks):
        g = sorted(rng.choice(n_plots, size=rng.integers(0, n_plots + 1), replace=False).tolist())
        gated.append(g)
        lr.append({j: float(10.0 ** rng.uniform(-3, 6)) for j in g})
    miss = 10.0 ** rng.uniform(-2, 0, n_tracks)
    ptr = np.r_[0, np.cumsum([len(g) for g in gated])].astype(np.int64)
    cols = np.array([j for g in gated for j in g], np.int64)
    lrv = np.array([lr[t][j] for t, g in enumerate(gated) for j in g])
    beta, beta0 = jp.jpda_marginals(ptr, cols, lrv, miss, n_plots)
    ref, ref0 = _brute_marginals(n_plots, gated, lr, miss)
    np.testing.assert_allclose(beta0, ref0, rtol=1e-9, atol=1e-12)
    k = 0
    for t, g in enumerate(gated):
        for j in g:
            assert beta[k] == pytest.approx(ref[t][j], rel=1e-9, abs=1e-12)
            k += 1
    # each track's probabilities sum to one; a plot is used at most once in expectation
    for t in range(n_tracks):
        assert beta0[t] + beta[ptr[t] : ptr[t + 1]].sum() == pytest.approx(1.0, abs=1e-9)
    for j in range(n_plots):
        assert beta[cols == j].sum() <= 1.0 + 1e-9


def test_pda_update_equals_moment_matched_mixture_of_kalman_updates():
    """One CV mode, ADS-B (linear) plots: the PDA update equals the moment-matched mixture of
    the prediction (weight beta0) and the Kalman update with each plot (weight beta_j), which
    is how Stone Soup's JPDA tracker reduces its hypotheses."""
    rng = np.random.default_rng(3)
    nm = 1
    x = np.array([1000.0, -500.0, 9000.0, 200.0, 30.0, 0.0])
    A = rng.normal(size=(6, 6))
    P = A @ A.T + np.diag([400.0, 400.0, 100.0, 25.0, 25.0, 4.0])
    xm = x[None, None, :].copy()
    Pm = P[None, None, :, :].copy()
    mu = np.ones((1, 1))
    xc, Pc = x[None].copy(), P[None].copy()
    t_trk = np.zeros(1)
    qh = np.array([0.5, 50.0])
    qv = np.array([0.1, 10.0])
    m = 3
    p_time = np.full(m, 1.5)
    kind = np.full(m, 2, np.int64)  # ADSB
    has_alt = np.zeros(m, bool)
    z = x[:3] + 1.5 * x[3:] + rng.normal(0, 60.0, (m, 3))
    R = np.stack([np.diag([50.0**2, 50.0**2, 20.0**2])] * m)
    site = np.zeros((m, 3))
    rot = np.broadcast_to(np.eye(3), (m, 3, 3)).copy()
    beta = np.array([0.5, 0.3, 0.15])
    beta0 = np.array([0.05])
    lnl = jp.pda_update(
        np.array([0]), np.array([0, m]), np.arange(m), beta, beta0, np.array([0]), nm, t_trk,
        xm, Pm, mu, xc, Pc, 20.0, 15.0, qh, qv, p_time, kind, has_alt, z, R, site, rot,
        6.37e6, 6.37e6, z.copy(), R.copy(),
    )  # fmt: skip
    assert np.isfinite(lnl[0])
    # reference: predict, Kalman-update with each plot, moment-match the mixture
    dt = 1.5
    F = np.eye(6)
    F[:3, 3:] = dt * np.eye(3)
    Q = np.zeros((6, 6))
    for ax, q in ((0, qh[0]), (1, qh[0]), (2, qv[0])):
        Q[ax, ax] = q * dt**3 / 3
        Q[ax, ax + 3] = Q[ax + 3, ax] = q * dt**2 / 2
        Q[ax + 3, ax + 3] = q * dt
    xp = F @ x
    Pp = F @ P @ F.T + Q
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    S = H @ Pp @ H.T + R[0]
    K = Pp @ H.T @ np.linalg.inv(S)
    Pu = (np.eye(6) - K @ H) @ Pp
    means = [xp] + [xp + K @ (z[j] - H @ xp) for j in range(m)]
    covs = [Pp] + [Pu] * m
    w = np.r_[beta0, beta]
    mean = sum(wi * mi for wi, mi in zip(w, means, strict=True))
    cov = sum(
        wi * (ci + np.outer(mi - mean, mi - mean))
        for wi, ci, mi in zip(w, covs, means, strict=True)
    )
    np.testing.assert_allclose(xc[0], mean, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(Pc[0], cov, rtol=1e-7, atol=1e-6)
    assert t_trk[0] == 1.5


def _two_close_targets(n_scans: int):
    """Two aircraft flying parallel 150 m apart for the middle of the run, closing in and
    moving apart (so their gates share plots)."""
    t = np.arange(n_scans, dtype=float)
    pos = np.zeros((n_scans, 2, 3))
    vel = np.zeros((n_scans, 2, 3))
    sep = 150.0 + 1500.0 * np.abs(t - n_scans / 2) / (n_scans / 2)
    for k in range(2):
        sign = 1.0 if k == 0 else -1.0
        pos[:, k, 0] = -20_000.0 + 220.0 * t
        pos[:, k, 1] = 30_000.0 + sign * sep / 2
        pos[:, k, 2] = 9_000.0
        vel[:, k, 0] = 220.0
        vel[:, k, 1] = sign * np.gradient(sep / 2, t)
    return t, pos.transpose(1, 0, 2).copy(), vel.transpose(1, 0, 2).copy()


def _plots(seed: int, n_scans: int = 80, clutter: int = 0):
    t, pos, vel = _two_close_targets(n_scans)
    traj = tabulated(t + T0, pos, vel)
    return traj, radar_3d_plots(
        traj, 2, FRAME, [0, 0, 20], t0=T0, n_scans=n_scans, scan_s=1.0, sigma_range_m=40,
        sigma_az_rad=1.5e-3, sigma_el_rad=1e-3, pd=0.95, clutter_per_scan=clutter,
        rng=np.random.default_rng(seed), clutter_half_width_m=40_000.0,
    )  # fmt: skip


@pytest.mark.parametrize("imm", [True, False])
def test_jpda_keeps_two_close_targets_tracked_and_uses_soft_updates(imm):
    traj, plots = _plots(5, clutter=3)
    out_t = T0 + np.arange(10, 78) + 0.999
    cfg = TrackerConfig(**dict(JPDA, imm_enabled=imm))
    trk = Tracker(cfg)
    # drive the tracker as track() does, to read its counters
    for k in range(80):
        trk.process(plots[(plots["time_s"] >= T0 + k) & (plots["time_s"] < T0 + k + 1)])
        trk.advance(T0 + k + 0.999)
    assert trk.stats["jpda_clusters"] > 0
    tracks = track(plots, cfg, out_t)
    # at every output time each aircraft has a confirmed track within 300 m, and no more
    # than one extra track exists
    for tt in out_t:
        snap = tracks[tracks["time_s"] == tt]
        p, _ = traj(np.arange(2), np.full(2, tt))
        truth = FRAME.enu_to_ecef(p)
        assert 2 <= len(snap) <= 3
        for k in range(2):
            assert np.linalg.norm(snap["pos_ecef_m"] - truth[k], axis=1).min() < 300.0


def test_jpda_changes_nothing_when_no_cluster_is_ambiguous():
    """Targets far apart and no clutter: no gate shares a plot, so JPDA and GNN give the same
    tracks bit for bit."""
    t = np.arange(40, dtype=float)
    pos = np.zeros((40, 3, 3))
    vel = np.zeros((40, 3, 3))
    for k in range(3):
        pos[:, k, 0] = -30_000.0 + 20_000.0 * k + 200.0 * t
        pos[:, k, 1] = 25_000.0
        pos[:, k, 2] = 8_000.0
        vel[:, k, 0] = 200.0
    traj = tabulated(t + T0, pos.transpose(1, 0, 2).copy(), vel.transpose(1, 0, 2).copy())
    plots = radar_3d_plots(
        traj, 3, FRAME, [0, 0, 20], t0=T0, n_scans=40, scan_s=1.0, sigma_range_m=40,
        sigma_az_rad=1e-3, sigma_el_rad=1e-3, pd=0.9, clutter_per_scan=0,
        rng=np.random.default_rng(2),
    )  # fmt: skip
    out_t = T0 + np.arange(5, 39) + 0.999
    a = track(plots, TrackerConfig(**dict(JPDA, association="gnn")), out_t)
    b = track(plots, TrackerConfig(**JPDA), out_t)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a["pos_ecef_m"], b["pos_ecef_m"])
    np.testing.assert_array_equal(a["track_id"], b["track_id"])


def test_jpda_needs_a_clutter_density(tmp_path):
    with pytest.raises(ValueError, match="false_alarm_density_per_km2"):
        TrackerConfig(association="jpda")
    f = tmp_path / "trk.yaml"
    f.write_text("association: jpda\n")
    with pytest.raises(ConfigError, match="needs false_alarm_density_per_km2"):
        TrackerConfig.from_yaml(f)
    f.write_text("association: mht\n")
    with pytest.raises(ConfigError, match="association"):
        TrackerConfig.from_yaml(f)


def _kernel_case(seed: int, k: int, m: int):
    """Random IMM track table and plots of every kind (the kernel tests' generator)."""
    from test_tracking_kernels import _random_case

    g, xm, Pm, mu, t_trk, kind, has_alt, site, rot, z, R, p_time = _random_case(seed, k, m)
    xc = np.einsum("km,kma->ka", mu, xm)
    Pc = np.einsum("km,kmab->kab", mu, Pm)
    pos = np.zeros((m, 3))
    pos_cov = np.broadcast_to(np.eye(3) * 100.0**2, (m, 3, 3)).copy()
    return dict(g=g, xm=xm, Pm=Pm, mu=mu, t=t_trk, xc=xc, Pc=Pc, kind=kind, has_alt=has_alt,
                site=site, rot=rot, z=z, R=R, p_time=p_time, pos=pos, pos_cov=pos_cov)  # fmt: skip


def _run_pda(c, trk, ptr, gps, beta, beta0, lead):
    qh, qv = np.array([1.0, 400.0]), np.array([0.5, 25.0])
    return jp.pda_update(
        np.asarray(trk), np.asarray(ptr), np.asarray(gps), np.asarray(beta, float),
        np.asarray(beta0, float), np.asarray(lead), 2, c["t"], c["xm"], c["Pm"], c["mu"],
        c["xc"], c["Pc"], 60.0, 15.0, qh, qv, c["p_time"], c["kind"], c["has_alt"], c["z"],
        c["R"], c["site"], c["rot"], c["g"].re, c["g"].rc, c["pos"], c["pos_cov"],
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pda_with_one_sure_plot_is_the_imm_ekf_update(seed):
    """beta0 = 0 and one plot with beta = 1: the IMM-PDA update (states, covariances and mode
    probabilities) is the IMM-EKF update of kernels.imm_ekf.pair_update."""
    from siap.tracking.kernels import imm_ekf

    a = _kernel_case(seed, 4, 4)
    b = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    qh, qv = np.array([1.0, 400.0]), np.array([0.5, 25.0])
    ti, gp = np.arange(4), np.arange(4)
    imm_ekf.pair_update(
        ti, gp, 2, a["t"], a["xm"], a["Pm"], a["mu"], a["xc"], a["Pc"], 60.0, 15.0, qh, qv,
        a["p_time"], a["kind"], a["has_alt"], a["z"], a["R"], a["site"], a["rot"], a["g"].re,
        a["g"].rc, a["pos"], a["pos_cov"],
    )  # fmt: skip
    _run_pda(b, ti, np.arange(5), gp, np.ones(4), np.zeros(4), gp)
    for f in ("xm", "Pm", "mu", "xc", "Pc", "t"):
        np.testing.assert_allclose(b[f], a[f], rtol=1e-9, atol=1e-9)


def test_pda_tracks_in_one_call_equal_separate_calls_and_mode_probabilities_follow_beta():
    a = _kernel_case(5, 3, 5)
    b = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    # track 0 with plots 0, 1; track 2 with plots 2, 3, 4 (lead: the likeliest)
    beta = [0.6, 0.3, 0.2, 0.5, 0.1]
    _run_pda(a, [0, 2], [0, 2, 5], [0, 1, 2, 3, 4], beta, [0.1, 0.2], [0, 3])
    _run_pda(b, [0], [0, 2], [0, 1], beta[:2], [0.1], [0])
    _run_pda(b, [2], [0, 3], [2, 3, 4], beta[2:], [0.2], [3])
    for f in ("xm", "Pm", "mu", "xc", "Pc", "t"):
        np.testing.assert_allclose(a[f], b[f], rtol=1e-12, atol=1e-12)
    assert np.allclose(a["mu"].sum(axis=1), 1.0)
    # with beta0 -> 1 the plots barely matter: the mode probabilities stay at their prediction
    c = _kernel_case(6, 1, 2)
    _run_pda(c, [0], [0, 2], [0, 1], [1e-9, 1e-9], [1.0 - 2e-9], [0])
    d = _kernel_case(6, 1, 2)
    dt = d["p_time"][0] - d["t"][0]
    a_, b_ = 1 / 60.0, 1 / 15.0
    e = np.exp(-(a_ + b_) * abs(dt))
    p00, p11 = (b_ + a_ * e) / (a_ + b_), (a_ + b_ * e) / (a_ + b_)
    m0 = p00 * d["mu"][0, 0] + (1 - p11) * d["mu"][0, 1]
    assert c["mu"][0, 0] == pytest.approx(m0, rel=1e-6)
