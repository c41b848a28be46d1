"""Plot preparation (compiled): validation codes of a plot batch, conversion of plots into the
tracker's local frame (measurement, its covariance, position and position covariance), and the
distinct radar sites of a batch."""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

from ._common import _TWO_PI, ADSB, RADAR_2D, RADAR_3D, _dot3

_KEY3 = types.UniTuple(types.float64, 3)


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
