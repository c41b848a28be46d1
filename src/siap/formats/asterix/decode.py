"""Compiled decoding of ASTERIX CAT048, CAT034 and CAT021 records into field tables.

:func:`decode` frames a byte buffer (:mod:`.framing`) and reads, in the same compiled pass,
the items siap uses from each record into one structured array per category (``CAT048_DTYPE``,
``CAT034_DTYPE``, ``CAT021_DTYPE``), in SI units; the other items are skipped by their length.
Absent values: NaN for floats, -1 for codes. Time of day becomes absolute Unix time
(:func:`resolve_time_of_day`). Turning the fields into plots is :mod:`.plots`' job.

Resolutions (LSB) follow the category specifications (see :mod:`.spec` for editions):
I048/040 RHO 1/256 NM, THETA 360/2^16 deg; I048/090 and I021/145 1/4 FL; I048/140, I021/071,
I021/073, I034/030 1/128 s; I048/200 GSP 2^-14 NM/s, HDG 360/2^16 deg; I048/110 25 ft;
I021/130 180/2^23 deg; I021/131 180/2^30 deg; I021/140 6.25 ft; I021/160 GS 2^-14 NM/s, TA
360/2^16 deg; I021/155 6.25 ft/min; I034/020 360/2^8 deg; I034/041 1/128 s; I034/120 HGT 1 m,
LAT/LON 180/2^23 deg.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from . import spec
from .framing import (
    BLOCK_TOO_SHORT,
    BLOCK_TRUNCATED,
    ERRORS,
    N_FRN,
    UNKNOWN_CATEGORY,
    frame_record,
    resync,
)

logger = logging.getLogger("siap.formats.asterix")

NM_M = 1852.0
FT_M = 0.3048
FL_M = 100.0 * FT_M  # one flight level (100 ft) in metres
DEG = math.pi / 180.0
DAY_S = 86400.0

_COMMON = [
    ("offset", "i8"),  # byte offset of the record in the input
    ("segment", "i4"),  # index of the segment (datagram, packet, file chunk) it came in
    ("seq", "i8"),  # order of the record in the input, all categories together
    ("sac", "i2"),
    ("sic", "i2"),
    ("tod_s", "f8"),  # time of day (s since midnight UTC) as sent
    ("time_s", "f8"),  # absolute Unix time (s), see resolve_time_of_day
]

CAT048_DTYPE = np.dtype(
    _COMMON
    + [
        ("typ", "i1"),  # I048/020 TYP (0 no detection .. 7 Mode S roll-call + PSR), -1 absent
        ("sim", "i1"),
        ("rdp", "i1"),
        ("spi", "i1"),
        ("rab", "i1"),
        ("tst", "i1"),  # -1 when the first extension is absent
        ("range_m", "f8"),  # I048/040 RHO (slant range)
        ("azimuth_rad", "f8"),  # I048/040 THETA, clockwise from north
        ("mode_3a", "i2"),  # I048/070 code (12 bits, octal digits), -1 absent
        ("mode_3a_v", "i1"),  # 0 validated, 1 not validated
        ("mode_3a_g", "i1"),  # 1 garbled
        ("mode_3a_l", "i1"),  # 1 smoothed (not extracted in the last scan)
        ("flight_level", "f8"),  # I048/090 (FL, 1/4 FL resolution)
        ("fl_v", "i1"),
        ("fl_g", "i1"),
        ("mode_s_address", "i4"),  # I048/220, -1 absent
        ("callsign", "u1", (8,)),  # I048/240 as ASCII (all zero when absent)
        ("track_number", "i4"),  # I048/161, -1 absent
        ("ground_speed_mps", "f8"),  # I048/200
        ("heading_rad", "f8"),
        ("height_3d_m", "f8"),  # I048/110
    ]
)

CAT034_DTYPE = np.dtype(
    _COMMON
    + [
        ("message_type", "i1"),  # I034/000: 1 north marker, 2 sector crossing, 3 geographical filtering, 4 jamming strobe
        ("sector_azimuth_rad", "f8"),  # I034/020
        ("antenna_period_s", "f8"),  # I034/041 antenna rotation period
        ("site_lat_deg", "f8"),  # I034/120
        ("site_lon_deg", "f8"),
        ("site_alt_m", "f8"),
    ]
)

CAT021_DTYPE = np.dtype(
    _COMMON
    + [
        ("tod_position_s", "f8"),  # I021/071 time of applicability for position
        ("tod_reception_s", "f8"),  # I021/073 time of message reception for position
        ("lat_deg", "f8"),  # I021/131 if present, else I021/130
        ("lon_deg", "f8"),
        ("high_res", "i1"),  # 1 if the position came from I021/131
        ("geometric_height_m", "f8"),  # I021/140
        ("flight_level", "f8"),  # I021/145
        ("mode_s_address", "i4"),  # I021/080 target address
        ("mode_3a", "i2"),  # I021/070
        ("callsign", "u1", (8,)),  # I021/170
        ("track_number", "i4"),  # I021/161
        ("nic", "i1"),  # I021/090 NUCp/NIC
        ("nacp", "i1"),  # I021/090 NACp (first extension), -1 absent
        ("ground_speed_mps", "f8"),  # I021/160
        ("track_angle_rad", "f8"),
        ("baro_vertical_rate_mps", "f8"),  # I021/155
    ]
)

ERROR_DTYPE = np.dtype([("offset", "i8"), ("code", "i1"), ("nbytes", "i8")])


@nb.njit(cache=True, inline="always")
def _u(buf, p, n):
    v = np.int64(0)
    for i in range(n):
        v = (v << 8) | buf[p + i]
    return v


@nb.njit(cache=True, inline="always")
def _s(v, bits):
    """Two's complement of the low ``bits`` bits of v."""
    if v & (np.int64(1) << (bits - 1)):
        return v - (np.int64(1) << bits)
    return v


