"""Reading ASTERIX out of files: raw ASTERIX, classic pcap and pcapng captures.

A capture yields the UDP payload of each packet, taken by the UDP header's length field
(short Ethernet frames are padded to 60 octets: the padding is not ASTERIX), with its capture
time. Link types: Ethernet (with 802.1Q VLAN tags), Linux cooked (SLL, SLL2), raw IP, BSD
loopback; IPv4 and IPv6. Packets that are not UDP, IP fragments after the first, and packets
cut short by the capture's snap length are skipped and counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap.errors import InputError

PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
              b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}  # fmt: skip
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


@dataclass
class Payloads:
    """UDP payloads laid end to end: ``data[start[i]:end[i]]`` arrived at ``time_s[i]``."""

    data: bytes
    start: np.ndarray
    end: np.ndarray
    time_s: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def segments(self) -> np.ndarray:
        return np.stack([self.start, self.end], axis=1)

    def __len__(self) -> int:
        return len(self.start)


def file_kind(path: Path) -> str:
    """``pcap``, ``pcapng`` or ``raw`` (anything else is read as raw ASTERIX data blocks)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head in PCAP_MAGIC:
        return "pcap"
    if head == PCAPNG_MAGIC:
        return "pcapng"
    return "raw"


def _udp_payload(frame: bytes, linktype: int, counts: dict[str, int]) -> bytes | None:
    """The UDP payload of one captured frame (None if the frame is not a whole UDP packet)."""
    p = 0
    if linktype == 1:  # Ethernet
        if len(frame) < 14:
            return _skip(counts, "short_frame")
        ethertype = struct.unpack_from(">H", frame, 12)[0]
        p = 14
        while ethertype in (0x8100, 0x88A8) and len(frame) >= p + 4:  # VLAN tags
            ethertype = struct.unpack_from(">H", frame, p + 2)[0]
            p += 4
    elif linktype == 113:  # Linux cooked v1
        if len(frame) < 16:
            return _skip(counts, "short_frame")
        ethertype, p = struct.unpack_from(">H", frame, 14)[0], 16
    elif linktype == 276:  # Linux cooked v2
        if len(frame) < 20:
            return _skip(counts, "short_frame")
        ethertype, p = struct.unpack_from(">H", frame, 0)[0], 20
    elif linktype in (101, 228, 229, 12, 14):  # raw IP
        if not frame:
            return _skip(counts, "short_frame")
        ethertype = 0x0800 if frame[0] >> 4 == 4 else 0x86DD
    elif linktype == 0:  # BSD loopback: 4-octet address family in host order
        if len(frame) < 4:
            return _skip(counts, "short_frame")
        fam = max(struct.unpack_from("<I", frame, 0)[0], struct.unpack_from(">I", frame, 0)[0])
        ethertype, p = (0x0800 if fam == 2 else 0x86DD), 4
    else:
        return _skip(counts, f"linktype_{linktype}")
    if ethertype == 0x0800:
        if len(frame) < p + 20:
            return _skip(counts, "short_frame")
        ihl = (frame[p] & 0x0F) * 4
        proto = frame[p + 9]
        frag = struct.unpack_from(">H", frame, p + 6)[0]
        if proto != 17:
            return _skip(counts, "not_udp")
        if frag & 0x1FFF or frag & 0x2000:
            return _skip(counts, "ip_fragment")
        p += ihl
    elif ethertype == 0x86DD:
        if len(frame) < p + 40:
            return _skip(counts, "short_frame")
        if frame[p + 6] != 17:  # extension headers are not followed
            return _skip(counts, "not_udp")
        p += 40
    else:
        return _skip(counts, "not_ip")
    if len(frame) < p + 8:
        return _skip(counts, "short_frame")
    udp_len = struct.unpack_from(">H", frame, p + 4)[0]
    if udp_len < 8 or p + udp_len > len(frame):
        return _skip(counts, "snapped_or_bad_udp_length")
    return frame[p + 8 : p + udp_len]


