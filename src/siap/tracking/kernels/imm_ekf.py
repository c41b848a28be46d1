"""The IMM-EKF update (compiled): scores and updates of (track, plot) pairs, and the
out-of-sequence update; one call per batch of pairs.

Each kernel fuses, per (track, plot) pair or per track, the steps that :mod:`.filters` and
:mod:`.measurements` write as batched NumPy operations, so that nothing of size K x 6 x 6 is
materialised and the per-call overhead is one function call instead of dozens. The maths is
the same (and tested equal to the NumPy versions, ``tests/test_tracking_kernels.py``):

* IMM switching matrix of the two-state continuous-time Markov chain and mixing
  (Bar-Shalom, Li & Kirubarajan 2001 (BLK) eq. 11.6.6-6 to -10);
* nearly-constant-velocity prediction ``F P F' + Q`` (BLK eq. 6.2.2-12, -13), ``Q(|T|)`` with
  the sign of ``T`` on the position-velocity terms for a negative ``T``;
* measurement functions and Jacobians of RADAR_3D / RADAR_2D (with or without Mode C) / ADSB
  plots (BLK sec. 10.3), innovation with the azimuth wrapped into [-pi, pi);
* innovation covariance, its inverse and determinant (adjugate), Mahalanobis distance,
  generalised distance ``d^2 + ln|S|`` (Blackman & Popoli 1999, sec. 6.2) and the IMM mixture
  cost ``-2 ln sum_j c_j |S_j|^(-1/2) exp(-d_j^2/2)``;
* EKF update with the Joseph-form covariance (BLK eq. 5.2.3-18), mode probabilities
  (BLK eq. 11.6.6-15, floored at 1e-6) and moment-matched combination (eq. 11.6.6-20, -21).

Kernels are compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import _NO_NRT, _TWO_PI, ADSB, RADAR_2D


@njit(cache=True, error_model="numpy", inline="always")
def _transition(dt, tau0, tau1):
    a = 1.0 / tau0
    b = 1.0 / tau1
    e = np.exp(-(a + b) * abs(dt))
    p00 = (b + a * e) / (a + b)
    p11 = (a + b * e) / (a + b)
    return p00, 1.0 - p00, 1.0 - p11, p11


@njit(cache=True, error_model="numpy", inline="always")
def _mix_predict(i, dt, nm, xm, Pm, mu, tau0, tau1, qh, qv, x0, P0, cbar):
    """IMM mixing of track ``i`` (BLK eq. 11.6.6-6 to -10) and CV prediction of each mode over
    ``dt`` into ``x0`` (nm, 6), ``P0`` (nm, 6, 6); ``cbar`` (nm,) the predicted mode
    probabilities."""
    if nm == 2:
        p00, p01, p10, p11 = _transition(dt, tau0, tau1)
        m0 = mu[i, 0]
        m1 = mu[i, 1]
        c0 = max(p00 * m0 + p10 * m1, 1e-300)
        c1 = max(p01 * m0 + p11 * m1, 1e-300)
        cbar[0] = c0
        cbar[1] = c1
        for j in range(2):
            if j == 0:
                w0 = p00 * m0 / c0
                w1 = p10 * m1 / c0
            else:
                w0 = p01 * m0 / c1
                w1 = p11 * m1 / c1
            for a in range(6):
                x0[j, a] = w0 * xm[i, 0, a] + w1 * xm[i, 1, a]
            for a in range(6):
                d0a = xm[i, 0, a] - x0[j, a]
                d1a = xm[i, 1, a] - x0[j, a]
                for b in range(a, 6):  # the mode covariances are symmetric
                    d0b = xm[i, 0, b] - x0[j, b]
                    d1b = xm[i, 1, b] - x0[j, b]
                    v = w0 * (Pm[i, 0, a, b] + d0a * d0b) + w1 * (Pm[i, 1, a, b] + d1a * d1b)
                    P0[j, a, b] = v
                    P0[j, b, a] = v
    else:
        cbar[0] = 1.0
        for a in range(6):
            x0[0, a] = xm[i, 0, a]
            for b in range(6):
                P0[0, a, b] = Pm[i, 0, a, b]
    ad = abs(dt)
    c3 = ad * ad * ad / 3.0
    c2 = dt * ad / 2.0
    for j in range(nm):
        _predict_inplace(x0, P0, j, dt, qh[j], qv[j], c3, c2, ad)


@njit(cache=True, error_model="numpy", inline="always")
def _predict_inplace(x, P, j, dt, q_h, q_v, c3, c2, ad):
    """x[j] <- F x[j], P[j] <- F P[j] F' + Q (blockwise: P_pp + T (P_pv + P_vp) + T^2 P_vv,
    P_pv + T P_vv). (Indexed rather than passed as views: no reference counting per call.)"""
    for a in range(3):
        x[j, a] += dt * x[j, a + 3]
    for a in range(3):
        for b in range(3):
            ppv = P[j, a, b + 3] + dt * P[j, a + 3, b + 3]
            P[j, a, b] = P[j, a, b] + dt * (P[j, a + 3, b] + ppv)
            P[j, a, b + 3] = ppv
    for a in range(3):
        for b in range(3):
            P[j, a + 3, b] = P[j, b, a + 3]
    for ax in range(3):
        q = q_h if ax < 2 else q_v
        P[j, ax, ax] += c3 * q
        P[j, ax, ax + 3] += c2 * q
        P[j, ax + 3, ax] += c2 * q
        P[j, ax + 3, ax + 3] += ad * q


@njit(cache=True, error_model="numpy", inline="always")
def _measure(x0, x1, x2, g, kind, has_alt, z, site, rot, re, rc, nu, Hp):
    """Innovation ``nu`` = z - h(x) (azimuth wrapped) and position Jacobian ``Hp`` of plot g at
    the position (x0, x1, x2)."""
    k = kind[g]
    if k == ADSB:
        nu[0] = z[g, 0] - x0
        nu[1] = z[g, 1] - x1
        nu[2] = z[g, 2] - x2
        for a in range(3):
            for b in range(3):
                Hp[a, b] = 1.0 if a == b else 0.0
        return
    p0 = x0 - site[g, 0]
    p1 = x1 - site[g, 1]
    p2 = x2 - site[g, 2]
    dx = rot[g, 0, 0] * p0 + rot[g, 0, 1] * p1 + rot[g, 0, 2] * p2
    dy = rot[g, 1, 0] * p0 + rot[g, 1, 1] * p1 + rot[g, 1, 2] * p2
    dz = rot[g, 2, 0] * p0 + rot[g, 2, 1] * p1 + rot[g, 2, 2] * p2
    rho2 = max(dx * dx + dy * dy, 1e-6)
    rho = np.sqrt(rho2)
    r2 = rho2 + dz * dz
    r = np.sqrt(r2)
    f = dz / (r2 * rho)
    j00, j01, j02 = dx / r, dy / r, dz / r
    j10, j11, j12 = dy / rho2, -dx / rho2, 0.0
    j20, j21, j22 = -dx * f, -dy * f, rho / r2
    for b in range(3):
        Hp[0, b] = j00 * rot[g, 0, b] + j01 * rot[g, 1, b] + j02 * rot[g, 2, b]
        Hp[1, b] = j10 * rot[g, 0, b] + j11 * rot[g, 1, b] + j12 * rot[g, 2, b]
        Hp[2, b] = j20 * rot[g, 0, b] + j21 * rot[g, 1, b] + j22 * rot[g, 2, b]
    nu[0] = z[g, 0] - r
    daz = z[g, 1] - np.arctan2(dx, dy)
    nu[1] = (daz + np.pi) % _TWO_PI - np.pi
    if k == RADAR_2D:
        if has_alt[g]:
            v2 = rc + x2
            nv = np.sqrt(x0 * x0 + x1 * x1 + v2 * v2)
            nu[2] = z[g, 2] - (nv - re)
            Hp[2, 0] = x0 / nv
            Hp[2, 1] = x1 / nv
            Hp[2, 2] = v2 / nv
        else:
            nu[2] = z[g, 2]
            Hp[2, 0] = 0.0
            Hp[2, 1] = 0.0
            Hp[2, 2] = 0.0
    else:
        nu[2] = z[g, 2] - np.arctan2(dz, rho)


@njit(cache=True, error_model="numpy", inline="always")
def _innovation_stats(P, j, Hp, R, g, nu, S, Si, HP):
    """S = Hp P_pp Hp' + R (symmetrised) with P_pp of ``P[j]``, its inverse; returns
    (d^2, det S); ``HP`` = Hp P_pp."""
    for a in range(3):
        for b in range(3):
            s = 0.0
            for c in range(3):
                s += Hp[a, c] * P[j, c, b]
            HP[a, b] = s
    for a in range(3):
        for b in range(3):
            s = 0.0
            for c in range(3):
                s += HP[a, c] * Hp[b, c]
            S[a, b] = s + R[g, a, b]
    for a in range(3):
        for b in range(a + 1, 3):
            m = 0.5 * (S[a, b] + S[b, a])
            S[a, b] = m
            S[b, a] = m
    a_, b_, c_ = S[0, 0], S[0, 1], S[0, 2]
    d_, e_, f_ = S[1, 0], S[1, 1], S[1, 2]
    g_, h_, i_ = S[2, 0], S[2, 1], S[2, 2]
    A = e_ * i_ - f_ * h_
    B = -(d_ * i_ - f_ * g_)
    C = d_ * h_ - e_ * g_
    det = a_ * A + b_ * B + c_ * C
    r = 1.0 / det
    Si[0, 0] = A * r
    Si[1, 0] = B * r
    Si[2, 0] = C * r
    Si[0, 1] = -(b_ * i_ - c_ * h_) * r
    Si[1, 1] = (a_ * i_ - c_ * g_) * r
    Si[2, 1] = -(a_ * h_ - b_ * g_) * r
    Si[0, 2] = (b_ * f_ - c_ * e_) * r
    Si[1, 2] = -(a_ * f_ - c_ * d_) * r
    Si[2, 2] = (a_ * e_ - b_ * d_) * r
    d2 = 0.0
    for a in range(3):
        s = 0.0
        for b in range(3):
            s += Si[a, b] * nu[b]
        d2 += nu[a] * s
    return d2, det


@njit(cache=True, error_model="numpy", inline="always")
def _gain_joseph(P0, j, Hp, Si, HP, R, g, PHt, K, HP6, AP, V, A):
    """Kalman gain ``K = P[:, :3] Hp' S^-1`` (BLK eq. 5.2.3-11) of mode ``j`` and the
    Joseph-form updated covariance ``A = (I - K H) P (I - K H)' + K R K'`` (not symmetrised),
    evaluated as ``AP = P - K (Hp P_p:)``, ``A = AP + (K R - AP_:p Hp') K'``. ``HP`` is
    ``Hp P_pp`` from :func:`_innovation_stats`."""
    for a in range(6):
        for b in range(3):
            s = 0.0
            for c in range(3):
                s += P0[j, a, c] * Hp[b, c]
            PHt[a, b] = s
    for a in range(6):
        for b in range(3):
            s = 0.0
            for c in range(3):
                s += PHt[a, c] * Si[c, b]
            K[a, b] = s
    for a in range(3):
        for b in range(3):
            HP6[a, b] = HP[a, b]
        for b in range(3, 6):
            s = 0.0
            for c in range(3):
                s += Hp[a, c] * P0[j, c, b]
            HP6[a, b] = s
    for a in range(6):
        for b in range(6):
            s = P0[j, a, b]
            for c in range(3):
                s -= K[a, c] * HP6[c, b]
            AP[a, b] = s
    for a in range(6):
        for e in range(3):
            s = 0.0
            s2 = 0.0
            for c in range(3):
                s += AP[a, c] * Hp[e, c]
                s2 += K[a, c] * R[g, c, e]
            V[a, e] = s2 - s
    for a in range(6):
        for b in range(6):
            s = AP[a, b]
            for e in range(3):
                s += V[a, e] * K[b, e]
            A[a, b] = s


@njit(cache=True, error_model="numpy", inline="always")
def _state_update(i, j, x0, K, nu, xm):
    """Updated state of mode ``j`` of track ``i``: ``x(k|k) = x(k|k-1) + W(k) nu(k)``
    (BLK eq. 5.2.3-12), from the predicted ``x0[j]``, the gain ``K`` and the innovation
    ``nu`` (in the PDA update of :func:`siap.tracking.jpda.pda_update`, the combined innovation
    ``sum_k beta_k nu_k``, BLK sec. 6.4 / Bar-Shalom and Fortmann's PDAF)."""
    for a in range(6):
        s = 0.0
        for c in range(3):
            s += K[a, c] * nu[c]
        xm[i, j, a] = x0[j, a] + s


@njit(cache=True, error_model="numpy", inline="always")
def _horizontal_lik(nm, P0, x0, cbar, g, pos, pos_cov):
    """``sum_j c_j N(p_h - y_h,j; 0, C_h,j + R_h)``: the likelihood of plot ``g``'s Cartesian
    horizontal position under the predicted modes (``x0``, ``P0``, weights ``cbar``)."""
    lik = 0.0
    for j in range(nm):
        a11 = P0[j, 0, 0] + pos_cov[g, 0, 0]
        a22 = P0[j, 1, 1] + pos_cov[g, 1, 1]
        a12 = 0.5 * (P0[j, 0, 1] + P0[j, 1, 0] + pos_cov[g, 0, 1] + pos_cov[g, 1, 0])
        det2 = a11 * a22 - a12 * a12
        ex = pos[g, 0] - x0[j, 0]
        ey = pos[g, 1] - x0[j, 1]
        dh2 = (a22 * ex * ex - 2.0 * a12 * ex * ey + a11 * ey * ey) / det2
        lik += cbar[j] * np.exp(-0.5 * dh2) / (_TWO_PI * np.sqrt(det2))
    return lik


@njit(cache=True, error_model="numpy", inline="always")
def _combine_modes(i, nm, logl, cbar, xm, Pm, mu, xc, Pc):
    """Mode probabilities from the mode log-likelihoods ``logl`` and predicted weights
    ``cbar`` (BLK eq. 11.6.6-15, floored at 1e-6) and the moment-matched combination of the
    updated modes of track ``i`` into ``xc``, ``Pc`` (eq. 11.6.6-20, -21)."""
    if nm == 2:
        lm = max(logl[0], logl[1])
        w0 = cbar[0] * np.exp(logl[0] - lm)
        w1 = cbar[1] * np.exp(logl[1] - lm)
        m0 = w0 / (w0 + w1)
        m1 = w1 / (w0 + w1)
        m0 = min(max(m0, 1e-6), 1.0)
        m1 = min(max(m1, 1e-6), 1.0)
        sm = m0 + m1
        m0 /= sm
        m1 /= sm
        mu[i, 0] = m0
        mu[i, 1] = m1
        for a in range(6):
            xc[i, a] = m0 * xm[i, 0, a] + m1 * xm[i, 1, a]
        for a in range(6):
            d0a = xm[i, 0, a] - xc[i, a]
            d1a = xm[i, 1, a] - xc[i, a]
            for b in range(a, 6):
                d0b = xm[i, 0, b] - xc[i, b]
                d1b = xm[i, 1, b] - xc[i, b]
                v = m0 * (Pm[i, 0, a, b] + d0a * d0b) + m1 * (Pm[i, 1, a, b] + d1a * d1b)
                Pc[i, a, b] = v
                Pc[i, b, a] = v
    else:
        for a in range(6):
            xc[i, a] = xm[i, 0, a]
            for b in range(6):
                Pc[i, a, b] = Pm[i, 0, a, b]


@njit(cache=True, error_model="numpy")
def pair_scores(
    ti, gp, nm, t_trk, xm, Pm, mu, tau0, tau1, qh, qv,
    p_time, kind, has_alt, z, R, site, rot, re, rc,
):  # fmt: skip
    """Per candidate pair (track ti[k], plot gp[k]): IMM mixing and prediction to the plot time,
    innovation, Mahalanobis distance per mode; returns (dmin (K,), cost (K,)) with
    ``cost = -2 ln sum_j c_j |S_j|^(-1/2) exp(-d_j^2/2)`` (generalised distance).

    Only the predicted positions and their covariances enter the innovation (no sensor
    measures velocity), and mixing commutes with the linear prediction ``G = [I, T I]``:
    ``G x0_j = sum_i w_ij G x_i`` and ``G P0_j G' = sum_i w_ij (G P_i G' + (G x_i - G x0_j)(.)')``,
    so each mode's estimate is predicted (position part only) before mixing."""
    k = len(ti)
    dmin = np.empty(k)
    cost = np.empty(k)
    _pair_scores_core(
        ti, gp, nm, t_trk, xm, Pm, mu, tau0, tau1, qh, qv, p_time, kind, has_alt, z, R, site,
        rot, re, rc, dmin, cost, np.empty((2, 3)), np.empty((2, 3, 3)), np.empty(3),
        np.empty((1, 3, 3)), np.empty(3), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)),
        np.empty((3, 3)), np.empty(nm), np.empty(2), np.empty((2, 2)),
    )  # fmt: skip
    return dmin, cost


