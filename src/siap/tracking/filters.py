"""Batched Kalman filter pieces: nearly-constant-velocity prediction, EKF update, IMM.

State ``x = (e, n, u, ve, vn, vu)`` in the tracker's local ENU frame (m, m/s).

Motion model: continuous white-noise acceleration (nearly constant velocity), BLK sec. 6.2.2:
``F(T) = [[I, T I], [0, I]]`` (eq. 6.2.2-13) and
``Q(T) = [[T^3/3, T^2/2], [T^2/2, T]] (x) diag(q_e, q_n, q_u)`` (eq. 6.2.2-12), with ``q`` the
power spectral density of the acceleration (m^2/s^3). A negative ``T`` (a plot slightly older
than the state, inside one frame) uses ``F(T)`` and ``Q(|T|)``.

EKF update (BLK eq. 5.2.3-8 to 5.2.3-17 with the Jacobian of sec. 10.3): ``S = H P H' + R``,
``K = P H' S^-1``, ``x+ = x + K nu``, covariance in Joseph form
``P+ = (I - K H) P (I - K H)' + K R K'`` (eq. 5.2.3-18), symmetrised.

IMM (BLK sec. 11.6.6, eq. 11.6.6-5 to -21): mixing probabilities ``mu_{i|j} = p_ij mu_i / c_j``,
mixed initial conditions, mode-matched filtering, mode likelihoods ``Lambda_j = N(nu_j; 0, S_j)``,
mode probabilities ``mu_j = Lambda_j c_j / c`` and moment-matched combination. The switching
matrix comes from a continuous-time two-state Markov chain with mean sojourn times
``tau_0, tau_1`` so that it is exact for any interval ``T`` between updates:
``p_00 = (b + a e^{-(a+b)T})/(a+b)``, ``p_11 = (a + b e^{-(a+b)T})/(a+b)``, ``a = 1/tau_0``,
``b = 1/tau_1`` (e.g. Papoulis, *Probability, Random Variables and Stochastic Processes*,
two-state Markov chain).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "predict",
    "inv3",
    "ekf_update",
    "transition",
    "imm_mix",
    "combine",
]


def predict(x: np.ndarray, P: np.ndarray, dt: np.ndarray, q_h: np.ndarray, q_v: np.ndarray):
    """Predict states ``x`` (K, 6) and covariances ``P`` (K, 6, 6) over ``dt`` (K,) with the CV
    model: ``x' = F x``, ``P' = F P F' + Q``; ``q_h`` / ``q_v`` (K,) are the horizontal /
    vertical acceleration PSDs (m^2/s^3).

    Written blockwise (no 6x6 products): ``P_pp' = P_pp + T (P_pv + P_vp) + T^2 P_vv``,
    ``P_pv' = P_pv + T P_vv``, ``P_vv' = P_vv``, plus Q."""
    t = dt[:, None]
    xp = x.copy()
    xp[:, :3] += t * x[:, 3:]
    T = dt[:, None, None]
    Pp = np.empty_like(P)
    Pvv = P[:, 3:, 3:]
    Ppv = P[:, :3, 3:] + T * Pvv
    Pp[:, :3, :3] = P[:, :3, :3] + T * (P[:, 3:, :3] + Ppv)
    Pp[:, :3, 3:] = Ppv
    Pp[:, 3:, :3] = np.swapaxes(Ppv, 1, 2)
    Pp[:, 3:, 3:] = Pvv
    a = np.abs(dt)
    c3 = a**3 / 3.0
    c2 = np.sign(dt) * a**2 / 2.0
    for ax, q in enumerate((q_h, q_h, q_v)):
        Pp[:, ax, ax] += c3 * q
        c = c2 * q
        Pp[:, ax, ax + 3] += c
        Pp[:, ax + 3, ax] += c
        Pp[:, ax + 3, ax + 3] += a * q
    return xp, Pp


def inv3(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of a stack of 3x3 matrices (adjugate formula)."""
    a, b, c = S[:, 0, 0], S[:, 0, 1], S[:, 0, 2]
    d, e, f = S[:, 1, 0], S[:, 1, 1], S[:, 1, 2]
    g, h, i = S[:, 2, 0], S[:, 2, 1], S[:, 2, 2]
    A = e * i - f * h
    B = -(d * i - f * g)
    C = d * h - e * g
    det = a * A + b * B + c * C
    inv = np.empty_like(S)
    r = 1.0 / det
    inv[:, 0, 0] = A * r
    inv[:, 1, 0] = B * r
    inv[:, 2, 0] = C * r
    inv[:, 0, 1] = -(b * i - c * h) * r
    inv[:, 1, 1] = (a * i - c * g) * r
    inv[:, 2, 1] = -(a * h - b * g) * r
    inv[:, 0, 2] = (b * f - c * e) * r
    inv[:, 1, 2] = -(a * f - c * d) * r
    inv[:, 2, 2] = (a * e - b * d) * r
    return inv, det


