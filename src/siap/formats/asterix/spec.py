"""The ASTERIX item layouts (User Application Profiles) siap frames, as compact tables.

Every record starts with an FSPEC (field specification: octets whose 7 high bits say which
items follow, in UAP order, and whose low bit, FX, says another FSPEC octet follows). To skip
an item one only needs its *length rule*, so each UAP is a table of ``(kind, size)`` per
field reference number (FRN):

* ``FIXED``: ``size`` octets;
* ``EXTENDED``: octets until one with FX (bit 1) clear;
* ``REPETITIVE``: one count octet REP, then ``REP * size`` octets;
* ``EXPLICIT``: a length octet that counts itself, then the rest (SP, RE);
* ``COMPOUND``: a primary subfield (FSPEC-like, FX-extended) saying which subitems follow;
  ``size`` is the index of the subitem table in :data:`COMPOUND`;
* ``FX_REPETITIVE``: elements of ``size`` octets repeated while the last octet of an element
  has FX set (I048/030, I062/510);
* ``NONE``: an FRN that is spare in this edition (a record that sets it is malformed).

Sources: EUROCONTROL ASTERIX specifications CAT048 ed. 1.32, CAT034 ed. 1.29, CAT021 ed. 2.6,
CAT062 ed. 1.21, CAT065 ed. 1.6 (the same editions libasterix 0.36 calls ``Cat_048_1_32`` etc.).
"""

from __future__ import annotations

import numpy as np

NONE, FIXED, EXTENDED, REPETITIVE, EXPLICIT, COMPOUND, FX_REPETITIVE = range(7)

F, X, R, E, C, XR = FIXED, EXTENDED, REPETITIVE, EXPLICIT, COMPOUND, FX_REPETITIVE
_ = (NONE, 0)

# Compound items: subitem layouts in primary-subfield bit order (None = spare bit).
_COMPOUNDS: dict[str, list[tuple[int, int]]] = {
    "048/130": [(F, 1)] * 7,
    "048/120": [(F, 2), (R, 6)],
    "034/050": [(F, 1), _, _, (F, 1), (F, 1), (F, 2)],
    "034/060": [(F, 1), _, _, (F, 1), (F, 1), (F, 1)],
    "021/220": [(F, 2), (F, 2), (F, 2), (F, 1)],
    "021/110": [(X, 1), (R, 15)],
    "021/295": [(F, 1)] * 23,
}
COMPOUND_NAMES = list(_COMPOUNDS)
_CI = {name: i for i, name in enumerate(COMPOUND_NAMES)}

# UAPs, FRN 1 first: (kind, size).
UAP: dict[int, list[tuple[int, int]]] = {
    48: [
        (F, 2), (F, 3), (X, 1), (F, 4), (F, 2), (F, 2), (C, _CI["048/130"]),  # 010 140 020 040 070 090 130
        (F, 3), (F, 6), (R, 8), (F, 2), (F, 4), (F, 4), (X, 1),  # 220 240 250 161 042 200 170
        (F, 4), (XR, 1), (F, 2), (F, 4), (F, 2), (C, _CI["048/120"]), (F, 2),  # 210 030 080 100 110 120 230
        (F, 7), (F, 1), (F, 2), (F, 1), (F, 2), (E, 0), (E, 0),  # 260 055 050 065 060 SP RE
    ],
    34: [
        (F, 2), (F, 1), (F, 3), (F, 1), (F, 2), (C, _CI["034/050"]), (C, _CI["034/060"]),  # 010 000 030 020 041 050 060
        (R, 2), (F, 8), (F, 1), (F, 8), (F, 2), (E, 0), (E, 0),  # 070 100 110 120 090 RE SP
    ],
    21: [
        (F, 2), (X, 1), (F, 2), (F, 1), (F, 3), (F, 6), (F, 8),  # 010 040 161 015 071 130 131
        (F, 3), (F, 2), (F, 2), (F, 3), (F, 3), (F, 4), (F, 3),  # 072 150 151 080 073 074 075
        (F, 4), (F, 2), (X, 1), (F, 1), (F, 2), (F, 2), (F, 2),  # 076 140 090 210 070 230 145
        (F, 2), (F, 1), (F, 2), (F, 2), (F, 4), (F, 2), (F, 3),  # 152 200 155 157 160 165 077
        (F, 6), (F, 1), (C, _CI["021/220"]), (F, 2), (F, 2), (C, _CI["021/110"]), (F, 1),  # 170 020 220 146 148 110 016
        (F, 1), (X, 1), (F, 1), (R, 8), (F, 7), (F, 1), (C, _CI["021/295"]),  # 008 271 132 250 260 400 295
        _, _, _, _, _, (E, 0), (E, 0),  # spare x5, RE, SP
    ],
}

MAX_FRN = 49
MAX_SUB = 32
CATEGORIES = tuple(sorted(UAP))

# Dense tables for the compiled framer: [category, frn - 1] and [compound, sub - 1].
ITEM_KIND = np.zeros((256, MAX_FRN), np.int8)
ITEM_SIZE = np.zeros((256, MAX_FRN), np.int16)
N_FRN = np.zeros(256, np.int16)  # 0 = category not framed by siap
for _cat, _items in UAP.items():
    N_FRN[_cat] = len(_items)
    for _i, (_k, _s) in enumerate(_items):
        ITEM_KIND[_cat, _i], ITEM_SIZE[_cat, _i] = _k, _s
SUB_KIND = np.zeros((len(COMPOUND_NAMES), MAX_SUB), np.int8)
SUB_SIZE = np.zeros((len(COMPOUND_NAMES), MAX_SUB), np.int16)
N_SUB = np.zeros(len(COMPOUND_NAMES), np.int16)
for _name, _subs in _COMPOUNDS.items():
    _c = _CI[_name]
    N_SUB[_c] = len(_subs)
    for _i, (_k, _s) in enumerate(_subs):
        SUB_KIND[_c, _i], SUB_SIZE[_c, _i] = _k, _s