def _skip(counts: dict[str, int], why: str) -> None:
    counts[why] = counts.get(why, 0) + 1
    return None


def _collect(packets, counts) -> Payloads:
    chunks, start, end, times = [], [], [], []
    n = 0
    for t, payload in packets:
        chunks.append(payload)
        start.append(n)
        n += len(payload)
        end.append(n)
        times.append(t)
    return Payloads(
        b"".join(chunks), np.array(start, np.int64), np.array(end, np.int64), np.array(times, np.float64), counts
    )


def read_pcap(path: Path) -> Payloads:
    """UDP payloads of a classic pcap file (micro- or nanosecond, either byte order)."""
    data = Path(path).read_bytes()
    if len(data) < 24 or data[:4] not in PCAP_MAGIC:
        raise InputError(f"{path}: not a pcap file (bad magic number)")
    endian, tick = PCAP_MAGIC[data[:4]]
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    counts: dict[str, int] = {}

    def packets():
        p = 24
        while p + 16 <= len(data):
            sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, p)
            p += 16
            if p + incl > len(data):
                _skip(counts, "truncated_capture")
                return
            payload = _udp_payload(data[p : p + incl], linktype, counts)
            p += incl
            if payload is not None:
                yield sec + frac * tick, payload
        if p != len(data):
            _skip(counts, "truncated_capture")

    return _collect(packets(), counts)


def read_pcapng(path: Path) -> Payloads:
    """UDP payloads of a pcapng file (Enhanced and Simple Packet Blocks; per-interface link type
    and timestamp resolution)."""
    data = Path(path).read_bytes()
    if data[:4] != PCAPNG_MAGIC or len(data) < 28:
        raise InputError(f"{path}: not a pcapng file (bad magic number)")
    counts: dict[str, int] = {}
    interfaces: list[tuple[int, float]] = []

    def packets():
        p, endian = 0, "<"
        while p + 12 <= len(data):
            btype = struct.unpack_from(endian + "I", data, p)[0]
            if btype == 0x0A0D0D0A:  # section header: fixes the byte order of the section
                endian = "<" if data[p + 8 : p + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                interfaces.clear()
            blen = struct.unpack_from(endian + "I", data, p + 4)[0]
            if blen < 12 or p + blen > len(data):
                _skip(counts, "truncated_capture")
                return
            body = data[p + 8 : p + blen - 4]
            if btype == 1:  # interface description
                linktype = struct.unpack_from(endian + "H", body, 0)[0]
                interfaces.append((linktype, _if_tsresol(body[8:], endian)))
            elif btype == 6 and len(body) >= 20:  # enhanced packet
                iface, hi, lo, cap = struct.unpack_from(endian + "IIII", body, 0)
                if iface < len(interfaces) and 20 + cap <= len(body):
                    linktype, tick = interfaces[iface]
                    payload = _udp_payload(body[20 : 20 + cap], linktype, counts)
                    if payload is not None:
                        yield ((hi << 32) | lo) * tick, payload
                else:
                    _skip(counts, "bad_packet_block")
            elif btype == 3 and interfaces:  # simple packet: no timestamp
                payload = _udp_payload(body[4:], interfaces[0][0], counts)
                if payload is not None:
                    yield float("nan"), payload
            p += blen

    return _collect(packets(), counts)


def _if_tsresol(options: bytes, endian: str) -> float:
    """Timestamp tick (s) from an interface's if_tsresol option (default microseconds)."""
    p = 0
    while p + 4 <= len(options):
        code, ln = struct.unpack_from(endian + "HH", options, p)
        if code == 0:
            break
        if code == 9 and ln >= 1:
            v = options[p + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        p += 4 + ((ln + 3) // 4) * 4
    return 1e-6


def read_payloads(path: Path) -> Payloads | None:
    """The UDP payloads of a capture file, or None if the file is raw ASTERIX."""
    kind = file_kind(path)
    if kind == "pcap":
        return read_pcap(path)
    if kind == "pcapng":
        return read_pcapng(path)
    return None