def innovation_cov(P: np.ndarray, Hp: np.ndarray, R: np.ndarray) -> np.ndarray:
    """S = H P H' + R where H = [Hp, 0] (no velocity measured): S = Hp P_pp Hp' + R."""
    S = Hp @ P[:, :3, :3] @ np.swapaxes(Hp, 1, 2) + R
    return 0.5 * (S + np.swapaxes(S, 1, 2))


def ekf_update(
    x: np.ndarray,
    P: np.ndarray,
    nu: np.ndarray,
    Hp: np.ndarray,
    R: np.ndarray,
    Si: np.ndarray | None = None,
):
    """EKF update of (K, 6) states with (K, 3) innovations, Jacobians ``H = [Hp, 0]``.

    ``Si`` (the inverse innovation covariance) may be passed when already known. Returns x+, P+
    (Joseph form, symmetrised)."""
    if Si is None:
        Si, _ = inv3(innovation_cov(P, Hp, R))
    HpT = np.swapaxes(Hp, 1, 2)
    K = (P[:, :, :3] @ HpT) @ Si  # (K, 6, 3), BLK eq. 5.2.3-11
    xn = x + (K @ nu[:, :, None])[:, :, 0]
    A = np.broadcast_to(np.eye(6), P.shape).copy()
    A[:, :, :3] -= K @ Hp
    Pn = A @ P @ np.swapaxes(A, 1, 2) + K @ R @ np.swapaxes(K, 1, 2)
    return xn, 0.5 * (Pn + np.swapaxes(Pn, 1, 2))


def transition(dt: np.ndarray, tau0: float, tau1: float) -> np.ndarray:
    """(K, 2, 2) IMM switching matrices p_ij = P(model j at t+T | model i at t)."""
    a, b = 1.0 / tau0, 1.0 / tau1
    e = np.exp(-(a + b) * np.abs(dt))
    p00 = (b + a * e) / (a + b)
    p11 = (a + b * e) / (a + b)
    out = np.empty((len(dt), 2, 2))
    out[:, 0, 0], out[:, 0, 1] = p00, 1.0 - p00
    out[:, 1, 0], out[:, 1, 1] = 1.0 - p11, p11
    return out


def imm_mix(xm: np.ndarray, Pm: np.ndarray, mu: np.ndarray, pi: np.ndarray):
    """IMM interaction (BLK eq. 11.6.6-6 to -10). xm (K, 2, 6), Pm (K, 2, 6, 6), mu (K, 2),
    pi (K, 2, 2). Returns mixed x0 (K, 2, 6), P0 (K, 2, 6, 6) and predicted probabilities c (K, 2)."""
    k, m = mu.shape
    c = (mu[:, None, :] @ pi)[:, 0, :]  # c_j = sum_i p_ij mu_i
    c = np.maximum(c, 1e-300)
    w = pi * mu[:, :, None] / c[:, None, :]  # w[k, i, j] = mu_{i|j}
    wT = np.swapaxes(w, 1, 2)  # [k, j, i]
    x0 = wT @ xm
    P0 = (wT @ Pm.reshape(k, m, 36)).reshape(k, m, 6, 6)
    dx = xm[:, None, :, :] - x0[:, :, None, :]  # [k, j, i, d]
    P0 += ((wT[:, :, :, None] * dx)[..., :, None] * dx[..., None, :]).sum(axis=2)
    return x0, P0, c


def combine(xm: np.ndarray, Pm: np.ndarray, mu: np.ndarray):
    """Moment-matched combination of the mode estimates (BLK eq. 11.6.6-20, -21)."""
    k, m = mu.shape
    x = (mu[:, None, :] @ xm)[:, 0, :]
    P = (mu[:, None, :] @ Pm.reshape(k, m, 36)).reshape(k, 6, 6)
    dx = xm - x[:, None, :]
    P += ((mu[:, :, None] * dx)[..., :, None] * dx[..., None, :]).sum(axis=1)
    return x, 0.5 * (P + np.swapaxes(P, 1, 2))
