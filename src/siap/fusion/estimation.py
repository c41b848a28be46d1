"""Batch math for track-to-track fusion: prediction, pairwise test statistic, CI and naive fusion.

References
----------
* [BLK] Y. Bar-Shalom, X. R. Li, T. Kirubarajan, *Estimation with Applications to Tracking and
  Navigation*, Wiley 2001.
* [JU97] S. J. Julier, J. K. Uhlmann, "A non-divergent estimation algorithm in the presence of
  unknown correlations", Proc. American Control Conference 1997.
* [N02] W. Niehsen, "Information fusion based on fast covariance intersection filtering",
  Proc. FUSION 2002.
* [BS81] Y. Bar-Shalom, "On the track-to-track correlation problem", IEEE TAC 26(2), 1981.
* [CMC90] C.-Y. Chong, S. Mori, K.-C. Chang, "Distributed multitarget multisensor tracking",
  in Y. Bar-Shalom (ed.), *Multitarget-Multisensor Tracking: Advanced Applications*, Artech
  House 1990, ch. 8 (information decorrelation: subtract the information already fused).
* [TB09] X. Tian, Y. Bar-Shalom, "Exact algorithms for four track-to-track fusion
  configurations: all you wanted to know but were afraid to ask", Proc. FUSION 2009
  (information matrix fusion, IMF: exact, i.e. equal to the centralised filter, when fusion
  follows every local update; approximate at lower rates with process noise).
* [BWT11] Y. Bar-Shalom, P. Willett, X. Tian, *Tracking and Data Fusion*, YBS Publishing 2011,
  ch. 8 (track-to-track fusion with and without memory).

All functions work on stacks: states (N, 6) = (pos, vel) in ECEF (m, m/s) and covariances
(N, 6, 6).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "predict_cv",
    "pair_statistic",
    "fuse_stack",
    "fast_ci_weights",
    "information",
    "information_increment",
    "from_information",
]


def predict_cv(x: np.ndarray, P: np.ndarray, dt: np.ndarray, sigma_a: float):
    """Predict (x, P) by ``dt`` seconds with a constant-velocity model.

    ``x' = F x``, ``P' = F P F^T + Q`` with ``F = [[I, dt I], [0, I]]`` and the discrete white
    noise acceleration covariance ``Q = sigma_a^2 G G^T``, ``G = [dt^2/2 I; dt I]``
    ([BLK] sec. 6.3.2), applied per axis of the ECEF frame. The ECEF frame rotates with the
    Earth; over the few seconds between a local track's time of validity and the fusion time the
    Coriolis/centrifugal terms (< 0.02 m/s^2 for an airliner) are far below ``sigma_a``.
    Works for negative ``dt`` (retrodiction) too. Returns new arrays.
    """
    dt = np.asarray(dt, dtype=float)[:, None]
    xn = x.copy()
    xn[:, :3] = x[:, :3] + dt * x[:, 3:]
    Ppp = P[:, :3, :3]
    Ppv = P[:, :3, 3:]
    Pvp = P[:, 3:, :3]
    Pvv = P[:, 3:, 3:]
    d = dt[:, :, None]
    q = sigma_a**2
    eye = np.eye(3)
    Pn = np.empty_like(P)
    Pn[:, :3, :3] = Ppp + d * (Ppv + Pvp) + d * d * Pvv + q * (d**4 / 4.0) * eye
    Pn[:, :3, 3:] = Ppv + d * Pvv + q * (d**3 / 2.0) * eye
    Pn[:, 3:, :3] = Pvp + d * Pvv + q * (d**3 / 2.0) * eye
    Pn[:, 3:, 3:] = Pvv + q * (d * d) * eye
    Pn = 0.5 * (Pn + np.swapaxes(Pn, 1, 2))
    return xn, Pn


def pair_statistic(
    x: np.ndarray, P: np.ndarray, i: np.ndarray, j: np.ndarray, use_velocity: bool = False
) -> np.ndarray:
    """Track-to-track test statistic ``d^2 = dx^T (P_i + P_j)^-1 dx`` for pairs (i, j).

    This is the track-to-track association test of [BS81] with the cross-covariance between the
    two local estimates neglected (it is unknown to a federated fuser); with common process
    noise the true covariance of dx is ``P_i + P_j - P_ij - P_ji``, smaller than the one used,
    so the test is conservative (it passes same-object pairs slightly more often). Position only
    (3 dof) unless ``use_velocity`` (6 dof).
    """
    if len(i) == 0:
        return np.zeros(0)
    k = 6 if use_velocity else 3
    dx = x[i, :k] - x[j, :k]
    S = P[i, :k, :k] + P[j, :k, :k]
    sol = np.linalg.solve(S, dx[:, :, None])[:, :, 0]
    return np.einsum("ni,ni->n", dx, sol)


def fast_ci_weights(P: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fast covariance-intersection weights of [N02]: ``w_i = (1/tr P_i) / sum_j (1/tr P_j)``.

    ``P`` is (K, M, 6, 6) padded, ``mask`` (K, M) marks the real entries; padded weights are 0.
    """
    tr = np.trace(P, axis1=-2, axis2=-1)
    inv_tr = np.where(mask, 1.0 / np.where(mask, tr, 1.0), 0.0)
    return inv_tr / inv_tr.sum(axis=1, keepdims=True)