@njit(cache=True, error_model="numpy", **_NO_NRT)
def _pair_scores_core(
    ti, gp, nm, t_trk, xm, Pm, mu, tau0, tau1, qh, qv, p_time, kind, has_alt, z, R, site, rot,
    re, rc, dmin, cost, y, C, x0, P0, nu, Hp, S, Si, HP, e, cbar, w,
):  # fmt: skip
    """The loop of :func:`pair_scores` (outputs and scratch arrays allocated by the caller;
    ``w[i, j]`` = mu_{i|j})."""
    k = len(ti)
    for p in range(k):
        i = ti[p]
        g = gp[p]
        dt = p_time[g] - t_trk[i]
        ad = abs(dt)
        c3 = ad * ad * ad / 3.0
        for m in range(nm):
            for a in range(3):
                y[m, a] = xm[i, m, a] + dt * xm[i, m, a + 3]
            for a in range(3):
                for b in range(a, 3):
                    v = (
                        Pm[i, m, a, b]
                        + dt * (Pm[i, m, a + 3, b] + Pm[i, m, a, b + 3])
                        + dt * dt * Pm[i, m, a + 3, b + 3]
                    )
                    C[m, a, b] = v
                    C[m, b, a] = v
        if nm == 2:
            p00, p01, p10, p11 = _transition(dt, tau0, tau1)
            m0 = mu[i, 0]
            m1 = mu[i, 1]
            cbar[0] = max(p00 * m0 + p10 * m1, 1e-300)
            cbar[1] = max(p01 * m0 + p11 * m1, 1e-300)
            w[0, 0] = p00 * m0 / cbar[0]
            w[1, 0] = p10 * m1 / cbar[0]
            w[0, 1] = p01 * m0 / cbar[1]
            w[1, 1] = p11 * m1 / cbar[1]
        else:
            cbar[0] = 1.0
            w[0, 0] = 1.0
        dm = np.inf
        em = np.inf
        for j in range(nm):
            # mixed, predicted position (x0[:3]) and covariance (P0[:3, :3]) of mode j
            for a in range(3):
                s = 0.0
                for m in range(nm):
                    s += w[m, j] * y[m, a]
                x0[a] = s
            for a in range(3):
                for b in range(a, 3):
                    s = 0.0
                    for m in range(nm):
                        s += w[m, j] * (C[m, a, b] + (y[m, a] - x0[a]) * (y[m, b] - x0[b]))
                    P0[0, a, b] = s
                    P0[0, b, a] = s
            q_h = qh[j]
            P0[0, 0, 0] += c3 * q_h
            P0[0, 1, 1] += c3 * q_h
            P0[0, 2, 2] += c3 * qv[j]
            _measure(x0[0], x0[1], x0[2], g, kind, has_alt, z, site, rot, re, rc, nu, Hp)
            d2, det = _innovation_stats(P0, 0, Hp, R, g, nu, S, Si, HP)
            dm = min(dm, d2)
            e[j] = d2 + np.log(det)
            em = min(em, e[j])
        if nm == 1:
            cost[p] = e[0]
        else:
            s = 0.0
            for j in range(nm):
                s += cbar[j] * np.exp(-0.5 * (e[j] - em))
            cost[p] = em - 2.0 * np.log(s)
        dmin[p] = dm


