"""Compiled framing of ASTERIX bytes: data blocks -> records -> item offsets.

One pass over the byte stream (numba). A data block is ``CAT (1 octet) | LEN (2 octets, the
block's whole length) | records``; a record is ``FSPEC | items`` laid out as the category's
UAP says (:mod:`.spec`). :func:`frame_record` finds where each item of one record starts; the
category decoders (:mod:`.decode`) read the fields from there.

Bad input never stops the pass. A record that cannot be framed (FSPEC or an item running past
the block, a spare FRN set, an empty FSPEC, a bad compound subfield) ends its block: records
have no length of their own, so nothing after it in that block can be trusted; the records
before it stand. A block whose LEN is impossible (under 3, or past the end of its segment) is
dropped and the pass resynchronises on the next offset where a whole block of a framed
category parses cleanly; the bytes skipped are reported as garbage. Every drop is reported as
``(byte offset, error code, count)``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from . import spec

# Error codes (index into ERRORS).
ERRORS = (
    "",
    "block_truncated",  # LEN runs past the end of the segment (datagram, packet or file)
    "block_too_short",  # LEN < 3
    "unknown_category",  # a block of a category siap does not frame (skipped whole by LEN)
    "fspec_overrun",  # FSPEC runs past the block or is longer than the UAP
    "spare_item",  # FSPEC sets an FRN that is spare or beyond the UAP
    "item_overrun",  # an item runs past the end of its block
    "empty_record",  # FSPEC with no item set
    "bad_compound",  # a compound item's primary subfield is malformed
    "garbage",  # bytes skipped while resynchronising after a bad block header
)
BLOCK_TRUNCATED, BLOCK_TOO_SHORT, UNKNOWN_CATEGORY, FSPEC_OVERRUN, SPARE_ITEM = 1, 2, 3, 4, 5
ITEM_OVERRUN, EMPTY_RECORD, BAD_COMPOUND, GARBAGE = 6, 7, 8, 9

ITEM_KIND, ITEM_SIZE, N_FRN = spec.ITEM_KIND, spec.ITEM_SIZE, spec.N_FRN
SUB_KIND, SUB_SIZE, N_SUB = spec.SUB_KIND, spec.SUB_SIZE, spec.N_SUB


@nb.njit(cache=True, nogil=True)
def _item_length(buf, p, end, kind, size, sub_kind, sub_size, n_sub):
    """Length in octets of the item starting at ``p`` (negative error code if malformed)."""
    if kind == spec.FIXED:
        n = size
    elif kind == spec.EXTENDED:
        q = p
        while True:
            if q >= end:
                return -ITEM_OVERRUN
            if buf[q] & 1 == 0:
                break
            q += 1
        n = q - p + 1
    elif kind == spec.REPETITIVE:
        if p >= end:
            return -ITEM_OVERRUN
        n = 1 + np.int64(buf[p]) * size
    elif kind == spec.EXPLICIT:
        if p >= end:
            return -ITEM_OVERRUN
        n = np.int64(buf[p])
        if n < 1:
            return -ITEM_OVERRUN
    elif kind == spec.FX_REPETITIVE:
        q = p
        while True:
            last = q + size - 1
            if last >= end:
                return -ITEM_OVERRUN
            if buf[last] & 1 == 0:
                break
            q += size
        n = q + size - p
    elif kind == spec.COMPOUND:
        c = size
        q = p
        nbits = 0
        # primary subfield
        while True:
            if q >= end:
                return -ITEM_OVERRUN
            nbits += 7
            if buf[q] & 1 == 0:
                break
            q += 1
        if nbits > ((n_sub[c] + 6) // 7) * 7:
            return -BAD_COMPOUND
        r = q + 1
        any_set = False
        for byte_i in range(q - p + 1):
            b = buf[p + byte_i]
            for bit in range(7):
                if b & (0x80 >> bit):
                    s = byte_i * 7 + bit
                    if s >= n_sub[c] or sub_kind[c, s] == spec.NONE:
                        return -BAD_COMPOUND
                    any_set = True
                    ln = _item_length(buf, r, end, sub_kind[c, s], sub_size[c, s], sub_kind, sub_size, n_sub)
                    if ln < 0:
                        return ln
                    r += ln
        if not any_set:
            return -BAD_COMPOUND
        n = r - p
    else:
        return -SPARE_ITEM
    if p + n > end:
        return -ITEM_OVERRUN
    return n


@nb.njit(cache=True, nogil=True)
def frame_record(buf, p, end, cat, offs):
    """Frame the record at ``p`` (its block ends at ``end``): ``offs[frn - 1]`` is set to each
    present item's offset (-1 for absent ones). Returns the record's end, or a negative error
    code."""
    nfrn = N_FRN[cat]
    for i in range(spec.MAX_FRN):
        offs[i] = -1
    q = p
    nbytes = 0
    while True:
        if q >= end or nbytes >= (nfrn + 6) // 7:
            return -FSPEC_OVERRUN
        nbytes += 1
        if buf[q] & 1 == 0:
            break
        q += 1
    r = q + 1
    any_set = False
    for byte_i in range(nbytes):
        b = buf[p + byte_i]
        for bit in range(7):
            if b & (0x80 >> bit):
                frn0 = byte_i * 7 + bit
                if frn0 >= nfrn or ITEM_KIND[cat, frn0] == spec.NONE:
                    return -SPARE_ITEM
                any_set = True
                ln = _item_length(buf, r, end, ITEM_KIND[cat, frn0], ITEM_SIZE[cat, frn0], SUB_KIND, SUB_SIZE, N_SUB)
                if ln < 0:
                    return ln
                offs[frn0] = r
                r += ln
    if not any_set:
        return -EMPTY_RECORD
    return r


@nb.njit(cache=True, nogil=True)
def block_is_clean(buf, p, seg_end, offs):
    """True if a whole block of a framed category starts at ``p`` and all its records frame."""
    if p + 3 > seg_end:
        return False
    cat = buf[p]
    ln = (np.int64(buf[p + 1]) << 8) | buf[p + 2]
    if N_FRN[cat] == 0 or ln < 4 or p + ln > seg_end:
        return False
    q = p + 3
    while q < p + ln:
        r = frame_record(buf, q, p + ln, cat, offs)
        if r < 0:
            return False
        q = r
    return True


@nb.njit(cache=True, nogil=True)
def resync(buf, p, seg_end, offs):
    """The first offset after ``p`` where a clean block starts (``seg_end`` if none)."""
    q = p + 1
    while q < seg_end:
        if N_FRN[buf[q]] != 0 and block_is_clean(buf, q, seg_end, offs):
            return q
        q += 1
    return seg_end
