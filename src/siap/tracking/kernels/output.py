"""Snapshots (compiled): a track table's states predicted to a common time and written in
ECEF into TRACK_DTYPE fields, and the text fields copied as bytes."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import _NO_NRT
from .imm_ekf import _predict_inplace, _transition


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
