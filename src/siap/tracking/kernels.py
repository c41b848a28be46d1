"""Compiled (numba) kernels of the tracker's hot loops: one call per batch of pairs or tracks.

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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from numba.typed import Dict

RADAR_3D = 0
RADAR_2D = 1
ADSB = 2
_TWO_PI = 2.0 * np.pi
_KEY3 = types.UniTuple(types.float64, 3)
# The inner loops of the pair and snapshot kernels are compiled without numba's reference
# counting (the public kernel allocates, the ``*_core`` function computes): passing arrays to
# the inlined helpers would otherwise cost an atomic incref/decref per array per call, about a
# fifth of their time. ``_nrt`` is numba's own (underscored) option; without it they just run
# with reference counting.
try:
    from numba.core.options import DefaultOptions

    _NO_NRT = {"_nrt": False} if hasattr(DefaultOptions, "_nrt") else {}
except ImportError:  # pragma: no cover
    _NO_NRT = {}


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma``)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, error_model="numpy", inline="always")
def _dot3(a0, a1, a2, b0, b1, b2):
    """``a0 b0 + a1 b1 + a2 b2`` accumulated in that order with fused multiply-adds, the way
    OpenBLAS's dgemm kernels (and so NumPy's ``@`` on float64) accumulate a length-3 product:
    the same number to the last bit as the NumPy formulation."""
    return _fma(a2, b2, _fma(a1, b1, a0 * b0))


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
            for a in range(6):
                s = 0.0
                for c in range(3):
                    s += K[a, c] * nu[c]
                xm[i, j, a] = x0[j, a] + s
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


@njit(cache=True, error_model="numpy")
def coverage_due(
    idx, t_now, t_trk, last_gated, xc, src, last_seen, known, revisit, log_q, site, site_alt,
    max_range, range_margin, re, origin_alt, kre2, coverage_revisits, log_p_end, min_dt,
):  # fmt: skip
    """The coverage rules for tracks ``idx`` at ``t_now`` (see Tracker._coverage_due): 0 keep,
    1 ended by its missed detections, 2 ended outside every sensor's coverage. A track with a
    sensor (bit of ``src``) whose model is not ``known`` is kept (left to the time rules)."""
    out = np.zeros(len(idx), np.int8)
    n_s = len(known)
    one = np.uint64(1)
    for p in range(len(idx)):
        i = idx[p]
        dt = t_now - t_trk[i]
        if dt <= min_dt:
            continue
        x = xc[i, 0] + dt * xc[i, 3]
        y = xc[i, 1] + dt * xc[i, 4]
        z = xc[i, 2] + dt * xc[i, 5]
        h_t = z + (x * x + y * y) / (2.0 * re) + origin_alt
        sq_t = np.sqrt(kre2 * max(h_t, 0.0))
        t_ref = max(t_trk[i], last_gated[i])
        unknown = False
        any_in = False
        all_looked = True
        log_p = 0.0
        longest = 0.0
        for w in range(src.shape[1]):
            word = src[i, w]
            if word == 0:
                continue
            for b in range(64):
                if (word >> np.uint64(b)) & one == 0:
                    continue
                s = w * 64 + b
                if s >= n_s or not known[s]:
                    unknown = True
                    break
                r = revisit[s]
                longest = max(longest, r)
                dx = x - site[s, 0]
                dy = y - site[s, 1]
                dz = z - site[s, 2]
                horiz = np.sqrt(dx * dx + dy * dy)
                slant = np.sqrt(dx * dx + dy * dy + dz * dz)
                d_h = np.sqrt(kre2 * max(site_alt[s], 0.0)) + sq_t
                if horiz <= d_h and slant <= range_margin * max_range[s]:
                    any_in = True
                    last = last_seen[i, s]
                    if not (last >= t_ref):  # NaN (never) or before the reference
                        last = t_ref
                    missed = max(np.floor((t_now - last) / r - 0.2), 0.0)
                    if missed < 1.0:
                        all_looked = False
                    log_p += missed * log_q[s]
            if unknown:
                break
        if unknown or longest == 0.0:
            continue
        if not any_in:
            if dt > coverage_revisits * longest:
                out[p] = 2
        elif all_looked and log_p < log_p_end:
            out[p] = 1
    return out


@njit(cache=True, error_model="numpy")
def sensor_ranges(sensor, pos, site, max_range):
    """Largest distance of each sensor's plots from its site: ``max_range[s]`` raised to
    ``|pos[p] - site[s]|`` for the plots ``p`` of sensor ``s = sensor[p]`` (in place)."""
    for p in range(len(sensor)):
        s = sensor[p]
        d0 = pos[p, 0] - site[s, 0]
        d1 = pos[p, 1] - site[s, 1]
        d2 = pos[p, 2] - site[s, 2]
        r = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        if r > max_range[s]:  # False for NaN
            max_range[s] = r


@njit(cache=True, error_model="numpy")
def mark_seen(ti, sensor, t, last_seen):
    """Time since each sensor's previous plot on each track (NaN if none), and the latest
    plot time of sensor ``sensor[p]`` on track ``ti[p]`` recorded in ``last_seen`` (in
    place)."""
    gap = np.empty(len(ti))
    for p in range(len(ti)):
        i = ti[p]
        s = sensor[p]
        prev = last_seen[i, s]
        gap[p] = t[p] - prev
        if not (prev >= t[p]):  # NaN or older
            last_seen[i, s] = t[p]
    return gap


@njit(cache=True, error_model="numpy")
def horizontal_prefilter(
    ti, gp, nm, t_trk, xc, Pc, xm, Pm, modes, qh_max, p_time, pos, pos_cov, mode_s, g3, g_wide
):
    """Cheap necessary condition for the gate (see Tracker._horizontal_prefilter)."""
    k = len(ti)
    keep = np.empty(k, np.bool_)
    for p in range(k):
        i = ti[p]
        g = gp[p]
        dt = p_time[g] - t_trk[i]
        dt2 = dt * dt
        q = qh_max * abs(dt) ** 3 / 3.0
        px = pos[g, 0]
        py = pos[g, 1]
        best = np.inf
        nmodes = 2 if nm == 2 else 1
        for m in range(nmodes):
            if m == 0:
                x = xc[i]
                P = Pc[i]
            else:
                x = xm[i, 1]
                P = Pm[i, 1]
            dx = px - (x[0] + dt * x[3])
            dy = py - (x[1] + dt * x[4])
            a = P[0, 0] + 2 * dt * P[0, 3] + dt2 * P[3, 3] + q + pos_cov[g, 0, 0]
            c = P[1, 1] + 2 * dt * P[1, 4] + dt2 * P[4, 4] + q + pos_cov[g, 1, 1]
            b = P[0, 1] + dt * (P[0, 4] + P[3, 1]) + dt2 * P[3, 4] + pos_cov[g, 0, 1]
            d2 = (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / (a * c - b * b)
            best = min(best, d2)
        ms = mode_s[g]
        gate = g_wide if (ms >= 0 and ms == modes[i]) else g3
        keep[p] = best <= 1.5 * gate
    return keep


@njit(cache=True, error_model="numpy")
def track_radii(idx, t_ref, half_s, t_trk, xc, Pc, q, G):
    """Predicted horizontal positions and the two parts of the search radius (see
    Tracker._track_radii)."""
    k = len(idx)
    pxy = np.empty((k, 2))
    rs = np.empty(k)
    rv = np.empty(k)
    for p in range(k):
        i = idx[p]
        dt = t_ref - t_trk[i]
        pxy[p, 0] = xc[i, 0] + dt * xc[i, 3]
        pxy[p, 1] = xc[i, 1] + dt * xc[i, 4]
        a = Pc[i, 0, 0] + Pc[i, 1, 1]
        b = Pc[i, 0, 3] + Pc[i, 1, 4]
        cv = Pc[i, 3, 3] + Pc[i, 4, 4]
        ad = abs(dt) + half_s
        var = a + 2 * abs(b) * ad + cv * ad * ad + (2.0 / 3.0) * q * ad**3
        rs[p] = G * np.sqrt(max(var, 0.0))
        sig_v = np.sqrt(max(cv + 2 * q * ad, 0.0))
        rv[p] = (np.hypot(xc[i, 3], xc[i, 4]) + G * sig_v) * half_s
    return pxy, rs, rv


@njit(cache=True, **_NO_NRT)
def mark_sensors(ti, sensor, src, bin_sens, text_row):
    """Set bit ``sensor[p]`` (word ``sensor // 64``, bit ``sensor % 64``) of track ``ti[p]``
    in both sensor bit masks ``src`` and ``bin_sens`` (``(tracks, words)`` uint64), and set
    ``text_row`` of the tracks whose ``src`` changed to -1."""
    one = np.uint64(1)
    zero = np.uint64(0)
    for p in range(len(ti)):
        i = ti[p]
        w = sensor[p] // 64
        bit = one << np.uint64(sensor[p] % 64)
        if src[i, w] & bit == zero:
            src[i, w] |= bit
            text_row[i] = -1
        bin_sens[i, w] |= bit


@njit(cache=True, error_model="numpy")
def assign_direct(ti, pj, cost, n_tracks, n_plots):
    """The gated pairs (track ``ti``, plot ``pj``) whose assignment needs no solver: pairs
    whose track and plot have no other pair, and the cheapest pair of each star (a track whose
    plots have no other track, or a plot whose tracks have no other plot: a whole component,
    whose best assignment is its cheapest pair; ties go to the first pair, NaN costs last).
    Returns (``chosen``, ``rest``) masks over the pairs; ``rest`` marks the pairs of the other
    components."""
    k = len(ti)
    deg_t = np.zeros(n_tracks, np.int64)
    deg_p = np.zeros(n_plots, np.int64)
    for p in range(k):
        deg_t[ti[p]] += 1
        deg_p[pj[p]] += 1
    t_bad = np.zeros(n_tracks, np.bool_)  # the track has a plot shared with another track
    p_bad = np.zeros(n_plots, np.bool_)  # the plot has a track with other plots
    for p in range(k):
        if deg_p[pj[p]] > 1:
            t_bad[ti[p]] = True
        if deg_t[ti[p]] > 1:
            p_bad[pj[p]] = True
    best_t = np.full(n_tracks, -1, np.int64)
    best_p = np.full(n_plots, -1, np.int64)
    chosen = np.zeros(k, np.bool_)
    rest = np.zeros(k, np.bool_)
    for p in range(k):
        i = ti[p]
        j = pj[p]
        if deg_t[i] == 1 and deg_p[j] == 1:
            chosen[p] = True
        elif deg_p[j] == 1 and not t_bad[i]:
            b = best_t[i]
            if b < 0 or cost[p] < cost[b] or (np.isnan(cost[b]) and not np.isnan(cost[p])):
                best_t[i] = p
        elif deg_t[i] == 1 and not p_bad[j]:
            b = best_p[j]
            if b < 0 or cost[p] < cost[b] or (np.isnan(cost[b]) and not np.isnan(cost[p])):
                best_p[j] = p
        else:
            rest[p] = True
    for i in range(n_tracks):
        if best_t[i] >= 0:
            chosen[best_t[i]] = True
    for j in range(n_plots):
        if best_p[j] >= 0:
            chosen[best_p[j]] = True
    return chosen, rest


@njit(cache=True, error_model="numpy")
def deletion_due(
    t_now, n, t_trk, status, Pc, mu, qh, tentative, deleted, tentative_max_coast_s,
    delete_after_s, max_var_m2, score_on, score, revisit_s, score_miss, score_delete_tentative,
    score_delete_confirmed,
):  # fmt: skip
    """Which of the first ``n`` tracks the deletion rules remove at ``t_now`` (docs/tracking.md,
    'Track management'): coast time (tentative or any), predicted horizontal position variance
    ``P_xx + P_yy + 2 dt (P_xvx + P_yvy) + dt^2 (P_vxvx + P_vyvy) + 2/3 q |dt|^3`` above
    ``max_var_m2`` (``q``: the mode-probability-weighted horizontal process noise), and with
    ``score_on`` the track score with one miss per revisit below its deletion threshold."""
    dead = np.zeros(n, np.bool_)
    for i in range(n):
        st = status[i]
        if st == deleted:
            continue
        dt = t_now - t_trk[i]
        if dt > delete_after_s or (st == tentative and dt > tentative_max_coast_s):
            dead[i] = True
            continue
        ad = abs(dt)
        q = mu[i, 0] * qh[0] + mu[i, 1] * qh[1]
        var = (
            Pc[i, 0, 0]
            + Pc[i, 1, 1]
            + 2 * dt * (Pc[i, 0, 3] + Pc[i, 1, 4])
            + dt * dt * (Pc[i, 3, 3] + Pc[i, 4, 4])
            + (2.0 / 3.0) * q * ad**3
        )
        if var > max_var_m2:
            dead[i] = True
            continue
        if score_on:
            now = score[i] + np.floor(ad / revisit_s + 0.25) * score_miss
            thr = score_delete_tentative if st == tentative else score_delete_confirmed
            if now < thr:
                dead[i] = True
    return dead


@njit(cache=True, error_model="numpy")
def snapshot_states(
    sel, time_s, nm, t_trk, xc, Pc, mu, qh, qv, tau0, tau1, E, origin, pos, vel, cov, mup
):
    """Combined estimates of tracks ``sel`` predicted to ``time_s`` (Q weighted by the mode
    probabilities), converted to ECEF: positions, velocities, covariances ``T P T'`` with
    ``T = diag(E', E')`` and the predicted mode probabilities, written into ``pos`` (K, 3),
    ``vel`` (K, 3), ``cov`` (K, 6, 6), ``mup`` (K, 2) (e.g. the fields of the output records);
    returns the horizontal position variance in the tracker frame."""
    sig2 = np.empty(len(sel))
    _snapshot_core(
        sel, time_s, nm, t_trk, xc, Pc, mu, qh, qv, tau0, tau1, E, origin, pos, vel, cov, mup,
        sig2, np.empty((1, 6)), np.empty((1, 6, 6)), np.empty((6, 6)), np.empty((3, 3)),
    )  # fmt: skip
    return sig2


@njit(cache=True, error_model="numpy", **_NO_NRT)
def _snapshot_core(
    sel, time_s, nm, t_trk, xc, Pc, mu, qh, qv, tau0, tau1, E, origin, pos, vel, cov, mup,
    sig2, x, P, TP, Et,
):  # fmt: skip
    """The loop of :func:`snapshot_states` (scratch arrays allocated by the caller)."""
    k = len(sel)
    for a in range(3):  # Et = E' (rows of Et: columns of E)
        for c in range(3):
            Et[a, c] = E[c, a]
    for p in range(k):
        i = sel[p]
        dt = time_s - t_trk[i]
        for a in range(6):
            x[0, a] = xc[i, a]
            for b in range(6):
                P[0, a, b] = Pc[i, a, b]
        q_h = 0.0
        q_v = 0.0
        for j in range(nm):
            q_h += mu[i, j] * qh[j]
            q_v += mu[i, j] * qv[j]
        ad = abs(dt)
        _predict_inplace(x, P, 0, dt, q_h, q_v, ad * ad * ad / 3.0, dt * ad / 2.0, ad)
        sig2[p] = P[0, 0, 0] + P[0, 1, 1]
        if nm == 2:
            p00, p01, p10, p11 = _transition(dt, tau0, tau1)
            mup[p, 0] = mu[i, 0] * p00 + mu[i, 1] * p10
            mup[p, 1] = mu[i, 0] * p01 + mu[i, 1] * p11
        else:
            mup[p, 0] = 1.0
            mup[p, 1] = 0.0
        for a in range(3):
            sp = 0.0
            sv = 0.0
            for c in range(3):
                sp += x[0, c] * Et[a, c]
                sv += x[0, c + 3] * Et[a, c]
            pos[p, a] = sp + origin[a]
            vel[p, a] = sv
        # TP = T P with T = diag(E', E'): (T P)[oa + aa, b] = sum_c E[c, aa] P[oa + c, b]
        for oa in range(0, 6, 3):
            for aa in range(3):
                for b in range(6):
                    s = 0.0
                    for c in range(3):
                        s += Et[aa, c] * P[0, c + oa, b]
                    TP[oa + aa, b] = s
        # cov = sym(TP T'): (TP T')[a, b] = sum_c TP[a, ob + c] E[c, bb], b = ob + bb
        for oa in range(0, 6, 3):
            for aa in range(3):
                a = oa + aa
                for b in range(a, 6):
                    ob = 0 if b < 3 else 3
                    bb = b - ob
                    s = 0.0
                    for c in range(3):
                        s += TP[a, c + ob] * Et[bb, c]
                    s_t = 0.0
                    for c in range(3):
                        s_t += TP[b, c + oa] * Et[aa, c]
                    v = 0.5 * (s + s_t)
                    cov[p, a, b] = v
                    cov[p, b, a] = v


@njit(cache=True, **_NO_NRT)
def fill_text(out_bytes, offset, callsign_bytes, sel, tail_bytes, tail_row):
    """Write the text fields of output records byte by byte: in record ``p`` (row ``p`` of
    ``out_bytes``, the records viewed as bytes), the callsign bytes of track ``sel[p]`` at
    ``offset`` and, right after them, the template row ``tail_bytes[tail_row[p]]`` (the
    remaining text fields, already encoded)."""
    n_cs = callsign_bytes.shape[1]
    n_tail = tail_bytes.shape[1]
    for p in range(len(sel)):
        # row views indexed from 0: the copy loops compile to vector moves
        dst = out_bytes[p, offset:]
        src = callsign_bytes[sel[p]]
        for b in range(n_cs):
            dst[b] = src[b]
        dst = out_bytes[p, offset + n_cs :]
        src = tail_bytes[tail_row[p]]
        for b in range(n_tail):
            dst[b] = src[b]


# ---------------------------------------------------------------------------- spatial hashing
_OFF = 1 << 20  # cell index offset (cells per axis < 2^21)
_MUL = 1 << 21


@njit(cache=True, error_model="numpy")
def grid_build(xy, cell):
    """Uniform-grid index of 2D points: the points' cell keys ``(ix + OFF) * MUL + iy + OFF``
    sorted, and the sorting permutation (stable: points of one cell in index order). Cells are
    ``cell`` metres wide."""
    n = len(xy)
    keys = np.empty(n, np.int64)
    cx = np.empty(n, np.int64)
    cy = np.empty(n, np.int64)
    for i in range(n):
        ix = np.int64(np.floor(xy[i, 0] / cell)) + _OFF
        iy = np.int64(np.floor(xy[i, 1] / cell)) + _OFF
        cx[i] = ix
        cy[i] = iy
        keys[i] = ix * _MUL + iy
    if n == 0:
        return keys, np.empty(0, np.int64)
    x0, x1, y0, y1 = cx.min(), cx.max(), cy.min(), cy.max()
    if y0 >= 0 and y1 < _MUL and (x1 - x0) + (y1 - y0) <= 4 * n + 1024:
        # Stable counting sort by row, then by column (LSD radix): the same permutation as a
        # stable sort of the keys, in O(n + columns + rows).
        tmp = np.empty(n, np.int64)
        order = np.empty(n, np.int64)
        cnt = np.zeros(y1 - y0 + 2, np.int64)
        for i in range(n):
            cnt[cy[i] - y0 + 1] += 1
        for b in range(1, len(cnt)):
            cnt[b] += cnt[b - 1]
        for i in range(n):
            b = cy[i] - y0
            tmp[cnt[b]] = i
            cnt[b] += 1
        cnt = np.zeros(x1 - x0 + 2, np.int64)
        for i in range(n):
            cnt[cx[i] - x0 + 1] += 1
        for b in range(1, len(cnt)):
            cnt[b] += cnt[b - 1]
        for t in range(n):
            i = tmp[t]
            b = cx[i] - x0
            order[cnt[b]] = i
            cnt[b] += 1
    else:
        order = np.argsort(keys, kind="mergesort")
    return keys[order], order


@njit(cache=True, error_model="numpy")
def grid_pairs(keys, order, cell, gxy, qxy, rq, rs, rv, rp, f, stale, tracks_in_grid):
    """All (grid point, query point) pairs with the horizontal distance at most the pair's
    search radius ``(stale rs + sqrt(rs^2 + rp^2) + rv) f`` (``rs``, ``rv`` per track, ``rp``,
    ``f`` per plot; the tracks are the grid points if ``tracks_in_grid``, else the queries).
    ``rq`` (per query point) must bound that radius. Returns (grid index, query index) arrays,
    ordered by query point, then grid point."""
    n = len(keys)
    # Start of each grid column (cells with the same ix) in ``keys``, so that a row query
    # searches one column rather than all keys; skipped when the columns are too sparse.
    c0 = keys[0] // _MUL if n else 0
    ncol = keys[n - 1] // _MUL - c0 + 1 if n else 0
    use_cols = ncol <= 4 * n + 1024
    colstart = np.empty(ncol + 1 if use_cols else 1, np.int64)
    if use_cols:
        t = 0
        for c in range(ncol + 1):
            target = (c0 + c) * _MUL
            while t < n and keys[t] < target:
                t += 1
            colstart[c] = t
    cap = 4 * len(qxy) + 16
    oa = np.empty(cap, np.int64)
    ob = np.empty(cap, np.int64)
    m = 0
    hits = np.empty(max(n, 1), np.int64)  # a grid point is hit at most once per query
    for j in range(len(qxy)):
        x = qxy[j, 0]
        y = qxy[j, 1]
        r = rq[j]
        ix0 = np.int64(np.floor((x - r) / cell)) + _OFF
        ix1 = np.int64(np.floor((x + r) / cell)) + _OFF
        iy0 = np.int64(np.floor((y - r) / cell)) + _OFF
        iy1 = np.int64(np.floor((y + r) / cell)) + _OFF
        nh = 0
        for ix in range(ix0, ix1 + 1):
            if use_cols:
                c = ix - c0
                if c < 0 or c >= ncol:
                    continue
                lo = colstart[c]
                hi = colstart[c + 1]
            else:
                lo = 0
                hi = n
            # first key >= ix * MUL + iy0, first key > ix * MUL + iy1, within [lo, hi)
            v = ix * _MUL + iy0
            a = lo
            b = hi
            while a < b:
                mid = (a + b) >> 1
                if keys[mid] < v:
                    a = mid + 1
                else:
                    b = mid
            start = a
            v = ix * _MUL + iy1
            b = hi
            while a < b:
                mid = (a + b) >> 1
                if keys[mid] <= v:
                    a = mid + 1
                else:
                    b = mid
            for t in range(start, a):
                i = order[t]
                dx = gxy[i, 0] - x
                dy = gxy[i, 1] - y
                d = np.sqrt(dx * dx + dy * dy)
                if tracks_in_grid:
                    rad = (stale * rs[i] + np.sqrt(rs[i] * rs[i] + rp[j] * rp[j]) + rv[i]) * f[j]
                else:
                    rad = (stale * rs[j] + np.sqrt(rs[j] * rs[j] + rp[i] * rp[i]) + rv[j]) * f[i]
                if d <= rad:
                    hits[nh] = i
                    nh += 1
        if nh:
            for u in range(1, nh):  # insertion sort: the hits of one query are few
                h = hits[u]
                w = u - 1
                while w >= 0 and hits[w] > h:
                    hits[w + 1] = hits[w]
                    w -= 1
                hits[w + 1] = h
            if m + nh > cap:
                cap = 2 * (m + nh)
                oa2 = np.empty(cap, np.int64)
                ob2 = np.empty(cap, np.int64)
                oa2[:m] = oa[:m]
                ob2[:m] = ob[:m]
                oa = oa2
                ob = ob2
            for u in range(nh):
                oa[m] = hits[u]
                ob[m] = j
                m += 1
    return oa[:m].copy(), ob[:m].copy()


# ---------------------------------------------------------------------------- plot validation
REASONS = (
    "unknown_kind",
    "nan",
    "inf",
    "negative_range",
    "impossible_range",
    "impossible_angle",
    "impossible_position",
    "bad_covariance",
)


@njit(cache=True, error_model="numpy")
def validate_codes(
    kind, time_s, slat, slon, salt, rng, az, el, lat, lon, alt, cov, max_range, min_alt, max_alt
):
    """Reason code per plot: 0 usable, else 1 + the index in :data:`REASONS` of the first rule
    it breaks (see :func:`siap.tracking.measurements.validate`)."""
    n = len(kind)
    out = np.zeros(n, np.int8)
    half_pi = np.pi / 2
    c = np.empty((3, 3))
    for p in range(n):
        k = kind[p]
        if k != RADAR_3D and k != RADAR_2D and k != ADSB:
            out[p] = 1
            continue
        # required fields: any NaN (code 2) before any infinite value (code 3)
        has_nan = False
        has_inf = False
        v = time_s[p]
        has_nan |= np.isnan(v)
        has_inf |= np.isinf(v)
        if k != ADSB:
            for v in (slat[p], slon[p], salt[p], rng[p], az[p]):
                has_nan |= np.isnan(v)
                has_inf |= np.isinf(v)
            if k == RADAR_3D:
                v = el[p]
                has_nan |= np.isnan(v)
                has_inf |= np.isinf(v)
        else:
            for v in (lat[p], lon[p], alt[p]):
                has_nan |= np.isnan(v)
                has_inf |= np.isinf(v)
        nb = 2 if k == RADAR_2D else 3  # RADAR_2D: the (range, azimuth) block
        for a in range(nb):
            for b in range(nb):
                v = cov[p, a, b]
                has_nan |= np.isnan(v)
                has_inf |= np.isinf(v)
        if has_nan:
            out[p] = 2
            continue
        if has_inf:
            out[p] = 3
            continue
        radar = k != ADSB
        if radar and rng[p] < 0:
            out[p] = 4
            continue
        if radar and (rng[p] == 0 or rng[p] > max_range):
            out[p] = 5
            continue
        if k == RADAR_3D and abs(el[p]) > half_pi:
            out[p] = 6
            continue
        has_modec = k == RADAR_2D and np.isfinite(alt[p]) and np.isfinite(cov[p, 2, 2])
        lat_bad = (k == ADSB and abs(lat[p]) > 90) or (radar and abs(slat[p]) > 90)
        lon_bad = (k == ADSB and abs(lon[p]) > 180) or (radar and abs(slon[p]) > 180)
        alt_used = k == ADSB or has_modec
        alt_bad = alt_used and (alt[p] < min_alt or alt[p] > max_alt)
        site_bad = radar and (salt[p] < min_alt or salt[p] > max_alt)
        if lat_bad or lon_bad or alt_bad or site_bad:
            out[p] = 7
            continue
        cmax = 0.0
        for a in range(3):
            for b in range(3):
                v = cov[p, a, b]
                c[a, b] = v if np.isfinite(v) else 0.0
                cmax = max(cmax, abs(c[a, b]))
        asym = 0.0
        for a in range(3):
            for b in range(3):
                asym = max(asym, abs(c[a, b] - c[b, a]))
        m1 = c[0, 0]
        m2 = c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0]
        m3 = (
            c[0, 0] * (c[1, 1] * c[2, 2] - c[1, 2] * c[2, 1])
            - c[0, 1] * (c[1, 0] * c[2, 2] - c[1, 2] * c[2, 0])
            + c[0, 2] * (c[1, 0] * c[2, 1] - c[1, 1] * c[2, 0])
        )
        three = k == RADAR_3D or k == ADSB or has_modec
        if m1 <= 0 or m2 <= 0 or (three and m3 <= 0) or asym > 1e-9 * cmax:
            out[p] = 8
    return out


# ---------------------------------------------------------------------------- plot conversion
@njit(cache=True, error_model="numpy")
def plots_to_local(
    kind, rng, az, el, alt, salt, cov, lat, lon, inv, site_u, T_u, ecef, origin, E, re,
    default_alt, default_alt_var, has_alt, dim, z, R, site, rot, pos, pos_cov,
):  # fmt: skip
    """The per-plot part of :meth:`siap.tracking.measurements.Geometry.prepare`, one pass over
    the plots (the inputs may be strided fields of the plot records, the outputs fields of the
    PREP_DTYPE records).

    Radar plots (range, azimuth, elevation or Mode C altitude): the uniform measurement ``z``,
    its covariance ``R``, the sensor site and rotation (``site_u[inv[p]]``,
    ``T_u[inv[p]]``: tracker ENU -> sensor ENU) and the Cartesian position and first-order
    covariance in the tracker frame.

    ADS-B plots (``ecef``: their ECEF positions, one row per ADS-B plot in order): ``z = pos =
    E (ecef - origin)`` and ``R = pos_cov = sym(A C A')`` with ``A = E E_p'`` (``E_p`` the
    ECEF-to-ENU rotation at the report, :func:`siap.geo.enu_rotation`), ``site`` 0, ``rot``
    the identity. The 3x3 products are accumulated as NumPy's ``@`` does (:func:`_dot3`).

    Every plot: ``has_alt`` (RADAR_2D with a finite Mode C altitude and variance) and the
    measurement dimension ``dim`` (2 for RADAR_2D without Mode C, else 3)."""
    c = np.empty((3, 3))
    J = np.empty((3, 3))
    cs = np.empty((3, 3))
    M = np.empty((3, 3))
    Ep = np.empty((3, 3))
    A = np.empty((3, 3))
    na = 0  # ADS-B plots so far
    for p in range(len(kind)):
        k = kind[p]
        if k == ADSB:
            has_alt[p] = False
            dim[p] = 3
            for a in range(3):
                site[p, a] = 0.0
                for b in range(3):
                    rot[p, a, b] = 1.0 if a == b else 0.0
            d0 = ecef[na, 0] - origin[0]
            d1 = ecef[na, 1] - origin[1]
            d2 = ecef[na, 2] - origin[2]
            for a in range(3):
                v = _dot3(d0, d1, d2, E[a, 0], E[a, 1], E[a, 2])
                z[p, a] = v
                pos[p, a] = v
            la = np.radians(lat[p])
            lo = np.radians(lon[p])
            sl = np.sin(la)
            cl = np.cos(la)
            so = np.sin(lo)
            co = np.cos(lo)
            Ep[0, 0], Ep[0, 1], Ep[0, 2] = -so, co, 0.0
            Ep[1, 0], Ep[1, 1], Ep[1, 2] = -sl * co, -sl * so, cl
            Ep[2, 0], Ep[2, 1], Ep[2, 2] = cl * co, cl * so, sl
            for a in range(3):  # A = E Ep'
                for b in range(3):
                    A[a, b] = _dot3(E[a, 0], E[a, 1], E[a, 2], Ep[b, 0], Ep[b, 1], Ep[b, 2])
            for a in range(3):  # M = A C
                for b in range(3):
                    M[a, b] = _dot3(
                        A[a, 0], A[a, 1], A[a, 2], cov[p, 0, b], cov[p, 1, b], cov[p, 2, b]
                    )
            for a in range(3):  # cs = M A'
                for b in range(3):
                    cs[a, b] = _dot3(M[a, 0], M[a, 1], M[a, 2], A[b, 0], A[b, 1], A[b, 2])
            for a in range(3):
                for b in range(3):
                    v = 0.5 * (cs[a, b] + cs[b, a])
                    R[p, a, b] = v
                    pos_cov[p, a, b] = v
            na += 1
            continue
        is2 = k == RADAR_2D
        ha = is2 and np.isfinite(alt[p]) and np.isfinite(cov[p, 2, 2])
        has_alt[p] = ha
        dim[p] = 2 if is2 and not ha else 3
        u = inv[p]
        for a in range(3):
            site[p, a] = site_u[u, a]
            for b in range(3):
                rot[p, a, b] = T_u[u, a, b]
        T = T_u[u]
        r = rng[p]
        a_z = az[p] % _TWO_PI
        e = el[p]
        if is2:
            ht = alt[p] if ha else default_alt
            rs = re + salt[p]
            rt = re + ht
            s = (rt * rt - rs * rs - r * r) / (2 * r * rs)
            e = np.arcsin(min(max(s, -1.0), 1.0))
        z[p, 0] = r
        z[p, 1] = a_z
        z[p, 2] = (alt[p] if ha else 0.0) if is2 else e
        for a in range(3):
            for b in range(3):
                c[a, b] = cov[p, a, b]
        if is2 and not ha:
            for a in range(3):
                c[2, a] = 0.0
                c[a, 2] = 0.0
            c[2, 2] = 1.0
        for a in range(3):
            for b in range(3):
                R[p, a, b] = 0.5 * (c[a, b] + c[b, a])
        ce = np.cos(e)
        se = np.sin(e)
        ca = np.cos(a_z)
        sa = np.sin(a_z)
        d0 = r * ce * sa
        d1 = r * ce * ca
        d2 = r * se
        J[0, 0], J[0, 1], J[0, 2] = ce * sa, r * ce * ca, -r * se * sa
        J[1, 0], J[1, 1], J[1, 2] = ce * ca, -r * ce * sa, -r * se * ca
        J[2, 0], J[2, 1], J[2, 2] = se, 0.0, r * ce
        if is2:
            alt_var = c[2, 2] if ha else default_alt_var
            for a in range(3):
                c[2, a] = 0.0
                c[a, 2] = 0.0
            c[2, 2] = alt_var / max(r * ce, 1.0) ** 2
        # cs = J c J'
        for a in range(3):
            for b in range(3):
                s = 0.0
                for w in range(3):
                    s += J[a, w] * c[w, b]
                M[a, b] = s
        for a in range(3):
            for b in range(3):
                s = 0.0
                for w in range(3):
                    s += M[a, w] * J[b, w]
                cs[a, b] = s
        # pos = site + T' d ; pos_cov = T' cs T
        for a in range(3):
            pos[p, a] = site_u[u, a] + T[0, a] * d0 + T[1, a] * d1 + T[2, a] * d2
        for a in range(3):
            for b in range(3):
                s = 0.0
                for w in range(3):
                    s += T[w, a] * cs[w, b]
                M[a, b] = s
        for a in range(3):
            for b in range(3):
                s = 0.0
                for w in range(3):
                    s += M[a, w] * T[w, b]
                pos_cov[p, a, b] = s


_SITES_LINEAR = 32  # up to this many distinct sites, look them up by a linear scan


@njit(cache=True, error_model="numpy")
def radar_sites(kind, a0, a1, a2):
    """Distinct sensor sites (a0, a1, a2) of the radar plots (ADS-B plots skipped) in order of
    first appearance, and the index of each plot's site (-1 for ADS-B plots). A repeat of the
    previous radar plot's site (the usual case) is recognised at once; the others are looked up
    by a linear scan while there are few distinct sites (ground radars), by a hash table beyond
    (airborne sensors move)."""
    n = len(kind)
    inv = np.empty(n, np.int64)
    sites = np.empty((n, 3))
    seen = Dict.empty(key_type=_KEY3, value_type=types.int64)
    u = 0
    last = -1
    for p in range(n):
        if kind[p] == ADSB:
            inv[p] = -1
            continue
        v0 = a0[p]
        v1 = a1[p]
        v2 = a2[p]
        if last >= 0 and v0 == sites[last, 0] and v1 == sites[last, 1] and v2 == sites[last, 2]:
            inv[p] = last
            continue
        j = -1
        if u <= _SITES_LINEAR:
            for q in range(u):
                if v0 == sites[q, 0] and v1 == sites[q, 1] and v2 == sites[q, 2]:
                    j = q
                    break
        else:
            key = (v0, v1, v2)
            if key in seen:
                j = seen[key]
        if j < 0:
            j = u
            sites[u, 0] = v0
            sites[u, 1] = v1
            sites[u, 2] = v2
            u += 1
            if u == _SITES_LINEAR + 1:  # from now on: hash table
                for q in range(u):
                    seen[(sites[q, 0], sites[q, 1], sites[q, 2])] = q
            elif u > _SITES_LINEAR + 1:
                seen[(v0, v1, v2)] = j
        inv[p] = j
        last = j
    return sites[:u].copy(), inv
