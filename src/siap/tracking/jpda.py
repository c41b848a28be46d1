"""Joint probabilistic data association (JPDA) for ambiguous clusters: exact marginal
association probabilities and the IMM-PDA update (numba).

For a cluster of tracks ``t`` and plots ``j`` (Bar-Shalom, Willett & Tian, *Tracking and Data
Fusion* (2011), sec. 3.4; Fortmann, Bar-Shalom & Scheffe 1983):

* a joint event assigns each track at most one plot and each plot at most one track; its
  weight is the product, over tracks, of ``L_tj = P_D N(nu_tj; 0, S_tj) / lambda`` for a track
  given plot ``j`` (``lambda`` the clutter density) and ``1 - P_D P_G`` for a track given none;
* the marginal ``beta_tj`` is the weight of the events that give ``j`` to ``t`` over the
  weight of all events, ``beta_t0 = 1 - sum_j beta_tj``;
* each track is updated with the combined innovation ``nu = sum_j beta_tj nu_tj`` and the
  covariance ``P = beta_t0 P^- + (1 - beta_t0) P^c + K (sum_j beta_tj nu_tj nu_tj' - nu nu') K'``
  (``P^c`` the Kalman-updated covariance, Joseph form), per IMM mode, with the mode
  likelihood ``beta_t0 + sum_j beta_tj N_m(nu_tj) / Nbar(nu_tj)`` (``N_m`` under mode ``m``,
  ``Nbar`` the mixture over the predicted mode probabilities).

``N`` in ``L_tj`` is the horizontal likelihood of the plot's Cartesian position (as the track
score uses), so that it and the clutter density (per unit area) are in the same units
whatever the sensor measures (:func:`pair_horizontal_loglik`).

The events are enumerated exactly (depth-first over the tracks); :mod:`.tracker` only sends
clusters whose event count is bounded by ``jpda_max_hypotheses`` and resolves larger ones by
global nearest neighbour.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels._common import _TWO_PI
from .kernels.association import graph_components
from .kernels.imm_ekf import (
    _combine_modes,
    _gain_joseph,
    _horizontal_lik,
    _innovation_stats,
    _measure,
    _mix_predict,
    _state_update,
)

__all__ = ["cluster_pairs", "jpda_marginals", "pair_horizontal_loglik", "pda_update"]


@njit(cache=True, error_model="numpy")
def jpda_marginals(ptr, cols, lr, miss, n_plots):
    """Exact JPDA marginals of one cluster.

    ``ptr`` (T + 1,) and ``cols`` (E,): the gated plots of track ``t`` are
    ``cols[ptr[t]:ptr[t + 1]]`` (local plot indices < ``n_plots``); ``lr`` (E,) the likelihood
    ratio of each (track, plot) pair and ``miss`` (T,) the weight of a track getting no plot.
    Returns ``beta`` (E,) and ``beta0`` (T,), each track's row summing to 1."""
    nt = len(ptr) - 1
    ne = len(cols)
    # Scale each track's options by its largest: every event gains the same factor, so the
    # marginals are unchanged, and products stay in range.
    lr_s = np.empty(ne)
    miss_s = np.empty(nt)
    for t in range(nt):
        m = miss[t]
        for k in range(ptr[t], ptr[t + 1]):
            m = max(m, lr[k])
        miss_s[t] = miss[t] / m
        for k in range(ptr[t], ptr[t + 1]):
            lr_s[k] = lr[k] / m
    beta = np.zeros(ne)
    beta0 = np.zeros(nt)
    used = np.zeros(n_plots, np.bool_)
    choice = np.full(nt, -1, np.int64)  # pair index chosen at each level, -1: none
    opt = np.full(nt, -2, np.int64)  # option tried at each level: -1 no plot, o >= 0 o-th plot
    w = np.empty(nt + 1)
    w[0] = 1.0
    total = 0.0
    lvl = 0
    while lvl >= 0:
        if lvl == nt:
            wt = w[nt]
            total += wt
            for t in range(nt):
                if choice[t] >= 0:
                    beta[choice[t]] += wt
                else:
                    beta0[t] += wt
            lvl -= 1
            continue
        if choice[lvl] >= 0:
            used[cols[choice[lvl]]] = False
            choice[lvl] = -1
        deg = ptr[lvl + 1] - ptr[lvl]
        o = opt[lvl] + 1
        while o >= 0 and o < deg and used[cols[ptr[lvl] + o]]:
            o += 1
        if o >= deg:
            opt[lvl] = -2
            lvl -= 1
            continue
        opt[lvl] = o
        if o == -1:
            w[lvl + 1] = w[lvl] * miss_s[lvl]
        else:
            k = ptr[lvl] + o
            choice[lvl] = k
            used[cols[k]] = True
            w[lvl + 1] = w[lvl] * lr_s[k]
        lvl += 1
    for k in range(ne):
        beta[k] /= total
    for t in range(nt):
        beta0[t] /= total
    return beta, beta0


