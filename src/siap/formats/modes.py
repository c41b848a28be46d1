"""Mode S / ADS-B in: Beast binary, AVR text and JSON lines -> ADS-B plot batches.

The work is split so that the expensive, general decoder sees as little as possible:

1. **Framing** (compiled): :func:`frame_beast` walks a Beast byte stream in one numba loop
   (escape bytes ``0x1a 0x1a``, message types ``'1'`` Mode A/C, ``'2'`` short and ``'3'`` long
   Mode S, 6-byte 12 MHz timestamp, signal level); :func:`frame_avr` and :func:`frame_jsonl`
   read the text forms. Every form yields :class:`Frames` (arrays, one row per frame).
2. **Check and filter** (compiled / vectorised): the 24-bit Mode S CRC of every frame
   (:func:`crc_remainder`; ICAO Annex 10 Vol. IV sec. 3.1.2.3.3, generator 0x1FFF409).
   Extended squitters (DF17, DF18 CF 0/1) must have remainder 0; DF11 may carry an
   interrogator code in the low 7 bits; address/parity replies (DF0/4/5/16/20/21) give the
   address as their remainder and are kept only when that address has been verified by a
   squitter. The Mode 3/A identity of DF5/DF21 is read here (Annex 10 Vol. IV 3.1.2.6.7.1).
3. **Decoding** with ``rs1090`` (MIT), in batches, of the extended squitters that can become
   plot fields only: identification (TC 1-4), surface (5-8) and airborne (9-18, 20-22)
   position, velocity (19), target state (29) and operational status (31).
4. **CPR per aircraft** (:class:`ModeSDecoder`): rs1090's batch decoder keeps no state between
   calls, so the compact position reports are resolved here, per aircraft, across batches
   (ICAO Doc 9871 Appendix C.2.6; J. Sun, *The 1090 MHz Riddle*, ch. 5): airborne positions by
   a global even/odd pair received within 10 s, then locally against the aircraft's last
   position (< 180 s old); surface positions by a global pair received within 50 s, its
   quadrant chosen by the receiver's position, then locally against the aircraft's last
   position (< 300 s old; valid within 45 NM).

Each resolved position is one :data:`siap.records.PLOT_DTYPE` plot of kind ``ADSB``:
``cov`` in local east-north-up from the aircraft's NACp (last TC 29/31 report) or else the
position message's NUCp (DO-260A Table 2-14, the 95 % radius ``RCu``), as
:mod:`siap.sensors.adsb` does (``sigma = R95 / 2.448`` per axis); the altitude variance from
the altitude source. The plot record carries no velocity: decoded velocities (TC 19) come
out beside the plots as a :data:`VELOCITY_DTYPE` batch (see :class:`DecodeResult`).

Bad input never stops a stream: each dropped frame is counted by reason
(:attr:`ModeSDecoder.dropped`, :attr:`Frames.dropped`) and logged with its byte offset or
line number (the first few of each reason; then only counted).
"""

from __future__ import annotations

import bisect
import gzip
import json
import logging
import math
import socket
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import rs1090
from pydantic import BaseModel, ConfigDict, Field

from siap import records
from siap.records import MeasurementKind
from siap.sensors.base import NACP_EPU_M

__all__ = [
    "ReceiverConfig",
    "Frames",
    "DecodeResult",
    "VELOCITY_DTYPE",
    "NUCP_R95_M",
    "frame_beast",
    "encode_beast",
    "BeastFramer",
    "frame_avr",
    "frame_jsonl",
    "crc_remainder",
    "identity_code",
    "cpr_global_airborne",
    "cpr_global_surface",
    "cpr_local",
    "ModeSDecoder",
    "read_frames",
    "decode_file",
    "file_source",
    "beast_tcp_source",
    "beast_udp_source",
]

log = logging.getLogger(__name__)

FT_M = 0.3048
KT_MPS = 1852.0 / 3600.0
FPM_MPS = FT_M / 60.0
BEAST_CLOCK_HZ = 12e6
MAX_LOGGED_PER_REASON = 5

# DO-260A Table 2-14: NUCp -> 95 % horizontal containment radius RCu (m); 0 = unknown,
# treated like NACp 0 (> 10 NM).
NUCP_R95_M = {0: 37040.0, 1: 18520.0, 2: 9260.0, 3: 1852.0, 4: 926.0, 5: 463.0, 6: 185.2,
              7: 92.6, 8: 10.0, 9: 3.0}
_R95_PER_SIGMA = math.sqrt(-2.0 * math.log(0.05))  # 2.4477, as siap.sensors.base
SURFACE_ALT_SIGMA_M = 50.0  # surface reports carry no altitude: the receiver's, with this sigma
GNSS_ALT_SIGMA_M = 45.0 / 1.96  # GNSS height without GVA: 45 m 95 % (DO-260B GVA = 2)

VELOCITY_DTYPE = np.dtype(
    [
        ("time_s", "f8"),
        ("mode_s_address", "i4"),
        ("groundspeed_mps", "f8"),
        ("track_rad", "f8"),  # clockwise from true north
        ("vertical_rate_mps", "f8"),  # NaN if not reported
    ]
)


