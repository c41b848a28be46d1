"""Mode S parity and the fields read before decoding: the 24-bit CRC remainder of every frame
(compiled) and the Mode 3/A identity of DF5 / DF21 replies (vectorised)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["crc_remainder", "identity_code"]

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


