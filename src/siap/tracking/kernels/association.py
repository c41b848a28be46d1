"""Gating and direct assignment (compiled): the uniform grid over the tracks' predicted
positions and its candidate pairs, the horizontal prefilter and the tracks' gate radii, the
assignment of (track, plot) pairs that are alone in their cluster, and the connected components
(clusters) of a graph of pairs."""

from __future__ import annotations

import numpy as np
from numba import njit


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


@njit(cache=True)
def _find(parent, a):
    """Root of ``a``'s set, halving the path on the way (Cormen et al., *Introduction to
    Algorithms*, 3rd ed., 2009, sec. 21.3)."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True)
def graph_components(a, b, n_nodes):
    """Connected components of the undirected graph of ``n_nodes`` nodes and edges
    ``(a[k], b[k])`` (union-find, the smaller root kept). Returns the component of each node,
    numbered 0, 1, ... in increasing order of the component's smallest node (the numbering of
    ``scipy.sparse.csgraph.connected_components``), and the number of components."""
    parent = np.arange(n_nodes)
    for k in range(len(a)):
        ra = _find(parent, a[k])
        rb = _find(parent, b[k])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    label = np.empty(n_nodes, np.int64)
    n = 0
    for v in range(n_nodes):
        r = _find(parent, v)  # r <= v: a root is the smallest node of its set
        if r == v:
            label[v] = n
            n += 1
        else:
            label[v] = label[r]
    return label, n