@njit(cache=True, error_model="numpy")
def pda_update(
    trk, ptr, gps, beta, beta0, lead, nm, t_trk, xm, Pm, mu, xc, Pc, tau0, tau1, qh, qv,
    p_time, kind, has_alt, z, R, site, rot, re, rc, pos, pos_cov,
):  # fmt: skip
    """IMM-PDA update of tracks ``trk[q]`` with their plots ``gps[ptr[q]:ptr[q + 1]]`` and
    association probabilities ``beta`` (same layout) and ``beta0[q]`` (no plot), written into
    the track table in place. Track ``q`` is predicted to the time of its plot ``lead[q]``,
    whose measurement model (``Hp``, ``R``) serves all its plots (they come from one sensor in
    one frame). Mode ``j``'s likelihood, up to a factor common to the modes, is
    ``beta0 + sum_k beta_k N_j(nu_k) / Nbar(nu_k)`` with ``Nbar = sum_i cbar_i N_i`` (the PDA
    likelihood ``(1 - P_D P_G) + P_D / lambda sum_k N_j(nu_k)`` divided through by the
    mixture's).

    Returns, per track, the log of the lead plot's horizontal likelihood (for the track
    score, as :func:`.kernels.imm_ekf.pair_update`)."""
    nq = len(trk)
    lnl = np.empty(nq)
    x0 = np.empty((nm, 6))
    P0 = np.empty((nm, 6, 6))
    cbar = np.empty(nm)
    nu0 = np.empty(3)
    nu = np.empty(3)
    nub = np.empty(3)
    Snn = np.empty((3, 3))
    Hp = np.empty((3, 3))
    Hq = np.empty((3, 3))
    S = np.empty((3, 3))
    Si = np.empty((3, 3))
    HP = np.empty((3, 3))
    PHt = np.empty((6, 3))
    K = np.empty((6, 3))
    A = np.empty((6, 6))
    AP = np.empty((6, 6))
    HP6 = np.empty((3, 6))
    V = np.empty((6, 3))
    KD = np.empty((6, 3))
    logl = np.empty(nm)
    max_deg = 0
    for q in range(nq):
        max_deg = max(max_deg, ptr[q + 1] - ptr[q])
    nk = np.empty((nm, max(max_deg, 1)))  # ln N_j(nu_k), up to a common constant
    for q in range(nq):
        i = trk[q]
        g0 = lead[q]
        dt = p_time[g0] - t_trk[i]
        _mix_predict(i, dt, nm, xm, Pm, mu, tau0, tau1, qh, qv, x0, P0, cbar)
        b0 = beta0[q]
        for j in range(nm):
            _measure(x0[j, 0], x0[j, 1], x0[j, 2], g0, kind, has_alt, z, site, rot, re, rc, nu0, Hp)
            d2, det = _innovation_stats(P0, j, Hp, R, g0, nu0, S, Si, HP)
            lnorm = -0.5 * np.log(det)
            # combined innovation, spread of the innovations, and the mode likelihood
            for a in range(3):
                nub[a] = 0.0
                for b in range(3):
                    Snn[a, b] = 0.0
            for k in range(ptr[q], ptr[q + 1]):
                g = gps[k]
                _measure(
                    x0[j, 0], x0[j, 1], x0[j, 2], g, kind, has_alt, z, site, rot, re, rc, nu, Hq
                )
                bk = beta[k]
                dk = 0.0
                for a in range(3):
                    nub[a] += bk * nu[a]
                    s = 0.0
                    for b in range(3):
                        Snn[a, b] += bk * nu[a] * nu[b]
                        s += Si[a, b] * nu[b]
                    dk += nu[a] * s
                nk[j, k - ptr[q]] = lnorm - 0.5 * dk
            for a in range(3):
                for b in range(3):
                    Snn[a, b] -= nub[a] * nub[b]
            _gain_joseph(P0, j, Hp, Si, HP, R, g0, PHt, K, HP6, AP, V, A)
            _state_update(i, j, x0, K, nub, xm)
            # the Kalman update mixed with the no-plot hypothesis, plus the spread term
            for a in range(6):
                for e in range(3):
                    s = 0.0
                    for c in range(3):
                        s += K[a, c] * Snn[c, e]
                    KD[a, e] = s
            for a in range(6):
                for b in range(a, 6):
                    s = 0.0
                    for e in range(3):
                        s += KD[a, e] * K[b, e]
                    v = b0 * P0[j, a, b] + (1.0 - b0) * 0.5 * (A[a, b] + A[b, a]) + s
                    Pm[i, j, a, b] = v
                    Pm[i, j, b, a] = v
        for j in range(nm):
            lik = b0
            for k in range(ptr[q], ptr[q + 1]):
                # N_j / Nbar in the log domain (no underflow far out in the tails)
                top = -np.inf
                for m in range(nm):
                    top = max(top, nk[m, k - ptr[q]])
                nbar = 0.0
                for m in range(nm):
                    nbar += cbar[m] * np.exp(nk[m, k - ptr[q]] - top)
                lik += beta[k] * np.exp(nk[j, k - ptr[q]] - top) / nbar
            logl[j] = np.log(max(lik, 1e-300))
        # horizontal likelihood of the lead plot (predicted, before the update)
        lnl[q] = np.log(max(_horizontal_lik(nm, P0, x0, cbar, g0, pos, pos_cov), 1e-300))
        _combine_modes(i, nm, logl, cbar, xm, Pm, mu, xc, Pc)
        t_trk[i] = p_time[g0]
    return lnl