class ReceiverConfig(BaseModel):
    """A Mode S / ADS-B receiver: who owns it and where it stands (the reference for surface
    positions). ``start_time_s``: the Unix time of the first Beast/AVR 12 MHz timestamp of a
    file (those counters are relative; live feeds are stamped with the arrival time)."""

    model_config = ConfigDict(extra="forbid")

    receiver_id: str = Field("adsb-1", max_length=16, description="sensor id of the plots")
    partner: str = Field("", max_length=3, description="owning nation, ISO 3166 alpha-3")
    lat_deg: float = Field(..., ge=-90.0, le=90.0, description="receiver latitude, deg")
    lon_deg: float = Field(..., ge=-180.0, le=180.0, description="receiver longitude, deg")
    alt_m: float = Field(0.0, description="receiver altitude (WGS84 height), m")
    start_time_s: float | None = Field(None, description="Unix time of the first 12 MHz timestamp")


# --------------------------------------------------------------------------- frames


@dataclass
class Frames:
    """Framed messages, one row per frame: ``time_s`` (Unix s), ``msg`` (n x 14 bytes, short
    frames in the first 7, Mode A/C in the first 2), ``length`` (2, 7 or 14 bytes),
    ``signal`` (Beast level 0-255, -1 if none) and ``where`` (byte offset or line number in the
    input, as ``where_unit`` says). ``dropped`` counts what framing threw away, by reason."""

    time_s: np.ndarray
    msg: np.ndarray
    length: np.ndarray
    signal: np.ndarray
    where: np.ndarray
    dropped: Counter = field(default_factory=Counter)
    where_unit: str = "byte offset"  # or "line"

    def __len__(self) -> int:
        return len(self.time_s)

    @classmethod
    def empty(cls) -> Frames:
        return cls(np.zeros(0), np.zeros((0, 14), np.uint8), np.zeros(0, np.uint8),
                   np.zeros(0, np.int16), np.zeros(0, np.int64))

    def hex(self, i: int) -> str:
        return self.msg[i, : self.length[i]].tobytes().hex()


# Beast framing error codes (index into BEAST_REASONS)
BEAST_REASONS = ("garbage", "bad_escape", "truncated", "unknown_type")


@numba.njit(cache=True, nogil=True)
def _frame_beast_kernel(buf, final, msg, ticks, kind, signal, where, err_off, err_code):
    n = len(buf)
    nf = 0
    ne = 0
    i = 0
    tmp = np.empty(21, np.uint8)
    while i < n:
        if buf[i] != 0x1A:
            err_off[ne] = i
            err_code[ne] = 0  # garbage: skip to the next escape byte
            ne += 1
            while i < n and buf[i] != 0x1A:
                i += 1
            continue
        if i + 1 >= n:
            if final:
                err_off[ne] = i
                err_code[ne] = 2
                ne += 1
                i = n
            break
        t = buf[i + 1]
        if t == 0x31:
            plen = 2
        elif t == 0x32:
            plen = 7
        elif t == 0x33:
            plen = 14
        else:
            err_off[ne] = i
            err_code[ne] = 1 if t == 0x1A else 3
            ne += 1
            i += 2 if t == 0x1A else 1
            continue
        need = 7 + plen
        j = i + 2
        k = 0
        status = 0  # 0 complete, 1 incomplete (need more bytes), 2 cut short by a new frame
        bad_escape = False
        while k < need:
            if j >= n:
                status = 1
                break
            b = buf[j]
            if b == 0x1A:
                if j + 1 >= n:
                    status = 1
                    break
                if buf[j + 1] == 0x1A:
                    tmp[k] = 0x1A
                    k += 1
                    j += 2
                    continue
                nxt = buf[j + 1]
                bad_escape = not (nxt == 0x31 or nxt == 0x32 or nxt == 0x33)
                status = 2
                break
            tmp[k] = b
            k += 1
            j += 1
        if status == 1:
            if final:
                err_off[ne] = i
                err_code[ne] = 2
                ne += 1
                i = n
            break
        if status == 2:
            err_off[ne] = i
            err_code[ne] = 1 if bad_escape else 2
            ne += 1
            i = j if not bad_escape else j + 2
            continue
        tk = np.int64(0)
        for q in range(6):
            tk = (tk << 8) | np.int64(tmp[q])
        ticks[nf] = tk
        signal[nf] = tmp[6]
        kind[nf] = plen
        for q in range(plen):
            msg[nf, q] = tmp[7 + q]
        where[nf] = i
        nf += 1
        i = j
    return nf, ne, i