def fuse_stack(x: np.ndarray, P: np.ndarray, mask: np.ndarray, method: str = "ci"):
    """Fuse up to M estimates per row: (K, M, 6), (K, M, 6, 6), mask (K, M) -> (K, 6), (K, 6, 6).

    ``ci``: covariance intersection [JU97], generalised to M estimates,
    ``P^-1 = sum_i w_i P_i^-1``, ``x = P sum_i w_i P_i^-1 x_i`` with convex weights ``w`` from
    :func:`fast_ci_weights`. For any convex weights the result is consistent whatever the
    (unknown) cross-covariances between the estimates are [JU97].
    ``naive``: the information sum ``P^-1 = sum_i P_i^-1`` (all weights 1), which is the optimal
    fusion only if the estimation errors are independent (information form of the static
    fusion of independent estimates); with correlated errors it is overconfident.

    Rows with a single estimate are passed through unchanged (bit for bit). The output
    covariance is symmetrised.
    """
    K, M = mask.shape
    x_out = np.zeros((K, 6))
    P_out = np.zeros((K, 6, 6))
    if K == 0:
        return x_out, P_out
    n = mask.sum(axis=1)
    single = n == 1
    if single.any():
        first = np.argmax(mask, axis=1)
        rows = np.nonzero(single)[0]
        x_out[rows] = x[rows, first[rows]]
        P_out[rows] = P[rows, first[rows]]
    multi = np.nonzero(n > 1)[0]
    if len(multi) == 0:
        return x_out, P_out
    xm, Pm, mm = x[multi], P[multi], mask[multi]
    if method == "ci":
        w = fast_ci_weights(Pm, mm)
    elif method == "naive":
        w = mm.astype(float)
    else:
        raise ValueError(f"unknown fusion method {method!r}; expected 'ci' or 'naive'")
    # padded entries hold the identity so that the batched inverse is defined; their weight is 0
    Psafe = np.where(mm[:, :, None, None], Pm, np.eye(6))
    info = np.linalg.inv(Psafe)
    info = 0.5 * (info + np.swapaxes(info, -1, -2))
    wi = w[:, :, None, None] * info
    Y = wi.sum(axis=1)
    y = np.einsum("kmij,kmj->ki", wi, np.where(mm[:, :, None], xm, 0.0))
    Pf = np.linalg.inv(Y)
    Pf = 0.5 * (Pf + np.swapaxes(Pf, -1, -2))
    x_out[multi] = np.einsum("kij,kj->ki", Pf, y)
    P_out[multi] = Pf
    return x_out, P_out


def information(x: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Information form of a stack of estimates: ``Y = P^-1`` (symmetrised), ``y = Y x``."""
    Y = np.linalg.inv(P)
    Y = 0.5 * (Y + np.swapaxes(Y, -1, -2))
    return Y, np.einsum("nij,nj->ni", Y, x)


def from_information(Y: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Back from information form: ``P = Y^-1`` (symmetrised), ``x = P y``."""
    P = np.linalg.inv(Y)
    P = 0.5 * (P + np.swapaxes(P, -1, -2))
    return np.einsum("nij,nj->ni", P, y), P


def information_increment(
    x_new: np.ndarray, P_new: np.ndarray, x_old: np.ndarray, P_old: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The new information in a local estimate since an earlier one, both at the same time.

    Information decorrelation of [CMC90] / information matrix fusion of [TB09] (eq. for the
    fusion with memory, [BWT11] ch. 8): a local track's estimate ``(x_new, P_new)`` holds its
    earlier estimate ``(x_old, P_old)`` (predicted to the same time) plus what its sensors
    measured since; the increment

        ``dY = P_new^-1 - P_old^-1``,   ``dy = P_new^-1 x_new - P_old^-1 x_old``

    is the information of those measurements alone (for a Kalman filter exactly
    ``sum H^T R^-1 H`` and ``sum H^T R^-1 z``), so adding it to a fused estimate that already
    holds the earlier estimate counts nothing twice.

    Returns ``(dY, dy, widened)``. ``widened`` flags rows whose ``dY`` has lost more than 5 %
    of the information of the earlier estimate's least-informed direction
    (``lambda_min(dY) < -0.05 / tr P_old``; ``1 / tr P_old`` bounds ``lambda_min(P_old^-1)``
    from below): the local filter widened its covariance faster than the fuser's prediction
    did (an IMM switching to its manoeuvre model), and its increment is not information. The
    caller restarts such fused tracks (:meth:`TrackFuser._fuse_imf`). A smaller negative part
    (model differences, rounding) is kept: it is less than 5 % of the information the fused
    estimate already holds from the same member, so the fused information stays positive
    definite.
    """
    Y_new, y_new = information(x_new, P_new)
    Y_old, y_old = information(x_old, P_old)
    dY = Y_new - Y_old
    dy = y_new - y_old
    if len(dY) == 0:
        return dY, dy, np.zeros(0, bool)
    lam_min = np.linalg.eigvalsh(dY)[:, 0]
    widened = lam_min < -0.05 / np.trace(P_old, axis1=-2, axis2=-1)
    return dY, dy, widened