@njit(cache=True, error_model="numpy")
def pair_update(
    ti, gp, nm, t_trk, xm, Pm, mu, xc, Pc, tau0, tau1, qh, qv,
    p_time, kind, has_alt, z, R, site, rot, re, rc, pos, pos_cov,
):  # fmt: skip
    """One full IMM-EKF cycle of track ti[k] with plot gp[k], written into the track table in
    place (xm, Pm, mu, xc, Pc, t_trk). Tracks must be distinct.

    Returns the log of the plot's horizontal likelihood under the track before the update,
    ``ln sum_j c_j N(nu_h,j; 0, S_h,j)`` with ``nu_h,j`` the plot's Cartesian horizontal
    position minus mode j's predicted one and ``S_h,j`` the sum of their horizontal
    covariances (the plot's first-order Cartesian covariance), for the track score."""
    k = len(ti)
    lnl = np.empty(k)
    _pair_update_core(
        ti, gp, nm, t_trk, xm, Pm, mu, xc, Pc, tau0, tau1, qh, qv, p_time, kind, has_alt, z, R,
        site, rot, re, rc, pos, pos_cov, lnl, np.empty((nm, 6)), np.empty((nm, 6, 6)),
        np.empty(nm), np.empty(3), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)),
        np.empty((3, 3)), np.empty((6, 3)), np.empty((6, 3)), np.empty((6, 6)),
        np.empty((6, 6)), np.empty((3, 6)), np.empty((6, 3)), np.empty(nm),
    )
    return lnl


