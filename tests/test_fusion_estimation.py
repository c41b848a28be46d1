"""Fusion math: CV prediction, pairwise statistic, covariance intersection vs Stone Soup, and the
consistency of CI against the overconfidence of naive fusion under correlated errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2
from stonesoup.mixturereducer.gaussianmixture import CovarianceIntersection
from stonesoup.types.state import GaussianState

from siap.fusion import (
    FusionConfig,
    TrackFuser,
    fast_ci_weights,
    fuse_stack,
    pair_statistic,
    predict_cv,
)
from siap.fusion.synthetic import anisotropic_cov, draw, make_local_tracks, objects_on_grid


def test_predict_cv_matches_explicit_transition():
    rng = np.random.default_rng(3)
    P = anisotropic_cov(rng, 5, (10, 100), (1, 10))
    x = rng.normal(size=(5, 6)) * 100
    dt = np.array([0.0, 1.0, -2.0, 4.5, 10.0])
    sigma = 3.0
    xp, Pp = predict_cv(x, P, dt, sigma)
    for k in range(5):
        F = np.eye(6)
        F[:3, 3:] = dt[k] * np.eye(3)
        G = np.vstack([dt[k] ** 2 / 2 * np.eye(3), dt[k] * np.eye(3)])
        Q = sigma**2 * G @ G.T  # DWNA, BLK sec. 6.3.2, per axis
        np.testing.assert_allclose(xp[k], F @ x[k], rtol=0, atol=1e-9)
        np.testing.assert_allclose(Pp[k], F @ P[k] @ F.T + Q, rtol=1e-12, atol=1e-9)


def test_pair_statistic_matches_loop():
    rng = np.random.default_rng(4)
    P = anisotropic_cov(rng, 6, (10, 100), (1, 10))
    x = rng.normal(size=(6, 6)) * 50
    i, j = np.array([0, 1, 2]), np.array([3, 4, 5])
    for vel in (False, True):
        k = 6 if vel else 3
        d2 = pair_statistic(x, P, i, j, use_velocity=vel)
        for n in range(3):
            dx = x[i[n], :k] - x[j[n], :k]
            ref = dx @ np.linalg.inv(P[i[n], :k, :k] + P[j[n], :k, :k]) @ dx
            assert d2[n] == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("m", [2, 3])
def test_ci_matches_stonesoup_with_the_same_weights(m):
    rng = np.random.default_rng(10 + m)
    P = anisotropic_cov(rng, m, (20, 400), (2, 30))
    x = rng.normal(size=(m, 6)) * 100
    xf, Pf = fuse_stack(x[None], P[None], np.ones((1, m), bool), "ci")
    w = fast_ci_weights(P[None], np.ones((1, m), bool))[0]
    tr = np.trace(P, axis1=1, axis2=2)
    np.testing.assert_allclose(w, (1 / tr) / np.sum(1 / tr))  # Niehsen 2002 fast CI
    comps = [GaussianState(x[k][:, None], P[k]) for k in range(m)]
    ref = CovarianceIntersection.merge_components(*comps, weights=list(w))
    np.testing.assert_allclose(
        xf[0], np.asarray(ref.state_vector, float).ravel(), rtol=1e-9, atol=1e-6
    )
    np.testing.assert_allclose(Pf[0], np.asarray(ref.covar, float), rtol=1e-8, atol=1e-8)


def test_naive_fusion_of_two_equal_estimates_halves_the_covariance():
    P = np.diag([100.0, 200.0, 300.0, 1.0, 2.0, 3.0])
    x = np.array([[0.0] * 6, [10.0, 20, 30, 1, 2, 3]])
    xf, Pf = fuse_stack(x[None], np.stack([P, P])[None], np.ones((1, 2), bool), "naive")
    np.testing.assert_allclose(Pf[0], P / 2, rtol=1e-12)
    np.testing.assert_allclose(xf[0], x.mean(axis=0), rtol=1e-12, atol=1e-12)
    # CI with equal covariances: weights 1/2 each, so the covariance is not reduced at all
    xc, Pc = fuse_stack(x[None], np.stack([P, P])[None], np.ones((1, 2), bool), "ci")
    np.testing.assert_allclose(Pc[0], P, rtol=1e-12)


def test_padding_and_single_estimates_pass_through():
    rng = np.random.default_rng(5)
    P = anisotropic_cov(rng, 4, (10, 100), (1, 10))
    x = rng.normal(size=(4, 6))
    xs = np.zeros((2, 3, 6))
    Ps = np.zeros((2, 3, 6, 6))
    mask = np.zeros((2, 3), bool)
    xs[0, 1], Ps[0, 1], mask[0, 1] = x[0], P[0], True  # single, in a middle slot
    xs[1, :3], Ps[1, :3], mask[1, :3] = x[1:], P[1:], True
    xf, Pf = fuse_stack(xs, Ps, mask)
    assert np.array_equal(xf[0], x[0]) and np.array_equal(Pf[0], P[0])
    x3, P3 = fuse_stack(x[None, 1:], P[None, 1:], np.ones((1, 3), bool))
    np.testing.assert_allclose(xf[1], x3[0])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 4), method=st.sampled_from(["ci", "naive"]))
def test_fused_covariance_is_symmetric_positive_definite(seed, m, method):
    rng = np.random.default_rng(seed)
    P = anisotropic_cov(rng, m, (1, 5000), (0.1, 300))
    x = rng.normal(size=(m, 6)) * 1000
    _, Pf = fuse_stack(x[None], P[None], np.ones((1, m), bool), method)
    assert np.array_equal(Pf[0], Pf[0].T)
    assert np.linalg.eigvalsh(Pf[0]).min() > 0


def _nees_run(method: str, seed: int = 7, n: int = 400):
    """Three partners track the same n objects; their errors share a common part (cross-
    covariance Pc) that no partner reports. Returns the mean NEES of the fused estimates."""
    rng = np.random.default_rng(seed)
    pos, vel = objects_on_grid(n, spacing_m=30_000, seed=seed)
    t = 1_700_000_000.0
    common_cov = anisotropic_cov(rng, n, (100, 300), (5, 15))
    common_err = draw(rng, common_cov)
    batches = []
    for p, off in (("JPN", 0), ("USA", 10_000), ("AUS", 20_000)):
        own = anisotropic_cov(rng, n, (30, 200), (2, 10))
        batches.append(
            make_local_tracks(
                pos,
                vel,
                p,
                np.arange(n) + off,
                t,
                own,
                own_err=draw(rng, own),
                common_cov=common_cov,
                common_err=common_err,
                mode_s=np.arange(n) + 0x800000,
            )
        )
    fuser = TrackFuser(FusionConfig(method=method, associate_after=1))
    out = fuser.update(np.concatenate(batches), t)
    assert len(out) == n and all(s.count(",") == 2 for s in out["sources"])
    # rows are in CTN order; all first seen at once, so the founder is the AUS track (AUS < JPN)
    ids = out["track_id"] & ((1 << 40) - 1)
    assert np.array_equal(ids, np.arange(n) + 20_000)
    e = np.concatenate([out["pos_ecef_m"] - pos, out["vel_ecef_mps"] - vel], axis=1)
    nees = np.einsum("ni,ni->n", e, np.linalg.solve(out["cov_ecef"], e[:, :, None])[:, :, 0])
    return nees.mean(), n


def test_ci_is_consistent_where_naive_fusion_is_overconfident():
    """NEES test (BLK sec. 5.4.2): mean NEES of a consistent 6-state estimator lies below the
    two-sided 99% bound chi2.ppf(0.995, 6n)/n; CI may be conservative, naive must not pass."""
    ci, n = _nees_run("ci")
    upper = chi2.ppf(0.995, 6 * n) / n
    assert ci < upper
    naive, _ = _nees_run("naive")
    assert naive > upper
    assert naive > 1.5 * ci