@nb.njit(cache=True, inline="always")
def _callsign(buf, p, cs):
    """Eight 6-bit IA-5 characters (ICAO Annex 10) into ASCII."""
    v = _u(buf, p, 6)
    for i in range(8):
        c = (v >> (42 - 6 * i)) & 0x3F
        if 1 <= c <= 26:
            cs[i] = 64 + c
        elif c == 32 or 48 <= c <= 57:
            cs[i] = c
        else:
            cs[i] = 32  # not a character of the set (0: no character): a space
    return 0


@nb.njit(cache=True, inline="always")
def _init_common(r, off, seg, seq, offs, buf):
    r.offset = off
    r.segment = seg
    r.seq = seq
    r.sac = -1
    r.sic = -1
    if offs[0] >= 0:
        r.sac = buf[offs[0]]
        r.sic = buf[offs[0] + 1]
    r.time_s = np.nan


@nb.njit(cache=True)
def _ext048(buf, offs, r):
    p = offs[1]
    r.tod_s = _u(buf, p, 3) / 128.0 if p >= 0 else np.nan
    p = offs[2]
    r.typ = r.sim = r.rdp = r.spi = r.rab = r.tst = -1
    if p >= 0:
        b = buf[p]
        r.typ = b >> 5
        r.sim = (b >> 4) & 1
        r.rdp = (b >> 3) & 1
        r.spi = (b >> 2) & 1
        r.rab = (b >> 1) & 1
        if b & 1:
            r.tst = buf[p + 1] >> 7
    p = offs[3]
    if p >= 0:
        r.range_m = _u(buf, p, 2) / 256.0 * NM_M
        r.azimuth_rad = _u(buf, p + 2, 2) * (2.0 * math.pi / 65536.0)
    else:
        r.range_m = r.azimuth_rad = np.nan
    p = offs[4]
    r.mode_3a = r.mode_3a_v = r.mode_3a_g = r.mode_3a_l = -1
    if p >= 0:
        v = _u(buf, p, 2)
        r.mode_3a = v & 0xFFF
        r.mode_3a_v = v >> 15
        r.mode_3a_g = (v >> 14) & 1
        r.mode_3a_l = (v >> 13) & 1
    p = offs[5]
    r.fl_v = r.fl_g = -1
    r.flight_level = np.nan
    if p >= 0:
        v = _u(buf, p, 2)
        r.fl_v = v >> 15
        r.fl_g = (v >> 14) & 1
        r.flight_level = _s(v & 0x3FFF, 14) * 0.25
    p = offs[7]
    r.mode_s_address = _u(buf, p, 3) if p >= 0 else -1
    p = offs[8]
    for i in range(8):
        r.callsign[i] = 0
    if p >= 0:
        _callsign(buf, p, r.callsign)
    p = offs[10]
    r.track_number = _u(buf, p, 2) & 0xFFF if p >= 0 else -1
    p = offs[12]
    if p >= 0:
        r.ground_speed_mps = _u(buf, p, 2) * (NM_M / 16384.0)
        r.heading_rad = _u(buf, p + 2, 2) * (2.0 * math.pi / 65536.0)
    else:
        r.ground_speed_mps = r.heading_rad = np.nan
    p = offs[18]
    r.height_3d_m = _s(_u(buf, p, 2) & 0x3FFF, 14) * 25.0 * FT_M if p >= 0 else np.nan