@njit(cache=True, error_model="numpy", **_NO_NRT)
def _pair_update_core(
    ti, gp, nm, t_trk, xm, Pm, mu, xc, Pc, tau0, tau1, qh, qv, p_time, kind, has_alt, z, R,
    site, rot, re, rc, pos, pos_cov, lnl, x0, P0, cbar, nu, Hp, S, Si, HP, PHt, K, A, AP, HP6,
    V, logl,
):  # fmt: skip
    """The loop of :func:`pair_update` (output and scratch arrays allocated by the caller)."""
    k = len(ti)
    for p in range(k):
        i = ti[p]
        g = gp[p]
        dt = p_time[g] - t_trk[i]
        _mix_predict(i, dt, nm, xm, Pm, mu, tau0, tau1, qh, qv, x0, P0, cbar)
        for j in range(nm):
            _measure(x0[j, 0], x0[j, 1], x0[j, 2], g, kind, has_alt, z, site, rot, re, rc, nu, Hp)
            d2, det = _innovation_stats(P0, j, Hp, R, g, nu, S, Si, HP)
            logl[j] = -0.5 * (d2 + np.log(det))
            _gain_joseph(P0, j, Hp, Si, HP, R, g, PHt, K, HP6, AP, V, A)
            _state_update(i, j, x0, K, nu, xm)
            for a in range(6):
                for b in range(a, 6):
                    v = 0.5 * (A[a, b] + A[b, a])
                    Pm[i, j, a, b] = v
                    Pm[i, j, b, a] = v
        # horizontal likelihood of the plot (predicted, before the update)
        lnl[p] = np.log(max(_horizontal_lik(nm, P0, x0, cbar, g, pos, pos_cov), 1e-300))
        _combine_modes(i, nm, logl, cbar, xm, Pm, mu, xc, Pc)
        t_trk[i] = p_time[g]


