"""ADS-B plots -> Mode S frames: a simulated scenario's ADS-B reports as a 1090ES feed.

The inverse of :mod:`siap.formats.modes.decoder`, for replaying a simulation as a real receiver
feed (Beast over TCP/UDP, AVR) and for round-trip tests. Per plot one DF17 airborne
position squitter (TC 9-18, barometric altitude in 25 ft steps, CPR even and odd alternating
per aircraft); per aircraft an identification squitter (TC 4) whenever its callsign is new or
every ``ident_every_s``, and a DF5 surveillance identity reply carrying its Mode 3/A code.

Encodings: CPR, ICAO Doc 9871 C.2.6.1 (``yz = floor(2^17 mod(lat, dlat)/dlat + 1/2)``, same
for longitude with NL of the encoded latitude); altitude with Q bit, DO-260B 2.2.3.2.3.4;
character set, Annex 10 Vol. IV Table 3-9; ID code bit order, Annex 10 Vol. IV 3.1.2.6.7.1;
parity, :func:`siap.formats.modes.parity.crc_remainder` (address/parity for DF5). The position type
code is the smallest NUCp whose 95 % radius (DO-260A Table 2-14) covers the plot's
horizontal sigma x 2.448, so a decoder's covariance is at least the plot's.
"""

from __future__ import annotations

import math

import numpy as np

from siap import records
from siap.formats.modes.cpr import _nl
from siap.formats.modes.decoder import FT_M, NUCP_R95_M
from siap.formats.modes.frames import Frames
from siap.formats.modes.parity import crc_remainder

__all__ = ["encode_adsb_plots", "cpr_encode"]

_CHARS = "#ABCDEFGHIJKLMNOPQRSTUVWXYZ##### ###############0123456789######"
# TC 9..18 <-> NUCp 9..0 (DO-260A: airborne position with barometric altitude)
_TC_BY_NUCP = {n: 18 - n for n in range(10)}


def cpr_encode(lat: float, lon: float, odd: bool, surface: bool = False) -> tuple[int, int]:
    """17-bit CPR latitude and longitude counts (Doc 9871 C.2.6.1)."""
    span = 90.0 if surface else 360.0
    i = 1 if odd else 0
    dlat = span / (60 - i)
    yz = math.floor(131072.0 * (lat % dlat) / dlat + 0.5)
    rlat = dlat * (yz / 131072.0 + math.floor(lat / dlat))
    ni = max(_nl(rlat) - i, 1)
    dlon = span / ni
    xz = math.floor(131072.0 * (lon % dlon) / dlon + 0.5)
    return yz & 0x1FFFF, xz & 0x1FFFF


def _alt_field(alt_m: float) -> int:
    n = int(round(alt_m / FT_M / 25.0)) + 40  # (alt_ft + 1000) / 25
    n = min(max(n, 0), 0x7FF)
    return ((n & 0x7F0) << 1) | 0x010 | (n & 0x00F)


def _with_parity(body: bytes, address: int | None = None) -> bytes:
    """Append the 24-bit parity (PI = CRC for squitters; AP = CRC xor address)."""
    n = len(body) + 3
    msg = np.zeros((1, 14), np.uint8)
    msg[0, : len(body)] = np.frombuffer(body, np.uint8)
    crc = int(crc_remainder(msg, np.array([n], np.uint8))[0])  # parity bytes are 0 here
    if address is not None:
        crc ^= address
    return body + crc.to_bytes(3, "big")


def _position(address: int, lat: float, lon: float, alt_m: float, odd: bool, tc: int) -> bytes:
    yz, xz = cpr_encode(lat, lon, odd)
    me = (tc << 51) | (_alt_field(alt_m) << 36) | (int(odd) << 34) | (yz << 17) | xz
    return _with_parity(bytes([0x8D]) + address.to_bytes(3, "big") + me.to_bytes(7, "big"))


def _ident(address: int, callsign: str) -> bytes:
    cs = (callsign.upper() + " " * 8)[:8]
    me = 4 << 51
    for k, ch in enumerate(cs):
        code = _CHARS.find(ch)
        me |= (code if code > 0 else 32) << (42 - 6 * k)
    return _with_parity(bytes([0x8D]) + address.to_bytes(3, "big") + me.to_bytes(7, "big"))


def _identity_reply(address: int, code: int) -> bytes:
    a, b, c, d = (code >> 9) & 7, (code >> 6) & 7, (code >> 3) & 7, code & 7
    bits = [c & 1, a & 1, (c >> 1) & 1, (a >> 1) & 1, (c >> 2) & 1, (a >> 2) & 1, 0,
            b & 1, d & 1, (b >> 1) & 1, (d >> 1) & 1, (b >> 2) & 1, (d >> 2) & 1]
    ident = 0
    for bit in bits:
        ident = (ident << 1) | bit
    word = (5 << 27) | ident  # DF5, FS = 0, DR = 0, UM = 0, ID
    return _with_parity(word.to_bytes(4, "big"), address)


def _tc_for(sigma_m: float) -> int:
    r95 = sigma_m * math.sqrt(-2.0 * math.log(0.05))
    for nucp in range(9, 0, -1):
        if NUCP_R95_M[nucp] >= r95:
            return _TC_BY_NUCP[nucp]
    return _TC_BY_NUCP[0]


def encode_adsb_plots(plots: np.ndarray, *, ident_every_s: float = 5.0) -> Frames:
    """The Mode S frames (time order) a 1090ES receiver would have got for these ADS-B plots
    (kind ADSB with a Mode S address; others are skipped). ``where`` is the plot's index."""
    sel = np.flatnonzero((plots["kind"] == records.MeasurementKind.ADSB) & (plots["mode_s_address"] >= 0))
    sel = sel[np.argsort(plots["time_s"][sel], kind="stable")]
    rows: list[tuple[float, bytes, int]] = []
    parity: dict[int, bool] = {}
    last_ident: dict[int, tuple[float, str]] = {}
    for i in sel:
        p = plots[i]
        addr = int(p["mode_s_address"]) & 0xFFFFFF
        t = float(p["time_s"])
        cs = str(p["callsign"]).strip()
        seen = last_ident.get(addr)
        if seen is None or seen[1] != cs or t - seen[0] >= ident_every_s:
            if cs:
                rows.append((t, _ident(addr, cs), int(i)))
            if int(p["mode_3a"]) >= 0:
                rows.append((t, _identity_reply(addr, int(p["mode_3a"])), int(i)))
            last_ident[addr] = (t, cs)
        odd = parity.get(addr, False)
        parity[addr] = not odd
        sigma = math.sqrt(max(float(p["cov"][0, 0]), float(p["cov"][1, 1]), 0.0))
        rows.append((t, _position(addr, float(p["lat_deg"]), float(p["lon_deg"]), float(p["alt_m"]), odd, _tc_for(sigma)), int(i)))
    n = len(rows)
    msg = np.zeros((n, 14), np.uint8)
    length = np.zeros(n, np.uint8)
    for k, (_, data, _) in enumerate(rows):
        msg[k, : len(data)] = np.frombuffer(data, np.uint8)
        length[k] = len(data)
    return Frames(np.array([r[0] for r in rows], float), msg, length,
                        np.full(n, 255, np.int16), np.array([r[2] for r in rows], np.int64))