@nb.njit(cache=True)
def _ext034(buf, offs, r):
    p = offs[1]
    r.message_type = buf[p] if p >= 0 else -1
    p = offs[2]
    r.tod_s = _u(buf, p, 3) / 128.0 if p >= 0 else np.nan
    p = offs[3]
    r.sector_azimuth_rad = buf[p] * (2.0 * math.pi / 256.0) if p >= 0 else np.nan
    p = offs[4]
    r.antenna_period_s = _u(buf, p, 2) / 128.0 if p >= 0 else np.nan
    p = offs[10]
    if p >= 0:
        r.site_alt_m = _s(_u(buf, p, 2), 16) * 1.0
        r.site_lat_deg = _s(_u(buf, p + 2, 3), 24) * (180.0 / 8388608.0)
        r.site_lon_deg = _s(_u(buf, p + 5, 3), 24) * (180.0 / 8388608.0)
    else:
        r.site_alt_m = r.site_lat_deg = r.site_lon_deg = np.nan


@nb.njit(cache=True)
def _ext021(buf, offs, r):
    p = offs[2]
    r.track_number = _u(buf, p, 2) & 0xFFF if p >= 0 else -1
    p = offs[4]
    r.tod_position_s = _u(buf, p, 3) / 128.0 if p >= 0 else np.nan
    p = offs[11]
    r.tod_reception_s = _u(buf, p, 3) / 128.0 if p >= 0 else np.nan
    r.tod_s = r.tod_position_s if offs[4] >= 0 else r.tod_reception_s
    r.high_res = 0
    p6, p7 = offs[5], offs[6]
    if p7 >= 0:
        r.high_res = 1
        r.lat_deg = _s(_u(buf, p7, 4), 32) * (180.0 / 1073741824.0)
        r.lon_deg = _s(_u(buf, p7 + 4, 4), 32) * (180.0 / 1073741824.0)
    elif p6 >= 0:
        r.lat_deg = _s(_u(buf, p6, 3), 24) * (180.0 / 8388608.0)
        r.lon_deg = _s(_u(buf, p6 + 3, 3), 24) * (180.0 / 8388608.0)
    else:
        r.lat_deg = r.lon_deg = np.nan
    p = offs[10]
    r.mode_s_address = _u(buf, p, 3) if p >= 0 else -1
    p = offs[15]
    r.geometric_height_m = _s(_u(buf, p, 2), 16) * 6.25 * FT_M if p >= 0 else np.nan
    p = offs[16]
    r.nic = r.nacp = -1
    if p >= 0:
        r.nic = (buf[p] >> 1) & 0xF
        if buf[p] & 1:
            r.nacp = (buf[p + 1] >> 1) & 0xF
    p = offs[18]
    r.mode_3a = _u(buf, p, 2) & 0xFFF if p >= 0 else -1
    p = offs[20]
    r.flight_level = _s(_u(buf, p, 2), 16) * 0.25 if p >= 0 else np.nan
    p = offs[23]
    r.baro_vertical_rate_mps = _s(_u(buf, p, 2) & 0x7FFF, 15) * 6.25 * FT_M / 60.0 if p >= 0 else np.nan
    p = offs[25]
    if p >= 0:
        r.ground_speed_mps = (_u(buf, p, 2) & 0x7FFF) * (NM_M / 16384.0)
        r.track_angle_rad = _u(buf, p + 2, 2) * (2.0 * math.pi / 65536.0)
    else:
        r.ground_speed_mps = r.track_angle_rad = np.nan
    p = offs[28]
    for i in range(8):
        r.callsign[i] = 0
    if p >= 0:
        _callsign(buf, p, r.callsign)


