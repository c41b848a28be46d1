"""Compiled ASTERIX encoding: CAT062 system tracks, CAT065 SDPS service messages, and CAT048 /
CAT021 target reports (the last two for replaying simulated scenarios as a real feed).

The encoders take field tables (:data:`CAT062_FIELDS` here, ``CAT048_DTYPE`` /
``CAT021_DTYPE`` of :mod:`.decode`) so that the conversion from siap records
(:mod:`.tracks`, :mod:`.plots`) stays vectorised NumPy and the byte work is one compiled loop.
Records are packed into data blocks of at most ``max_block_bytes`` octets (a block per UDP
datagram: keep it under the path MTU, 1400 by default).

Values are rounded to the nearest LSB and clipped to the item's range; an absent value (NaN,
-1) leaves its item out.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .decode import FL_M, FT_M, NM_M

CAT062_FIELDS = np.dtype(
    [
        ("tod_s", "f8"),  # I062/070 time of track information (s after midnight UTC)
        ("track_number", "i4"),  # I062/040 (0..65535)
        ("lat_deg", "f8"),  # I062/105
        ("lon_deg", "f8"),
        ("vx_mps", "f8"),  # I062/185, east
        ("vy_mps", "f8"),  # north
        ("alt_m", "f8"),  # I062/130 geometric altitude and I062/136 flight level (see tracks)
        ("mode_3a", "i2"),  # I062/060, -1 absent
        ("mode_s_address", "i4"),  # I062/380 ADR, -1 absent
        ("callsign", "u1", (8,)),  # I062/380 ID as ASCII, all spaces or zeros = absent
        ("mono", "u1"),  # I062/080 MON: 1 mono-sensor track
        ("tentative", "u1"),  # I062/080 CNF = 1
        ("coasting", "u1"),  # I062/080 CST = 1
        ("ended", "u1"),  # I062/080 TSE = 1: last report of this track
        ("age_s", "f8"),  # I062/290 TRK: track age (s), NaN absent
    ]
)

MAX_REC_062 = 64
MAX_REC_048 = 48
MAX_REC_021 = 64


@nb.njit(cache=True, inline="always")
def _put(buf, p, v, n):
    for i in range(n):
        buf[p + n - 1 - i] = (v >> (8 * i)) & 0xFF
    return p + n


@nb.njit(cache=True, inline="always")
def _q(x, lsb, lo, hi):
    """x / lsb rounded to the nearest integer, clipped to [lo, hi]."""
    v = math.floor(x / lsb + 0.5)
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return np.int64(v)


@nb.njit(cache=True, inline="always")
def _mark(fs, frn):
    fs[(frn - 1) // 7] |= 0x80 >> ((frn - 1) % 7)


@nb.njit(cache=True, inline="always")
def _finish(out, o, fs, tmp, n):
    """Write FSPEC ``fs`` (FX bits added) then ``tmp[:n]`` at ``out[o]``; returns the new end."""
    last = 0
    for i in range(len(fs)):
        if fs[i]:
            last = i
    for i in range(last + 1):
        out[o] = fs[i] | (1 if i < last else 0)
        o += 1
    for i in range(n):
        out[o + i] = tmp[i]
    return o + n


@nb.njit(cache=True, inline="always")
def _put_callsign(buf, p, cs):
    """Eight ASCII characters as 6-bit IA-5 (ICAO Annex 10); others become spaces."""
    v = np.int64(0)
    for i in range(8):
        c = cs[i]
        if 65 <= c <= 90:
            k = c - 64
        elif 48 <= c <= 57:
            k = c
        else:
            k = 32
        v = (v << 6) | k
    return _put(buf, p, v, 6)


@nb.njit(cache=True, inline="always")
def _has_callsign(cs):
    for i in range(8):
        if cs[i] != 0 and cs[i] != 32:
            return True
    return False


@nb.njit(cache=True, nogil=True)
def _records062(f, sac, sic, service_id, out, starts):
    tmp = np.empty(MAX_REC_062, np.uint8)
    fs = np.zeros(5, np.uint8)
    o = 0
    for i in range(len(f)):
        r = f[i]
        fs[:] = 0
        p = 0
        _mark(fs, 1)
        p = _put(tmp, p, sac, 1)
        p = _put(tmp, p, sic, 1)
        _mark(fs, 3)
        p = _put(tmp, p, service_id, 1)
        _mark(fs, 4)
        p = _put(tmp, p, _q(r.tod_s % 86400.0, 1.0 / 128.0, 0, 0xFFFFFF), 3)
        if r.lat_deg == r.lat_deg and r.lon_deg == r.lon_deg:
            _mark(fs, 5)
            p = _put(tmp, p, _q(r.lat_deg, 180.0 / 33554432.0, -(1 << 31), (1 << 31) - 1) & 0xFFFFFFFF, 4)
            p = _put(tmp, p, _q(r.lon_deg, 180.0 / 33554432.0, -(1 << 31), (1 << 31) - 1) & 0xFFFFFFFF, 4)
        if r.vx_mps == r.vx_mps and r.vy_mps == r.vy_mps:
            _mark(fs, 7)
            p = _put(tmp, p, _q(r.vx_mps, 0.25, -32768, 32767) & 0xFFFF, 2)
            p = _put(tmp, p, _q(r.vy_mps, 0.25, -32768, 32767) & 0xFFFF, 2)
        if r.mode_3a >= 0:
            _mark(fs, 9)
            p = _put(tmp, p, r.mode_3a & 0xFFF, 2)
        has_adr = r.mode_s_address >= 0
        has_id = _has_callsign(r.callsign)
        if has_adr or has_id:
            _mark(fs, 11)
            p = _put(tmp, p, (0x80 if has_adr else 0) | (0x40 if has_id else 0), 1)
            if has_adr:
                p = _put(tmp, p, r.mode_s_address & 0xFFFFFF, 3)
            if has_id:
                p = _put_callsign(tmp, p, r.callsign)
        _mark(fs, 12)
        p = _put(tmp, p, r.track_number & 0xFFFF, 2)
        _mark(fs, 13)
        o1 = (np.int64(r.mono) << 7) | (np.int64(r.tentative) << 1)
        n_oct = 1
        if r.ended:
            n_oct = 2
        if r.coasting:
            n_oct = 4
        for k in range(n_oct):
            v = np.int64(0)
            if k == 0:
                v = o1
            elif k == 1:
                v = np.int64(r.ended) << 6
            elif k == 3:
                v = np.int64(r.coasting) << 7
            p = _put(tmp, p, v | (1 if k < n_oct - 1 else 0), 1)
        if r.age_s == r.age_s:
            _mark(fs, 14)
            p = _put(tmp, p, 0x80, 1)  # primary subfield: TRK only
            p = _put(tmp, p, _q(r.age_s, 0.25, 0, 255), 1)
        if r.alt_m == r.alt_m:
            _mark(fs, 17)
            p = _put(tmp, p, _q(r.alt_m / FL_M, 0.25, -32768, 32767) & 0xFFFF, 2)
            _mark(fs, 18)
            p = _put(tmp, p, _q(r.alt_m / FT_M, 6.25, -32768, 32767) & 0xFFFF, 2)
        starts[i] = o
        o = _finish(out, o, fs, tmp, p)
    starts[len(f)] = o
    return o


@nb.njit(cache=True, nogil=True)
def _pack(cat, rec, starts, max_block, out, block_ends):
    """Records ``rec[starts[i]:starts[i+1]]`` into data blocks of at most ``max_block`` octets."""
    n = len(starts) - 1
    o = 0
    nb_ = 0
    i = 0
    while i < n:
        b0 = o
        o += 3
        while i < n and (o - b0 + starts[i + 1] - starts[i] <= max_block or o == b0 + 3):
            ln = starts[i + 1] - starts[i]
            out[o : o + ln] = rec[starts[i] : starts[i + 1]]
            o += ln
            i += 1
        out[b0] = cat
        out[b0 + 1] = (o - b0) >> 8
        out[b0 + 2] = (o - b0) & 0xFF
        block_ends[nb_] = o
        nb_ += 1
    return o, nb_


def _blocks(cat: int, rec: np.ndarray, starts: np.ndarray, max_block_bytes: int) -> list[bytes]:
    if not 4 <= max_block_bytes <= 65535:
        raise ValueError("max_block_bytes must be in [4, 65535]")
    n = len(starts) - 1
    out = np.empty(int(starts[-1]) + 3 * max(n, 1), np.uint8)
    ends = np.empty(max(n, 1), np.int64)
    total, nblk = _pack(cat, rec, starts, max_block_bytes, out, ends)
    blocks, b0 = [], 0
    for e in ends[:nblk]:
        blocks.append(out[b0:e].tobytes())
        b0 = int(e)
    return blocks


def encode_cat062(fields: np.ndarray, sac: int, sic: int, service_id: int = 1, max_block_bytes: int = 1400) -> list[bytes]:
    """CAT062 data blocks (one list item per block) for a table of CAT062_FIELDS rows."""
    f = np.ascontiguousarray(fields, dtype=CAT062_FIELDS)
    rec = np.empty(MAX_REC_062 * len(f) + 1, np.uint8)
    starts = np.empty(len(f) + 1, np.int64)
    _records062(f, sac, sic, service_id, rec, starts)
    return _blocks(62, rec, starts, max_block_bytes)


def encode_cat065(
    sac: int, sic: int, time_s: float, message_type: int, *, service_id: int = 1, batch_number: int | None = None,
    nogo: int = 0, overload: bool = False, time_source_valid: bool = True,
) -> bytes:
    """One CAT065 data block holding one SDPS service message: ``message_type`` 1 (SDPS
    status, with I065/040: NOGO 0 operational / 1 degraded / 2 not currently connected, OVL
    overload, TSV time source valid), 2 (end of batch, with I065/020 batch number) or 3
    (service status report)."""
    if message_type not in (1, 2, 3):
        raise ValueError("CAT065 message_type must be 1, 2 or 3")
    fs = 0x80 | 0x40 | 0x20 | 0x10  # 010 000 015 030
    body = bytearray([sac & 0xFF, sic & 0xFF, message_type, service_id & 0xFF])
    tod = int(math.floor((time_s % 86400.0) * 128.0 + 0.5)) & 0xFFFFFF
    body += tod.to_bytes(3, "big")
    if batch_number is not None:
        fs |= 0x08
        body.append(batch_number & 0xFF)
    if message_type == 1:
        fs |= 0x04
        body.append(((nogo & 3) << 6) | (int(overload) << 5) | (int(not time_source_valid) << 4))
    rec = bytes([fs]) + bytes(body)
    return bytes([65]) + (3 + len(rec)).to_bytes(2, "big") + rec


@nb.njit(cache=True, nogil=True)
def _records048(f, out, starts):
    tmp = np.empty(MAX_REC_048, np.uint8)
    fs = np.zeros(4, np.uint8)
    o = 0
    for i in range(len(f)):
        r = f[i]
        fs[:] = 0
        p = 0
        _mark(fs, 1)
        p = _put(tmp, p, r.sac & 0xFF, 1)
        p = _put(tmp, p, r.sic & 0xFF, 1)
        if r.tod_s == r.tod_s:
            _mark(fs, 2)
            p = _put(tmp, p, _q(r.tod_s % 86400.0, 1.0 / 128.0, 0, 0xFFFFFF), 3)
        if r.typ >= 0:
            _mark(fs, 3)
            b = (r.typ << 5) | (max(r.sim, 0) << 4) | (max(r.rdp, 0) << 3) | (max(r.spi, 0) << 2) | (max(r.rab, 0) << 1)
            if r.tst >= 0:
                p = _put(tmp, p, b | 1, 1)
                p = _put(tmp, p, r.tst << 7, 1)
            else:
                p = _put(tmp, p, b, 1)
        if r.range_m == r.range_m and r.azimuth_rad == r.azimuth_rad:
            _mark(fs, 4)
            p = _put(tmp, p, _q(r.range_m / NM_M, 1.0 / 256.0, 0, 65535), 2)
            p = _put(tmp, p, _q(r.azimuth_rad % (2.0 * math.pi), 2.0 * math.pi / 65536.0, 0, 65536) & 0xFFFF, 2)
        if r.mode_3a >= 0:
            _mark(fs, 5)
            v = (max(r.mode_3a_v, 0) << 15) | (max(r.mode_3a_g, 0) << 14) | (max(r.mode_3a_l, 0) << 13)
            p = _put(tmp, p, v | (r.mode_3a & 0xFFF), 2)
        if r.flight_level == r.flight_level:
            _mark(fs, 6)
            v = (max(r.fl_v, 0) << 15) | (max(r.fl_g, 0) << 14)
            p = _put(tmp, p, v | (_q(r.flight_level, 0.25, -8192, 8191) & 0x3FFF), 2)
        if r.mode_s_address >= 0:
            _mark(fs, 8)
            p = _put(tmp, p, r.mode_s_address & 0xFFFFFF, 3)
        if _has_callsign(r.callsign):
            _mark(fs, 9)
            p = _put_callsign(tmp, p, r.callsign)
        if r.track_number >= 0:
            _mark(fs, 11)
            p = _put(tmp, p, r.track_number & 0xFFF, 2)
        if r.ground_speed_mps == r.ground_speed_mps and r.heading_rad == r.heading_rad:
            _mark(fs, 13)
            p = _put(tmp, p, _q(r.ground_speed_mps / NM_M, 1.0 / 16384.0, 0, 65535), 2)
            p = _put(tmp, p, _q(r.heading_rad % (2.0 * math.pi), 2.0 * math.pi / 65536.0, 0, 65536) & 0xFFFF, 2)
        if r.height_3d_m == r.height_3d_m:
            _mark(fs, 19)
            p = _put(tmp, p, _q(r.height_3d_m / FT_M, 25.0, -8192, 8191) & 0x3FFF, 2)
        starts[i] = o
        o = _finish(out, o, fs, tmp, p)
    starts[len(f)] = o
    return o


@nb.njit(cache=True, nogil=True)
def _records021(f, out, starts):
    tmp = np.empty(MAX_REC_021, np.uint8)
    fs = np.zeros(7, np.uint8)
    o = 0
    for i in range(len(f)):
        r = f[i]
        fs[:] = 0
        p = 0
        _mark(fs, 1)
        p = _put(tmp, p, r.sac & 0xFF, 1)
        p = _put(tmp, p, r.sic & 0xFF, 1)
        _mark(fs, 2)
        p = _put(tmp, p, 0, 1)  # I021/040: ATP 0 (24-bit ICAO address), no extension
        if r.track_number >= 0:
            _mark(fs, 3)
            p = _put(tmp, p, r.track_number & 0xFFF, 2)
        if r.tod_position_s == r.tod_position_s:
            _mark(fs, 5)
            p = _put(tmp, p, _q(r.tod_position_s % 86400.0, 1.0 / 128.0, 0, 0xFFFFFF), 3)
        if r.lat_deg == r.lat_deg and r.lon_deg == r.lon_deg:
            if r.high_res:
                _mark(fs, 7)
                p = _put(tmp, p, _q(r.lat_deg, 180.0 / 1073741824.0, -(1 << 31), (1 << 31) - 1) & 0xFFFFFFFF, 4)
                p = _put(tmp, p, _q(r.lon_deg, 180.0 / 1073741824.0, -(1 << 31), (1 << 31) - 1) & 0xFFFFFFFF, 4)
            else:
                _mark(fs, 6)
                p = _put(tmp, p, _q(r.lat_deg, 180.0 / 8388608.0, -(1 << 23), (1 << 23) - 1) & 0xFFFFFF, 3)
                p = _put(tmp, p, _q(r.lon_deg, 180.0 / 8388608.0, -(1 << 23), (1 << 23) - 1) & 0xFFFFFF, 3)
        if r.mode_s_address >= 0:
            _mark(fs, 11)
            p = _put(tmp, p, r.mode_s_address & 0xFFFFFF, 3)
        if r.tod_reception_s == r.tod_reception_s:
            _mark(fs, 12)
            p = _put(tmp, p, _q(r.tod_reception_s % 86400.0, 1.0 / 128.0, 0, 0xFFFFFF), 3)
        if r.geometric_height_m == r.geometric_height_m:
            _mark(fs, 16)
            p = _put(tmp, p, _q(r.geometric_height_m / FT_M, 6.25, -32768, 32767) & 0xFFFF, 2)
        if r.nic >= 0:
            _mark(fs, 17)
            if r.nacp >= 0:
                p = _put(tmp, p, ((r.nic & 0xF) << 1) | 1, 1)
                p = _put(tmp, p, (r.nacp & 0xF) << 1, 1)
            else:
                p = _put(tmp, p, (r.nic & 0xF) << 1, 1)
        if r.mode_3a >= 0:
            _mark(fs, 19)
            p = _put(tmp, p, r.mode_3a & 0xFFF, 2)
        if r.flight_level == r.flight_level:
            _mark(fs, 21)
            p = _put(tmp, p, _q(r.flight_level, 0.25, -32768, 32767) & 0xFFFF, 2)
        if r.baro_vertical_rate_mps == r.baro_vertical_rate_mps:
            _mark(fs, 24)
            p = _put(tmp, p, _q(r.baro_vertical_rate_mps * 60.0 / FT_M, 6.25, -16384, 16383) & 0x7FFF, 2)
        if r.ground_speed_mps == r.ground_speed_mps and r.track_angle_rad == r.track_angle_rad:
            _mark(fs, 26)
            p = _put(tmp, p, _q(r.ground_speed_mps / NM_M, 1.0 / 16384.0, 0, 32767), 2)
            p = _put(tmp, p, _q(r.track_angle_rad % (2.0 * math.pi), 2.0 * math.pi / 65536.0, 0, 65536) & 0xFFFF, 2)
        if _has_callsign(r.callsign):
            _mark(fs, 29)
            p = _put_callsign(tmp, p, r.callsign)
        starts[i] = o
        o = _finish(out, o, fs, tmp, p)
    starts[len(f)] = o
    return o


def encode_cat048(fields: np.ndarray, max_block_bytes: int = 1400) -> list[bytes]:
    """CAT048 data blocks for a table of ``CAT048_DTYPE`` rows (I048/010, 140, 020, 040, 070,
    090, 220, 240, 161, 200, 110 where present)."""
    from .decode import CAT048_DTYPE

    f = np.ascontiguousarray(fields, dtype=CAT048_DTYPE)
    rec = np.empty(MAX_REC_048 * len(f) + 1, np.uint8)
    starts = np.empty(len(f) + 1, np.int64)
    _records048(f, rec, starts)
    return _blocks(48, rec, starts, max_block_bytes)


def encode_cat021(fields: np.ndarray, max_block_bytes: int = 1400) -> list[bytes]:
    """CAT021 data blocks for a table of ``CAT021_DTYPE`` rows (I021/010, 040, 161, 071,
    130/131, 080, 073, 140, 090, 070, 145, 155, 160, 170 where present)."""
    from .decode import CAT021_DTYPE

    f = np.ascontiguousarray(fields, dtype=CAT021_DTYPE)
    rec = np.empty(MAX_REC_021 * len(f) + 1, np.uint8)
    starts = np.empty(len(f) + 1, np.int64)
    _records021(f, rec, starts)
    return _blocks(21, rec, starts, max_block_bytes)
