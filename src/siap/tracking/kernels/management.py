"""Track management (compiled): which sensors have seen a track and when, each sensor's
range to a track, coverage-aware and score-based deletion."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import _NO_NRT


@njit(cache=True, error_model="numpy")
def coverage_due(
    idx, t_now, t_trk, last_gated, xc, src, last_seen, known, scanning, revisit, log_q, site,
    site_alt, max_range, range_margin, re, origin_alt, kre2, coverage_revisits, log_p_end, min_dt,
):  # fmt: skip
    """The coverage rules for tracks ``idx`` at ``t_now`` (see Tracker._coverage_due): 0 keep,
    1 ended by its missed detections, 2 ended outside every sensor's coverage. Only
    ``scanning`` sensors (radars) take part; a track with a scanning sensor (bit of ``src``)
    whose model is not ``known``, or with none, is kept (left to the time rules)."""
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
                if s < n_s and not scanning[s]:
                    continue  # ADS-B: no looks to miss (bursty reception); time rules
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