@nb.njit(cache=True, nogil=True)
def _bad_header(buf, p, end, code, errs, ne, offs):
    q = resync(buf, p, end, offs)
    errs[ne].offset = p
    errs[ne].code = code
    errs[ne].nbytes = q - p
    return q


@nb.njit(cache=True, nogil=True)
def _decode(buf, seg_start, seg_end, final, out48, out34, out21, errs, base_offset, seq0):
    """Returns (n48, n34, n21, n_errors, consumed, next seq)."""
    offs = np.empty(spec.MAX_FRN, np.int64)
    n48 = n34 = n21 = ne = 0
    seq = seq0
    nseg = len(seg_start)
    consumed = seg_end[nseg - 1] if nseg else 0
    for s in range(nseg):
        p = seg_start[s]
        end = seg_end[s]
        while p < end:
            if p + 3 > end:
                if not final and s == nseg - 1:
                    return n48, n34, n21, ne, p, seq
                q = _bad_header(buf, p, end, BLOCK_TRUNCATED, errs, ne, offs)
                errs[ne].offset += base_offset
                ne += 1
                p = q
                continue
            cat = buf[p]
            ln = (np.int64(buf[p + 1]) << 8) | buf[p + 2]
            if ln < 3:
                q = _bad_header(buf, p, end, BLOCK_TOO_SHORT, errs, ne, offs)
                errs[ne].offset += base_offset
                ne += 1
                p = q
                continue
            if p + ln > end:
                if not final and s == nseg - 1:
                    return n48, n34, n21, ne, p, seq
                q = _bad_header(buf, p, end, BLOCK_TRUNCATED, errs, ne, offs)
                errs[ne].offset += base_offset
                ne += 1
                p = q
                continue
            bend = p + ln
            if N_FRN[cat] == 0:
                errs[ne].offset = p + base_offset
                errs[ne].code = UNKNOWN_CATEGORY
                errs[ne].nbytes = ln
                ne += 1
                p = bend
                continue
            q = p + 3
            while q < bend:
                r_end = frame_record(buf, q, bend, cat, offs)
                if r_end < 0:
                    errs[ne].offset = q + base_offset
                    errs[ne].code = -r_end
                    errs[ne].nbytes = bend - q
                    ne += 1
                    break
                if (cat == 48 and n48 >= len(out48)) or (cat == 34 and n34 >= len(out34)) or (cat == 21 and n21 >= len(out21)):
                    raise RuntimeError("ASTERIX decode: record capacity exceeded (a bug in _capacity)")
                if cat == 48:
                    row = out48[n48]
                    _init_common(row, q + base_offset, s, seq, offs, buf)
                    _ext048(buf, offs, row)
                    n48 += 1
                elif cat == 34:
                    row34 = out34[n34]
                    _init_common(row34, q + base_offset, s, seq, offs, buf)
                    _ext034(buf, offs, row34)
                    n34 += 1
                else:
                    row21 = out21[n21]
                    _init_common(row21, q + base_offset, s, seq, offs, buf)
                    _ext021(buf, offs, row21)
                    n21 += 1
                seq += 1
                q = r_end
            p = bend
    return n48, n34, n21, ne, consumed, seq


