"""Mode S framing: Beast binary (compiled), AVR text and JSON lines -> :class:`Frames`.

Beast: ``0x1a``, type ``'1'`` Mode A/C (2 bytes), ``'2'`` short (7), ``'3'`` long (14), a
6-byte 12 MHz counter, a signal byte, the payload; every ``0x1a`` after the type doubled.
AVR: ``*HEX;`` or ``@`` + 12 hex digits of the counter + ``HEX;``. JSON lines: objects with
``timestamp`` and ``frame``. Every dropped piece is counted by reason and the first few of
each reason are logged with their byte offset or line number.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numba
import numpy as np

__all__ = ["Frames", "BEAST_REASONS", "count_drop", "frame_beast", "encode_beast", "BeastFramer", "frame_avr", "frame_jsonl"]

log = logging.getLogger("siap.formats.modes")
BEAST_CLOCK_HZ = 12e6
MAX_LOGGED_PER_REASON = 5

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


_HEX = frozenset("0123456789abcdefABCDEF")


def _hex_frame(text: str) -> bytes | None:
    """Hex text -> frame bytes (2, 7 or 14 bytes), or None if it is not one."""
    if len(text) not in (4, 14, 28) or not _HEX.issuperset(text):
        return None
    return bytes.fromhex(text)


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


def count_drop(dropped: Counter, name: str, reason: str, where: str) -> None:
    """Count a dropped piece under ``reason``; log the first few of each reason."""
    dropped[reason] += 1
    if dropped[reason] <= MAX_LOGGED_PER_REASON:
        log.warning("%s: %s: dropped (%s)", name, where, reason)


def _hex_int(text: str, n: int) -> int:
    """``text`` as an unsigned hex number of exactly ``n`` digits, else -1."""
    return int(text, 16) if len(text) == n and _HEX.issuperset(text) else -1


def frame_avr(lines: Iterable[str], clock: _TickClock | None = None, *, first_line: int = 1,
              arrival_s: float | None = None, name: str = "avr") -> Frames:
    """AVR text, the forms dump1090 reads and writes: ``*HEX;`` and ``:HEX;`` (no timestamp:
    stamped ``arrival_s``, default now), ``@TTTTTTTTTTTTHEX;`` and ``%TTTTTTTTTTTTHEX;`` (12 hex
    digits of a 12 MHz counter, then the frame), ``<TTTTTTTTTTTTSSHEX;`` (counter, 2 hex
    digits of signal level, frame). ``where`` is the line number."""
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
        if not line.endswith(";") or line[0] not in "*:@%<":
            count_drop(dropped, name, "bad_line", f"line {lineno}")
            continue
        body, tk, signal = line[1:-1], -1, -1
        if line[0] in "@%<":
            tk = _hex_int(body[:12], 12)
            body = body[12:]
            if line[0] == "<":
                signal = _hex_int(body[:2], 2)
                body = body[2:]
            if tk < 0 or (line[0] == "<" and signal < 0):
                count_drop(dropped, name, "bad_timestamp", f"line {lineno}")
                continue
        data = _hex_frame(body)
        if data is None:
            count_drop(dropped, name, "bad_hex", f"line {lineno}")
            continue
        if tk >= 0:
            tick_rows.append(len(rows))
            ticks.append(tk)
        rows.append((now, data, lineno, signal))
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
            count_drop(dropped, name, "bad_json", f"line {lineno}")
            continue
        if not isinstance(obj, dict):
            count_drop(dropped, name, "bad_json", f"line {lineno}")
            continue
        ts, text = obj.get("timestamp"), obj.get("frame")
        if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts) or not isinstance(text, str):
            count_drop(dropped, name, "missing_field", f"line {lineno}")
            continue
        data = _hex_frame(text)
        if data is None or len(data) == 2:
            count_drop(dropped, name, "bad_hex", f"line {lineno}")
            continue
        if data[0] >> 3 < 16:
            data = data[:7]
        rows.append((float(ts), data, lineno, -1))
    return _frames_from_rows(rows, dropped)