@njit(cache=True, error_model="numpy")
def oosm_update(
    ti, gp, nm, t_trk, xm, Pm, mu, xc, Pc, qh, qv, p_time, kind, has_alt, z, R, site, rot, re,
    rc,
):  # fmt: skip
    """Out-of-sequence update of track ``ti[k]`` (state at ``t_trk``) with plot ``gp[k]`` taken
    at ``tau = p_time[g] < t_trk[i]``, per IMM mode, in place; the track keeps its time.

    One-step retrodiction (Bar-Shalom, "Update with out-of-sequence measurements in tracking:
    exact solution", IEEE Trans. AES 38(3), 2002, eqs. for x(d|k), P(d|k), P_xz, W) with the
    process noise of the lag ``T = t_k - tau`` taken as independent of the current estimation
    error (P_vv = Q(T), P_xv = 0, v(k,d|k) = 0)::

        x_d = F(-T) x,  P_d = F(-T) (P + Q(T)) F(-T)'       (retrodicted state at tau)
        nu = z - h(x_d),  H = [H_p(x_d), 0],  S = H P_d H' + R
        P_xz = P F(-T)' H',  W = P_xz S^-1
        x+ = x + W nu,  P+ = P - W S W'                        (symmetrised)

    The mode probabilities are kept (the late plot is not used to re-weigh the modes)."""
    F = np.eye(6)
    Q = np.zeros((6, 6))
    nu = np.empty(3)
    Hp = np.empty((3, 3))
    H = np.zeros((3, 6))
    for p in range(len(ti)):
        i = ti[p]
        g = gp[p]
        T = t_trk[i] - p_time[g]
        for a in range(3):
            F[a, a + 3] = -T
        for j in range(nm):
            for ax in range(3):
                q = qh[j] if ax < 2 else qv[j]
                Q[ax, ax] = T * T * T / 3.0 * q
                Q[ax, ax + 3] = T * T / 2.0 * q
                Q[ax + 3, ax] = T * T / 2.0 * q
                Q[ax + 3, ax + 3] = T * q
            x = xm[i, j].copy()
            P = Pm[i, j].copy()
            xd = F @ x
            Pd = F @ (P + Q) @ F.T
            _measure(xd[0], xd[1], xd[2], g, kind, has_alt, z, site, rot, re, rc, nu, Hp)
            H[:, :3] = Hp
            S = H @ Pd @ H.T + R[g]
            S = 0.5 * (S + S.T)
            Pxz = P @ F.T @ H.T
            W = Pxz @ np.linalg.inv(S)
            xn = x + W @ nu
            Pn = P - W @ S @ W.T
            for a in range(6):
                xm[i, j, a] = xn[a]
                for b in range(6):
                    Pm[i, j, a, b] = 0.5 * (Pn[a, b] + Pn[b, a])
        _combine_modes(i, nm, np.zeros(nm), mu[i].copy(), xm, Pm, mu, xc, Pc)