@nb.njit(cache=True, nogil=True)
def _capacity(buf, seg_start, seg_end):
    """Upper bounds on the records of each category in the buffer: a record takes at least 2
    octets (FSPEC + a one-octet item), and lies in a well-formed block of its category or in
    the bytes after a segment's first bad block header (where resynchronisation may find more)."""
    per_cat = np.zeros(256, np.int64)
    loose = 0
    for s in range(len(seg_start)):
        p = seg_start[s]
        end = seg_end[s]
        while p + 3 <= end:
            ln = (np.int64(buf[p + 1]) << 8) | buf[p + 2]
            if ln < 3 or p + ln > end:
                break
            per_cat[buf[p]] += ln - 3
            p += ln
        loose += end - p
    return (per_cat + loose) // 2 + 1


@nb.njit(cache=True, nogil=True)
def _resolve(tod, ref, first_ref):
    """Absolute time for each time of day, in input order (see resolve_time_of_day)."""
    n = len(tod)
    out = np.empty(n)
    prev = first_ref
    for i in range(n):
        t = tod[i]
        if not (t >= 0.0 and t < DAY_S):
            out[i] = np.nan
            continue
        r = ref[i] if ref[i] == ref[i] else prev
        if r != r:  # no reference yet: take the first time of day as is (day 0 = 1970-01-01)
            r = t
        day = math.floor((r - t) / DAY_S + 0.5)
        out[i] = day * DAY_S + t
        prev = out[i]
    return out


def resolve_time_of_day(tod_s: np.ndarray, ref_s: np.ndarray, first_ref_s: float = np.nan) -> np.ndarray:
    """Unix time for each time of day ``tod_s`` (s after midnight UTC), records in input order.

    Each record takes the day that puts it nearest its reference time: the receive or capture
    time ``ref_s`` where known (a live feed, a pcap), else the time of the record before it
    (so a file crossing midnight rolls over to the next day: a time of day that falls more than
    12 h behind its predecessor belongs to the next day). ``first_ref_s`` seeds a file without
    capture times (midnight of ``--date`` plus 12 h: the first record lands on that date).
    A time of day outside [0, 86400) gives NaN."""
    tod = np.ascontiguousarray(tod_s, dtype=np.float64)
    ref = np.ascontiguousarray(ref_s, dtype=np.float64)
    return _resolve(tod, ref, float(first_ref_s))


@dataclass
class Decoded:
    """What one call of :func:`decode` found."""

    cat048: np.ndarray
    cat034: np.ndarray
    cat021: np.ndarray
    errors: np.ndarray  # ERROR_DTYPE: one row per dropped block, record or run of garbage
    consumed: int  # bytes of the input framed (less than its length if final=False left a tail)
    counts: dict[str, int] = field(default_factory=dict)

    def error_counts(self) -> dict[str, int]:
        per = np.bincount(self.errors["code"].astype(np.int64), minlength=len(ERRORS))
        return {ERRORS[i]: int(per[i]) for i in range(1, len(ERRORS)) if per[i]}


def _segments(n: int, segments) -> tuple[np.ndarray, np.ndarray]:
    if segments is None:
        return np.zeros(1, np.int64), np.full(1, n, np.int64)
    seg = np.asarray(segments, dtype=np.int64).reshape(-1, 2)
    if len(seg) and (seg.min() < 0 or seg.max() > n or np.any(seg[:, 1] < seg[:, 0])):
        raise ValueError("decode: segments must be (start, end) pairs inside the buffer")
    return np.ascontiguousarray(seg[:, 0]), np.ascontiguousarray(seg[:, 1])