@njit(cache=True, error_model="numpy")
def pair_horizontal_loglik(ti, gp, nm, t_trk, xc, Pc, mu, qh, p_time, pos, pos_cov):
    """``ln N(p_h - y_h; 0, C_h + R_h)`` per pair: ``p_h`` the plot's Cartesian horizontal
    position and ``R_h`` its first-order covariance, ``y_h``, ``C_h`` the track's combined
    estimate predicted to the plot time with the mode-probability-weighted process noise."""
    k = len(ti)
    out = np.empty(k)
    for p in range(k):
        i = ti[p]
        g = gp[p]
        dt = p_time[g] - t_trk[i]
        ad = abs(dt)
        q = 0.0
        for j in range(nm):
            q += mu[i, j] * qh[j]
        c3 = ad * ad * ad / 3.0 * q
        ex = pos[g, 0] - (xc[i, 0] + dt * xc[i, 3])
        ey = pos[g, 1] - (xc[i, 1] + dt * xc[i, 4])
        a11 = Pc[i, 0, 0] + 2.0 * dt * Pc[i, 0, 3] + dt * dt * Pc[i, 3, 3] + c3 + pos_cov[g, 0, 0]
        a22 = Pc[i, 1, 1] + 2.0 * dt * Pc[i, 1, 4] + dt * dt * Pc[i, 4, 4] + c3 + pos_cov[g, 1, 1]
        a12 = (
            0.5 * (Pc[i, 0, 1] + Pc[i, 1, 0])
            + dt * (Pc[i, 0, 4] + Pc[i, 1, 3])
            + dt * dt * Pc[i, 3, 4]
            + 0.5 * (pos_cov[g, 0, 1] + pos_cov[g, 1, 0])
        )
        det2 = a11 * a22 - a12 * a12
        dh2 = (a22 * ex * ex - 2.0 * a12 * ex * ey + a11 * ey * ey) / det2
        out[p] = -0.5 * dh2 - np.log(_TWO_PI * np.sqrt(det2))
    return out


@njit(cache=True)
def cluster_pairs(ti, pj, n_tracks, n_plots):
    """Connected components of the bipartite graph of (track ``ti[k]``, plot ``pj[k]``)
    pairs (:func:`.kernels.association.graph_components`). Returns the component of each pair,
    numbered 0, 1, ... in order of first appearance, and the number of components."""
    node_label, n_nodes_comp = graph_components(ti, n_tracks + pj, n_tracks + n_plots)
    label = np.full(n_nodes_comp, -1, np.int64)
    comp = np.empty(len(ti), np.int64)
    n = 0
    for k in range(len(ti)):
        r = node_label[ti[k]]
        if label[r] < 0:
            label[r] = n
            n += 1
        comp[k] = label[r]
    return comp, n