def frame_beast(buf: bytes | np.ndarray, final: bool = True):
    """Frame a Beast byte stream. Returns ``(msg, ticks, length, signal, offset, errors,
    consumed)``: arrays of the complete frames (12 MHz ``ticks``), a list of
    ``(offset, reason)`` for each dropped piece, and how many bytes were consumed. With
    ``final=False`` an incomplete frame at the end is left unconsumed for the next call."""
    arr = np.frombuffer(buf, np.uint8) if not isinstance(buf, np.ndarray) else buf
    cap = len(arr) // 9 + 1
    msg = np.zeros((cap, 14), np.uint8)
    ticks = np.zeros(cap, np.int64)
    kind = np.zeros(cap, np.uint8)
    signal = np.zeros(cap, np.int16)
    where = np.zeros(cap, np.int64)
    err_off = np.zeros(len(arr) + 1, np.int64)
    err_code = np.zeros(len(arr) + 1, np.int8)
    nf, ne, consumed = _frame_beast_kernel(arr, final, msg, ticks, kind, signal, where, err_off, err_code)
    errors = [(int(err_off[e]), BEAST_REASONS[err_code[e]]) for e in range(ne)]
    return msg[:nf], ticks[:nf], kind[:nf], signal[:nf], where[:nf], errors, int(consumed)


def encode_beast(msg: np.ndarray, length: np.ndarray, ticks: np.ndarray, signal: np.ndarray | None = None) -> bytes:
    """Frames -> Beast bytes (the inverse of :func:`frame_beast`): ``0x1a``, type ``'1'``/``'2'``/
    ``'3'`` by length (2, 7, 14 bytes), 6-byte 12 MHz counter, signal level, payload; every
    ``0x1a`` after the type byte doubled. For tests, replay and simulated feeds."""
    out = bytearray()
    types = {2: b"1", 7: b"2", 14: b"3"}
    for i in range(len(msg)):
        n = int(length[i])
        body = int(ticks[i]).to_bytes(6, "big") + bytes([int(signal[i]) & 0xFF if signal is not None else 0])
        body += msg[i, :n].tobytes()
        out += b"\x1a" + types[n] + body.replace(b"\x1a", b"\x1a\x1a")
    return bytes(out)


class _TickClock:
    """Beast / AVR 12 MHz counters -> Unix time: ``start_time_s`` at the first counter, then the
    counter's elapsed time. A counter that jumps back by more than 1 s (receiver restart)
    re-anchors at the last time seen."""

    def __init__(self, start_time_s: float | None):
        self.start = start_time_s
        self.anchor_ticks: int | None = None
        self.last_ticks = 0

    def times(self, ticks: np.ndarray, arrival_s: float) -> np.ndarray:
        out = np.empty(len(ticks))
        if len(ticks) == 0:
            return out
        if self.anchor_ticks is None:
            self.anchor_ticks = int(ticks[0])
            self.start = arrival_s if self.start is None else self.start
            self.last_ticks = int(ticks[0])
        t = ticks.astype(np.int64)
        back = np.flatnonzero(np.diff(np.concatenate([[self.last_ticks], t])) < -BEAST_CLOCK_HZ)
        lo = 0
        for b in list(back) + [len(t)]:
            seg = t[lo:b]
            out[lo:b] = self.start + (seg - self.anchor_ticks) / BEAST_CLOCK_HZ
            if b < len(t):
                last_time = out[b - 1] if b > 0 else self.start + (self.last_ticks - self.anchor_ticks) / BEAST_CLOCK_HZ
                self.start, self.anchor_ticks = float(last_time), int(t[b])
            lo = b
        self.last_ticks = int(t[-1])
        return out


class BeastFramer:
    """A Beast byte stream in pieces (TCP reads, a file in chunks) -> :class:`Frames`.
    Keeps the bytes of an incomplete last frame for the next piece."""

    def __init__(self, start_time_s: float | None = None, name: str = "beast"):
        self.clock = _TickClock(start_time_s)
        self.rest = b""
        self.offset = 0  # byte offset of self.rest in the whole stream
        self.name = name
        self.dropped: Counter = Counter()

    def feed(self, data: bytes, final: bool = False, arrival_s: float | None = None) -> Frames:
        buf = self.rest + data if self.rest else data
        msg, ticks, length, signal, where, errors, consumed = frame_beast(buf, final)
        base = self.offset
        self.rest = bytes(buf[consumed:])
        self.offset += consumed
        dropped: Counter = Counter()
        for off, reason in errors:
            dropped[reason] += 1
            self._log(reason, base + off)
            self.dropped[reason] += 1
        times = self.clock.times(ticks, time.time() if arrival_s is None else arrival_s)
        return Frames(times, msg, length, signal, where + base, dropped)

    def _log(self, reason: str, offset: int) -> None:
        if self.dropped[reason] < MAX_LOGGED_PER_REASON:
            log.warning("%s: byte offset %d: dropped (%s)", self.name, offset, reason)