def decode(
    data,
    segments=None,
    segment_time_s=None,
    *,
    first_ref_s: float = np.nan,
    final: bool = True,
    base_offset: int = 0,
    seq0: int = 0,
    log: bool = True,
) -> Decoded:
    """Decode every CAT048, CAT034 and CAT021 record in ``data`` (bytes or a uint8 array).

    ``segments``: (start, end) byte ranges that each hold whole data blocks (one per UDP
    datagram or pcap packet); default: the whole buffer. ``segment_time_s``: the receive or
    capture time of each segment (Unix s), the reference that fixes the day of each time of
    day (see :func:`resolve_time_of_day`; ``first_ref_s`` seeds it without them). With
    ``final=False`` a block cut off by the end of the buffer is left for the next call
    (``Decoded.consumed``) instead of being reported as truncated. Offsets are reported plus
    ``base_offset`` (the buffer's offset in its file)."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    buf = np.ascontiguousarray(buf, dtype=np.uint8)
    start, end = _segments(len(buf), segments)
    cap = _capacity(buf, start, end)
    out48 = np.empty(cap[48], CAT048_DTYPE)
    out34 = np.empty(cap[34], CAT034_DTYPE)
    out21 = np.empty(cap[21], CAT021_DTYPE)
    errs = np.empty(len(buf) + 1, ERROR_DTYPE)
    n48, n34, n21, ne, consumed, _ = _decode(
        buf, start, end, final, out48, out34, out21, errs, base_offset, seq0
    )
    res = Decoded(out48[:n48].copy(), out34[:n34].copy(), out21[:n21].copy(), errs[:ne].copy(), int(consumed))
    seg_t = None if segment_time_s is None else np.asarray(segment_time_s, dtype=np.float64)
    _fill_time(res, seg_t, first_ref_s)
    res.counts = {"cat048": n48, "cat034": n34, "cat021": n21}
    if log and ne:
        _log_errors(res.errors)
    return res


def _fill_time(res: Decoded, seg_t, first_ref_s: float) -> None:
    tables = [res.cat048, res.cat034, res.cat021]
    seq = np.concatenate([t["seq"] for t in tables])
    if not len(seq):
        return
    tod = np.concatenate([t["tod_s"] for t in tables])
    segs = np.concatenate([t["segment"] for t in tables])
    ref = seg_t[segs] if seg_t is not None else np.full(len(seq), np.nan)
    order = np.argsort(seq, kind="stable")
    t_abs = np.empty(len(seq))
    t_abs[order] = resolve_time_of_day(tod[order], ref[order], first_ref_s)
    i = 0
    for t in tables:
        t["time_s"] = t_abs[i : i + len(t)]
        i += len(t)


def _log_errors(errors: np.ndarray, limit: int = 20) -> None:
    for e in errors[:limit]:
        logger.warning(
            "ASTERIX: dropped %d byte(s) at offset %d: %s", int(e["nbytes"]), int(e["offset"]), ERRORS[int(e["code"])]
        )
    if len(errors) > limit:
        logger.warning("ASTERIX: %d more drop(s) not logged", len(errors) - limit)


def callsigns(table: np.ndarray) -> np.ndarray:
    """The ``callsign`` octets of a CAT048/CAT021 table as text (U8, trailing spaces removed)."""
    raw = np.ascontiguousarray(table["callsign"]).view("S8").reshape(-1)
    return np.char.rstrip(raw.astype("U8"))


def ascii8(text: np.ndarray) -> np.ndarray:
    """Callsigns (text) as (n, 8) ASCII octets for the encoders: upper case, space padded,
    cut at 8; a character outside ASCII becomes '?', which the encoders send as a space."""
    text = np.asarray(text).astype("U8")
    if not len(text):
        return np.zeros((0, 8), np.uint8)
    raw = np.char.encode(np.char.upper(text), "ascii", errors="replace")
    return np.char.ljust(raw, 8).astype("S8").view(np.uint8).reshape(-1, 8)
