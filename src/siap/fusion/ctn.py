"""Coalition track numbers (CTN): a deterministic int64 encoding of a founding local track.

Layout of a CTN (63 bits, always positive in int64)::

    bit 62 ............ 48 | 47 ...... 40 | 39 ................ 0
    partner code (15 bits)  | generation (8)| local track id (40 bits)

* partner code: the partner's 1-3 letter code (ISO 3166 alpha-3, A-Z), 5 bits per letter,
  ``A = 1 .. Z = 26``, a missing trailing letter = 0, first letter in the highest bits. The code
  is therefore monotone in the partner string, so CTNs sort by (partner, generation, track id).
* generation: 0 in the normal case. It is raised only when the founder's generation-0 number is
  still held by a live fused track of the same fuser (a local track that founded a fused track,
  was later split off from it and founds a second one while the first lives).
* local track id: the founder's ``track_id``, which must lie in ``[0, 2**40)``.

The encoding is injective, so two fused tracks can only share a CTN if they were founded by the
same (partner, track_id) with the same generation; the fuser picks the smallest generation not
held by any live fused track, so live CTNs never collide. A local track's *key* is its CTN with
generation 0.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LOCAL_ID_BITS",
    "GENERATION_BITS",
    "MAX_LOCAL_ID",
    "MAX_GENERATION",
    "partner_code",
    "local_key",
    "ctn_with_generation",
    "decode_ctn",
    "valid_partner",
]

LOCAL_ID_BITS = 40
GENERATION_BITS = 8
PARTNER_SHIFT = LOCAL_ID_BITS + GENERATION_BITS  # 48
MAX_LOCAL_ID = (1 << LOCAL_ID_BITS) - 1
MAX_GENERATION = (1 << GENERATION_BITS) - 1


def _codepoints(partner) -> np.ndarray:
    p = np.atleast_1d(np.asarray(partner, dtype="U3"))
    return np.ascontiguousarray(p).view(np.uint32).reshape(-1, 3).astype(np.int64)


def valid_partner(partner) -> np.ndarray:
    """True where the partner code is 1-3 letters A-Z with no gaps (e.g. 'JPN', 'US')."""
    cp = _codepoints(partner)
    letter = (cp >= ord("A")) & (cp <= ord("Z"))
    blank = cp == 0
    # first letter present; once blank, stays blank
    ok = letter[:, 0] & (letter[:, 1] | (blank[:, 1] & blank[:, 2])) & (letter[:, 2] | blank[:, 2])
    return ok


def partner_code(partner) -> np.ndarray:
    """15-bit code of each partner string (see module doc); call :func:`valid_partner` first."""
    cp = _codepoints(partner)
    c = np.where(cp == 0, 0, cp - (ord("A") - 1))
    return (c[:, 0] << 10) | (c[:, 1] << 5) | c[:, 2]


def local_key(partner, track_id) -> np.ndarray:
    """Key of a local track: its generation-0 CTN, ``partner_code << 48 | track_id``."""
    tid = np.atleast_1d(np.asarray(track_id, dtype=np.int64))
    return (partner_code(partner) << PARTNER_SHIFT) | tid


def ctn_with_generation(key: int, generation: int) -> int:
    """The CTN founded by local track ``key`` in generation ``generation``."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"generation {generation} outside [0, {MAX_GENERATION}]")
    return int(key) | (int(generation) << LOCAL_ID_BITS)


def decode_ctn(ctn: int) -> tuple[str, int, int]:
    """(partner, generation, local track id) of a CTN or local key."""
    ctn = int(ctn)
    code = ctn >> PARTNER_SHIFT
    letters = [(code >> s) & 31 for s in (10, 5, 0)]
    partner = "".join(chr(ord("A") - 1 + c) for c in letters if c)
    return partner, (ctn >> LOCAL_ID_BITS) & MAX_GENERATION, ctn & MAX_LOCAL_ID