def _hex_frame(text: str) -> bytes | None:
    """Hex text -> frame bytes (2, 7 or 14 bytes), or None if it is not one."""
    if len(text) not in (4, 14, 28):
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _frames_from_rows(rows: list[tuple[float, bytes, int, int]], dropped: Counter) -> Frames:
    """Frames of text rows (time, frame bytes, line number, signal)."""
    n = len(rows)
    msg = np.zeros((n, 14), np.uint8)
    length = np.zeros(n, np.uint8)
    for i, (_, data, _, _) in enumerate(rows):
        msg[i, : len(data)] = np.frombuffer(data, np.uint8)
        length[i] = len(data)
    return Frames(
        np.array([r[0] for r in rows], float),
        msg,
        length,
        np.array([r[3] for r in rows], np.int16),
        np.array([r[2] for r in rows], np.int64),
        dropped,
        "line",
    )


def _drop(dropped: Counter, name: str, reason: str, where: str) -> None:
    dropped[reason] += 1
    if dropped[reason] <= MAX_LOGGED_PER_REASON:
        log.warning("%s: %s: dropped (%s)", name, where, reason)


def frame_avr(lines: Iterable[str], clock: _TickClock | None = None, *, first_line: int = 1,
              arrival_s: float | None = None, name: str = "avr") -> Frames:
    """AVR text: ``*HEX;`` (no timestamp: stamped ``arrival_s``, default now) or
    ``@TTTTTTTTTTTTHEX;`` (12 hex digits of a 12 MHz counter, then the frame). ``where`` is
    the line number."""
    clock = clock or _TickClock(None)
    now = time.time() if arrival_s is None else arrival_s
    rows: list[tuple[float, bytes, int, int]] = []
    tick_rows: list[int] = []
    ticks: list[int] = []
    dropped: Counter = Counter()
    for lineno, raw in enumerate(lines, start=first_line):
        line = raw.strip()
        if not line:
            continue
        if not line.endswith(";") or line[0] not in "*@":
            _drop(dropped, name, "bad_line", f"line {lineno}")
            continue
        body = line[1:-1]
        if line[0] == "@":
            stamp, body = body[:12], body[12:]
            try:
                tk = int(stamp, 16) if len(stamp) == 12 else -1
            except ValueError:
                tk = -1
            if tk < 0:
                _drop(dropped, name, "bad_timestamp", f"line {lineno}")
                continue
        data = _hex_frame(body)
        if data is None:
            _drop(dropped, name, "bad_hex", f"line {lineno}")
            continue
        if line[0] == "@":
            tick_rows.append(len(rows))
            ticks.append(tk)
        rows.append((now, data, lineno, -1))
    frames = _frames_from_rows(rows, dropped)
    if ticks:
        frames.time_s[np.array(tick_rows)] = clock.times(np.array(ticks, np.int64), now)
    return frames


def frame_jsonl(lines: Iterable[str | bytes], *, first_line: int = 1, name: str = "jsonl") -> Frames:
    """JSON lines, one object per line with ``timestamp`` (Unix s) and ``frame`` (hex). Short
    frames may be padded to 28 hex digits (as ``traffic``/``jet1090`` store them): the
    downlink format decides the length, so only the first 14 digits of DF0-DF15 are the
    frame."""
    rows: list[tuple[float, bytes, int, int]] = []
    dropped: Counter = Counter()
    for lineno, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            _drop(dropped, name, "bad_json", f"line {lineno}")
            continue
        if not isinstance(obj, dict):
            _drop(dropped, name, "bad_json", f"line {lineno}")
            continue
        ts, text = obj.get("timestamp"), obj.get("frame")
        if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts) or not isinstance(text, str):
            _drop(dropped, name, "missing_field", f"line {lineno}")
            continue
        data = _hex_frame(text)
        if data is None or len(data) == 2:
            _drop(dropped, name, "bad_hex", f"line {lineno}")
            continue
        if data[0] >> 3 < 16:
            data = data[:7]
        rows.append((float(ts), data, lineno, -1))
    return _frames_from_rows(rows, dropped)


# --------------------------------------------------------------------------- CRC and fields


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.int64)
    for i in range(256):
        c = i << 16
        for _ in range(8):
            c = ((c << 1) ^ 0xFFF409) if c & 0x800000 else (c << 1)
        table[i] = c & 0xFFFFFF
    return table


_CRC_TABLE = _crc_table()


@numba.njit(cache=True, nogil=True)
def _crc_kernel(msg, length, table, out):
    for r in range(msg.shape[0]):
        n = length[r]
        if n != 7 and n != 14:
            out[r] = -1
            continue
        c = np.int64(0)
        for q in range(n - 3):
            c = ((c << 8) & 0xFFFFFF) ^ table[((c >> 16) ^ np.int64(msg[r, q])) & 0xFF]
        parity = (np.int64(msg[r, n - 3]) << 16) | (np.int64(msg[r, n - 2]) << 8) | np.int64(msg[r, n - 1])
        out[r] = c ^ parity


