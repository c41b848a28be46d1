"""Compact Position Reporting: decoding of airborne and surface positions (ICAO Doc 9871
Appendix C.2.6; J. Sun, *The 1090 MHz Riddle*, ch. 5)."""

from __future__ import annotations

import bisect
import math

__all__ = ["cpr_global_airborne", "cpr_global_surface", "cpr_local"]

_NZ = 15


def _nl_formula(lat: float) -> int:
    """Number of longitude zones at ``lat`` (Doc 9871 C.2.6.2), by the formula."""
    lat = abs(lat)
    if lat < 1e-9:
        return 59
    if lat > 87.0:
        return 1
    if lat == 87.0:
        return 2
    a = 1.0 - math.cos(math.pi / (2 * _NZ))
    b = math.cos(math.pi / 180.0 * lat) ** 2
    return int(math.floor(2.0 * math.pi / math.acos(1.0 - a / b)))


# The latitudes where NL drops from k to k - 1 (the table of Doc 9871 C.2.6.2), ascending:
# NL(lat) = 59 - (number of transition latitudes below |lat|).
_NL_EDGES = sorted(
    math.degrees(math.acos(math.sqrt((1.0 - math.cos(math.pi / (2 * _NZ))) / (1.0 - math.cos(2.0 * math.pi / k)))))
    for k in range(2, 60)
)


def _nl(lat: float) -> int:
    """NL(lat) by table lookup (equal to :func:`_nl_formula` away from the exact edges)."""
    return 59 - bisect.bisect_left(_NL_EDGES, abs(lat))


def cpr_global_airborne(even: tuple[int, int], odd: tuple[int, int], newest_odd: bool):
    """Globally unambiguous airborne position from an even and an odd CPR report
    (17-bit lat/lon counts); (lat, lon) of the newest, or None if the pair straddles a
    latitude zone boundary (Doc 9871 C.2.6.7)."""
    lat_e, lon_e = even[0] / 131072.0, even[1] / 131072.0
    lat_o, lon_o = odd[0] / 131072.0, odd[1] / 131072.0
    j = math.floor(59.0 * lat_e - 60.0 * lat_o + 0.5)
    rlat_e = (360.0 / 60.0) * (j % 60 + lat_e)
    rlat_o = (360.0 / 59.0) * (j % 59 + lat_o)
    if rlat_e >= 270.0:
        rlat_e -= 360.0
    if rlat_o >= 270.0:
        rlat_o -= 360.0
    if abs(rlat_e) > 90.0 or abs(rlat_o) > 90.0:
        return None
    nl = _nl(rlat_e)
    if nl != _nl(rlat_o):
        return None
    if newest_odd:
        ni = max(nl - 1, 1)
        m = math.floor(lon_e * (nl - 1) - lon_o * nl + 0.5)
        lat, lon = rlat_o, (360.0 / ni) * (m % ni + lon_o)
    else:
        ni = max(nl, 1)
        m = math.floor(lon_e * (nl - 1) - lon_o * nl + 0.5)
        lat, lon = rlat_e, (360.0 / ni) * (m % ni + lon_e)
    if lon >= 180.0:
        lon -= 360.0
    return lat, lon


def cpr_global_surface(even: tuple[int, int], odd: tuple[int, int], newest_odd: bool,
                       ref_lat: float, ref_lon: float):
    """Surface position from an even and an odd CPR report: the pair fixes it to one of four
    90-degree quadrants (and one hemisphere); the receiver's position picks the nearest
    (Doc 9871 C.2.6.8; valid while the receiver is within 45 degrees). None if the pair
    straddles a latitude zone boundary."""
    lat_e, lon_e = even[0] / 131072.0, even[1] / 131072.0
    lat_o, lon_o = odd[0] / 131072.0, odd[1] / 131072.0
    j = math.floor(59.0 * lat_e - 60.0 * lat_o + 0.5)
    rlat_e = (90.0 / 60.0) * (j % 60 + lat_e)
    rlat_o = (90.0 / 59.0) * (j % 59 + lat_o)
    # northern solution, or the southern one (minus 90 deg), whichever is nearer the receiver
    if abs(rlat_e - 90.0 - ref_lat) < abs(rlat_e - ref_lat):
        rlat_e -= 90.0
        rlat_o -= 90.0
    nl = _nl(rlat_e)
    if nl != _nl(rlat_o):
        return None
    m = math.floor(lon_e * (nl - 1) - lon_o * nl + 0.5)
    if newest_odd:
        ni = max(nl - 1, 1)
        lat, lon = rlat_o, (90.0 / ni) * (m % ni + lon_o)
    else:
        ni = max(nl, 1)
        lat, lon = rlat_e, (90.0 / ni) * (m % ni + lon_e)
    cands = [((lon + 90.0 * k) + 180.0) % 360.0 - 180.0 for k in range(4)]
    lon = min(cands, key=lambda c: abs((c - ref_lon + 180.0) % 360.0 - 180.0))
    return lat, lon


def cpr_local(cpr: tuple[int, int], odd: bool, ref_lat: float, ref_lon: float, surface: bool):
    """Position from one CPR report and a reference within half a zone (180 NM airborne,
    45 NM surface; Doc 9871 C.2.6.5)."""
    span = 90.0 if surface else 360.0
    i = 1 if odd else 0
    yz, xz = cpr[0] / 131072.0, cpr[1] / 131072.0
    dlat = span / (60 - i)
    j = math.floor(ref_lat / dlat) + math.floor(0.5 + (ref_lat % dlat) / dlat - yz)
    lat = dlat * (j + yz)
    if abs(lat) > 90.0:
        return None
    ni = max(_nl(lat) - i, 1)
    dlon = span / ni
    m = math.floor(ref_lon / dlon) + math.floor(0.5 + (ref_lon % dlon) / dlon - xz)
    lon = dlon * (m + xz)
    lon = (lon + 180.0) % 360.0 - 180.0
    return lat, lon