def crc_remainder(msg: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The Mode S CRC remainder of each frame (0 for a good DF11/17/18; the address for an
    address/parity reply). Mode A/C rows get -1."""
    out = np.zeros(len(msg), np.int64)
    _crc_kernel(msg, length, _CRC_TABLE, out)
    return out


def identity_code(msg: np.ndarray) -> np.ndarray:
    """The Mode 3/A code (as the integer of its four octal digits, 0o7700 for 7700) of DF5 /
    DF21 replies: the 13-bit ID field, bits 20-32 (Annex 10 Vol. IV 3.1.2.6.7.1), ordered
    C1 A1 C2 A2 C4 A4 X B1 D1 B2 D2 B4 D4."""
    bits = ((msg[:, 2].astype(np.int32) & 0x1F) << 8) | msg[:, 3].astype(np.int32)

    def b(pos: int) -> np.ndarray:  # pos 0 = the first of the 13 bits (C1)
        return (bits >> (12 - pos)) & 1

    c = b(0) | b(2) << 1 | b(4) << 2
    a = b(1) | b(3) << 1 | b(5) << 2
    bb = b(7) | b(9) << 1 | b(11) << 2
    d = b(8) | b(10) << 1 | b(12) << 2
    return (a << 9) | (bb << 6) | (c << 3) | d


# --------------------------------------------------------------------------- CPR

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


# --------------------------------------------------------------------------- decoder

# ADS-B type codes that carry plot fields (everything else is framed, checked and skipped)
_WANTED_TC = np.zeros(32, bool)
_WANTED_TC[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 29, 31]] = True
_SHORT_DF = (0, 4, 5, 11)
_LONG_DF = (16, 17, 18, 19, 20, 21, 24)
_AP_DF = (0, 4, 5, 16, 20, 21)
PAIR_WINDOW_S = 10.0  # even/odd pair for a global airborne decode (Doc 9871 C.2.6.7)
SURFACE_PAIR_WINDOW_S = 50.0  # even/odd pair for a global surface decode (slow movers)
LOCAL_REF_MAX_AGE_S = 180.0  # airborne local decode against the aircraft's last position
SURFACE_REF_MAX_AGE_S = 300.0  # surface local decode against the aircraft's last position
AIRCRAFT_IDLE_S = 1800.0  # an aircraft's state is forgotten after this long without a squitter


@dataclass
class _Aircraft:
    callsign: str = ""
    squawk: int = records.NO_MODE_3A
    nacp: int = -1
    even: tuple | None = None  # (time_s, (lat_cpr, lon_cpr), surface)
    odd: tuple | None = None
    last_pos: tuple | None = None  # (time_s, lat, lon)
    last_seen_s: float = -math.inf


@dataclass
class DecodeResult:
    """What one :meth:`ModeSDecoder.decode` call produced: ``plots`` (PLOT_DTYPE, ADSB, in time
    order), ``velocities`` (VELOCITY_DTYPE), and ``counts`` of this call (frames, squitters,
    decoded, positions, plots, and ``dropped_<reason>`` for every reason)."""

    plots: np.ndarray
    velocities: np.ndarray
    counts: dict[str, int]


class ModeSDecoder:
    """Framed Mode S -> ADS-B plots, per receiver, with per-aircraft state kept across calls
    (CPR pairs, last position, callsign, identity, NACp). Feed it :class:`Frames` in time order.
    ``dropped`` counts every frame it threw away, by reason; ``skipped`` the good frames that
    carry nothing a plot needs (Mode A/C, altitude replies, Comm-B, other type codes)."""

    def __init__(self, receiver: ReceiverConfig, *, name: str = "modes", plot_id_start: int = 0,
                 rs1090_batch: int = 2000):
        self.receiver = receiver
        self.name = name
        self.aircraft: dict[int, _Aircraft] = {}
        self.known = np.zeros(0, np.int64)  # verified addresses (sorted)
        self.dropped: Counter = Counter()
        self.skipped: Counter = Counter()
        self.next_plot_id = plot_id_start
        self.rs1090_batch = rs1090_batch
        self.last_time_s = -math.inf

    # -- step 2: check and filter
    def _check(self, frames: Frames) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        msg, length = frames.msg, frames.length
        df = (msg[:, 0] >> 3).astype(np.int16)
        df[df > 24] = 24
        rem = crc_remainder(msg, length)
        modeac = length == 2
        short_ok = np.isin(df, _SHORT_DF) & (length == 7)
        long_ok = np.isin(df, _LONG_DF) & (length == 14)
        bad_len = ~modeac & ~short_ok & ~long_ok & (np.isin(df, _SHORT_DF) | np.isin(df, _LONG_DF))
        unknown_df = ~modeac & ~np.isin(df, _SHORT_DF) & ~np.isin(df, _LONG_DF)
        addr_field = ((msg[:, 1].astype(np.int64) << 16) | (msg[:, 2].astype(np.int64) << 8) | msg[:, 3])
        es = long_ok & ((df == 17) | ((df == 18) & ((msg[:, 0] & 7) <= 1)))
        tisb = long_ok & (df == 18) & ~es
        df11 = short_ok & (df == 11)
        es_good = es & (rem == 0)
        df11_good = df11 & ((rem & 0xFFFF80) == 0)
        crc_bad = (es & ~es_good) | (df11 & ~df11_good)
        new = np.unique(addr_field[es_good | df11_good])
        if len(new):
            self.known = np.union1d(self.known, new)
        ap = (short_ok | long_ok) & np.isin(df, _AP_DF)
        ap_addr = rem.astype(np.int64)
        ap_good = ap & np.isin(ap_addr, self.known)
        for mask, reason in ((bad_len, "length"), (unknown_df, "unknown_df"), (crc_bad, "crc")):
            for i in np.flatnonzero(mask):
                _drop(self.dropped, self.name, reason, f"{frames.where_unit} {frames.where[i]} ({frames.hex(i)})")
        self.skipped["mode_ac"] += int(modeac.sum())
        self.skipped["tisb_adsr"] += int(tisb.sum())
        self.skipped["unverified_address"] += int((ap & ~ap_good).sum())
        self.skipped["df11"] += int(df11_good.sum())
        ident = ap_good & ((df == 5) | (df == 21))
        self.skipped["reply_no_identity"] += int((ap_good & ~ident).sum())
        return es_good, addr_field, ident, ap_addr

    def decode(self, frames: Frames) -> DecodeResult:
        counts: Counter = Counter(frames=len(frames))
        before = Counter(self.dropped)
        skipped_before = Counter(self.skipped)
        es_good, addr_field, ident, ap_addr = self._check(frames)
        counts["squitters"] = int(es_good.sum())
        tc = (frames.msg[:, 4] >> 3).astype(np.int64)
        want = es_good & _WANTED_TC[tc]
        self.skipped["other_type_code"] += int((es_good & ~want).sum())
        rows_es = np.flatnonzero(want)
        # identical frames (repeated identification and velocity squitters, duplicates from
        # overlapping receivers) are decoded once
        keys = frames.msg[rows_es].view(np.dtype((np.void, 14)))[:, 0] if len(rows_es) else np.zeros(0, "V14")
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        decoded_uniq = self._rs1090([frames.hex(i) for i in rows_es[first]], frames, rows_es[first])
        decoded = [decoded_uniq[k] for k in inverse.ravel()]
        counts["decoded"] = sum(d is not None for d in decoded)
        rows_id = np.flatnonzero(ident)
        squawks = identity_code(frames.msg[rows_id]) if len(rows_id) else np.zeros(0, np.int32)
        # events in time order: identity replies and decoded squitters
        ev_rows = np.concatenate([rows_id, rows_es])
        ev_kind = np.concatenate([np.zeros(len(rows_id), np.int8), np.ones(len(rows_es), np.int8)])
        ev_ref = np.concatenate([np.arange(len(rows_id)), np.arange(len(rows_es))])
        order = np.lexsort((ev_rows, frames.time_s[ev_rows]))
        plots: list[tuple] = []
        vels: list[tuple] = []
        for o in order:
            r = int(ev_rows[o])
            t = float(frames.time_s[r])
            if ev_kind[o] == 0:
                ac = self.aircraft.get(int(ap_addr[r]))
                if ac is not None:
                    ac.squawk = int(squawks[ev_ref[o]])
                continue
            d = decoded[ev_ref[o]]
            if d is None:
                continue
            addr = int(addr_field[r])
            ac = self.aircraft.get(addr)
            if ac is None:
                ac = self.aircraft[addr] = _Aircraft()
            ac.last_seen_s = t
            self._apply(ac, addr, t, int(tc[r]), bool(frames.msg[r, 5] & 1), d, plots, vels)
        if len(frames):
            self._forget_idle(float(frames.time_s.max()))
        out = self._plots(plots)
        # non-decreasing time across calls: a plot older than the last emitted one is dropped
        late = out["time_s"] < self.last_time_s
        if late.any():
            for _ in range(int(late.sum())):
                _drop(self.dropped, self.name, "late", f"time {self.last_time_s}")
            out = records.take(out, ~late)
        if len(out):
            self.last_time_s = float(out["time_s"][-1])
            out["plot_id"] = np.arange(self.next_plot_id, self.next_plot_id + len(out))
            self.next_plot_id += len(out)
        velocities = np.array(vels, dtype=VELOCITY_DTYPE) if vels else np.zeros(0, VELOCITY_DTYPE)
        counts["positions"] = len(plots)
        counts["plots"] = len(out)
        counts["velocities"] = len(velocities)
        for reason, v in (frames.dropped + self.dropped - before).items():
            counts[f"dropped_{reason}"] = v
        for reason, v in (self.skipped - skipped_before).items():
            counts[f"skipped_{reason}"] = v
        return DecodeResult(out, velocities, dict(counts))

    def _forget_idle(self, now_s: float) -> None:
        """Bound the state of a long-running feed: drop aircraft silent for AIRCRAFT_IDLE_S."""
        if len(self.aircraft) < 256:
            return
        idle = [a for a, ac in self.aircraft.items() if now_s - ac.last_seen_s > AIRCRAFT_IDLE_S]
        for a in idle:
            del self.aircraft[a]

    def _rs1090(self, hexes: list[str], frames: Frames, rows: np.ndarray) -> list:
        if not hexes:
            return []
        try:
            return list(rs1090.decode(hexes, batch=self.rs1090_batch))
        except Exception:  # noqa: BLE001 - one bad message must not lose the batch
            out = []
            for h, r in zip(hexes, rows, strict=True):
                try:
                    out.append(rs1090.decode(h))
                except Exception:  # noqa: BLE001
                    _drop(self.dropped, self.name, "rs1090_error", f"{frames.where_unit} {frames.where[r]} ({h})")
                    out.append(None)
            return out

    # -- step 4: per-aircraft state
    def _apply(self, ac: _Aircraft, addr: int, t: float, tc: int, q_bit: bool, d: dict, plots: list,
               vels: list) -> None:
        if 1 <= tc <= 4:
            cs = (d.get("callsign") or "").strip().replace("#", "").replace("_", "")
            if cs:
                ac.callsign = cs[:8]
            return
        nacp = d.get("NACp")
        if isinstance(nacp, int) and 0 <= nacp <= 11:
            ac.nacp = nacp
        if tc == 19:
            gs, trk = d.get("groundspeed"), d.get("track")
            if gs is not None and trk is not None:
                vr = d.get("vertical_rate")
                vels.append((t, addr, gs * KT_MPS, math.radians(trk), vr * FPM_MPS if vr is not None else math.nan))
            return
        if tc in (29, 31):
            return
        lat_cpr, lon_cpr, parity = d.get("lat_cpr"), d.get("lon_cpr"), d.get("parity")
        if lat_cpr is None or lon_cpr is None or parity not in ("even", "odd"):
            return
        surface = 5 <= tc <= 8
        odd = parity == "odd"
        cpr = (int(lat_cpr), int(lon_cpr))
        entry = (t, cpr, surface)
        if odd:
            ac.odd = entry
        else:
            ac.even = entry
        pos = None
        other = ac.even if odd else ac.odd
        window = SURFACE_PAIR_WINDOW_S if surface else PAIR_WINDOW_S
        if other is not None and other[2] == surface and abs(t - other[0]) <= window:
            pair = (other[1], cpr) if odd else (cpr, other[1])
            if surface:
                pos = cpr_global_surface(pair[0], pair[1], odd, self.receiver.lat_deg, self.receiver.lon_deg)
            else:
                pos = cpr_global_airborne(pair[0], pair[1], odd)
        max_age = SURFACE_REF_MAX_AGE_S if surface else LOCAL_REF_MAX_AGE_S
        if pos is None and ac.last_pos is not None and t - ac.last_pos[0] <= max_age:
            pos = cpr_local(cpr, odd, ac.last_pos[1], ac.last_pos[2], surface)
        if pos is None:
            self.skipped["cpr_unresolved"] += 1
            return
        ac.last_pos = (t, pos[0], pos[1])
        if surface:
            alt_m, alt_var = self.receiver.alt_m, SURFACE_ALT_SIGMA_M**2
        else:
            alt_ft = d.get("altitude")
            if alt_ft is None:
                self.skipped["no_altitude"] += 1
                return
            alt_m = alt_ft * FT_M
            if 20 <= tc <= 22 or d.get("source") == "GNSS":
                alt_var = GNSS_ALT_SIGMA_M**2
            else:  # Q bit: 25 ft steps, else Gillham 100 ft steps (DO-260B 2.2.3.2.3.4)
                alt_var = (25 * FT_M if q_bit else 100 * FT_M) ** 2 / 12.0
        if ac.nacp >= 0:
            r95 = NACP_EPU_M[ac.nacp]
        else:
            r95 = NUCP_R95_M.get(int(d.get("NUCp") or 0), NUCP_R95_M[0])
        sigma = r95 / _R95_PER_SIGMA
        plots.append((t, pos[0], pos[1], alt_m, sigma, alt_var, addr, ac.callsign, ac.squawk))

    def _plots(self, rows: list[tuple]) -> np.ndarray:
        n = len(rows)
        out = records.empty_plots(n)
        if n == 0:
            return out
        rc = self.receiver
        cols = list(zip(*rows, strict=True))
        out["time_s"] = cols[0]
        out["sensor_id"] = rc.receiver_id
        out["partner"] = rc.partner
        out["kind"] = int(MeasurementKind.ADSB)
        out["sensor_lat_deg"], out["sensor_lon_deg"], out["sensor_alt_m"] = rc.lat_deg, rc.lon_deg, rc.alt_m
        out["lat_deg"], out["lon_deg"], out["alt_m"] = cols[1], cols[2], cols[3]
        cov = np.zeros((n, 3, 3))
        sigma = np.asarray(cols[4])
        cov[:, 0, 0] = cov[:, 1, 1] = sigma**2
        cov[:, 2, 2] = cols[5]
        out["cov"] = cov
        out["mode_s_address"] = cols[6]
        out["callsign"] = cols[7]
        out["mode_3a"] = cols[8]
        return records.take(out, np.argsort(out["time_s"], kind="stable"))


# --------------------------------------------------------------------------- files and feeds

FILE_KINDS = ("beast", "avr", "jsonl")


def file_kind(path: str | Path) -> str:
    """The input form of a file by its name: ``.bin``/``.beast`` Beast, ``.avr``/``.txt`` AVR,
    ``.jsonl``/``.json`` (optionally ``.gz``) JSON lines."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".bin", ".beast")):
        return "beast"
    if name.endswith((".avr", ".txt")):
        return "avr"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise ValueError(f"{path}: unknown Mode S file type; expected .bin, .avr or .jsonl[.gz]")


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_frames(path: str | Path, *, start_time_s: float | None = None, chunk_lines: int = 20000,
                chunk_bytes: int = 1 << 20) -> Iterator[Frames]:
    """The frames of a Beast, AVR or JSON-lines file, in chunks. Beast and AVR ``@`` counters
    are relative: they start at ``start_time_s`` (default: the file's modification time)."""
    path = Path(path)
    kind = file_kind(path)
    start = start_time_s if start_time_s is not None else path.stat().st_mtime
    if kind == "beast":
        framer = BeastFramer(start, name=str(path))
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            while True:
                data = fh.read(chunk_bytes)
                frames = framer.feed(data, final=not data, arrival_s=start)
                if len(frames) or frames.dropped:
                    yield frames
                if not data:
                    return
    clock = _TickClock(start)
    with _open_text(path) as fh:
        lineno = 1
        while True:
            lines = [ln for _, ln in zip(range(chunk_lines), fh, strict=False)]
            if not lines:
                return
            if kind == "avr":
                yield frame_avr(lines, clock, first_line=lineno, arrival_s=start, name=str(path))
            else:
                yield frame_jsonl(lines, first_line=lineno, name=str(path))
            lineno += len(lines)


def file_source(path: str | Path, receiver: ReceiverConfig, *, start_time_s: float | None = None,
                decoder: ModeSDecoder | None = None) -> Iterator[np.ndarray]:
    """A source: the ADS-B plot batches (PLOT_DTYPE, non-decreasing time) of a Mode S file."""
    dec = decoder or ModeSDecoder(receiver, name=str(path))
    start = start_time_s if start_time_s is not None else receiver.start_time_s
    for frames in read_frames(path, start_time_s=start):
        res = dec.decode(frames)
        if len(res.plots):
            yield res.plots


def decode_file(path: str | Path, receiver: ReceiverConfig, *, start_time_s: float | None = None):
    """Decode a whole Mode S file: (plots, velocities, counts summed over the file)."""
    dec = ModeSDecoder(receiver, name=str(path))
    plots, vels, counts = [], [], Counter()
    start = start_time_s if start_time_s is not None else receiver.start_time_s
    for frames in read_frames(path, start_time_s=start):
        res = dec.decode(frames)
        plots.append(res.plots)
        vels.append(res.velocities)
        counts.update(res.counts)
    all_plots = records.concatenate(plots) if plots else records.empty_plots(0)
    all_vels = np.concatenate(vels) if vels else np.zeros(0, VELOCITY_DTYPE)
    return all_plots, all_vels, dict(counts)


def beast_tcp_source(host: str, port: int, receiver: ReceiverConfig, *, read_bytes: int = 65536,
                     timeout_s: float = 1.0, stop=None, start_time_s: float | None = None) -> Iterator[np.ndarray]:
    """A live source: connect to a Beast TCP server (dump1090/readsb port 30005) and yield
    plot batches as data arrives; frames are stamped from their 12 MHz counters anchored at
    the arrival time of the first (or at ``start_time_s``: a replayed feed). Ends when the
    server closes or ``stop()`` returns true."""
    framer = BeastFramer(start_time_s, name=f"tcp:{host}:{port}")
    dec = ModeSDecoder(receiver, name=framer.name)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        while stop is None or not stop():
            try:
                data = sock.recv(read_bytes)
            except TimeoutError:
                continue
            res = dec.decode(framer.feed(data, final=not data))
            if len(res.plots):
                yield res.plots
            if not data:
                return


def beast_udp_source(host: str, port: int, receiver: ReceiverConfig, *, timeout_s: float = 1.0,
                     stop=None, sock: socket.socket | None = None,
                     start_time_s: float | None = None) -> Iterator[np.ndarray]:
    """A live source: Beast frames in UDP datagrams (each datagram holds whole frames) on
    ``host:port`` (or an already bound ``sock``). Runs until ``stop()`` returns true. Times as
    :func:`beast_tcp_source`."""
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
    sock.settimeout(timeout_s)
    framer = BeastFramer(start_time_s, name=f"udp:{host}:{port}")
    dec = ModeSDecoder(receiver, name=framer.name)
    try:
        while stop is None or not stop():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            res = dec.decode(framer.feed(data, final=True))
            if len(res.plots):
                yield res.plots
    finally:
        if own:
            sock.close()
