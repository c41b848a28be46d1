"""Confidentiality labels in the shape of NATO STANAG 4774 and the releasability decision.

A :class:`Label` has the three parts of a STANAG 4774 confidentiality label (ADatP-4774,
"Confidentiality Metadata Label Syntax"):

* a **policy identifier** (here ``SIAP``: the coalition's security policy),
* a **classification**, totally ordered
  ``UNCLASSIFIED < RESTRICTED < CONFIDENTIAL < SECRET < TOP SECRET``,
* **categories**:

  - one *permissive* category, ``REL TO`` (a set of nations, ISO 3166-1 alpha-3): a partner
    must be one of them. Absent means "no nationality restriction inside the coalition";
    present and empty (``REL TO NONE``, which only arises from :func:`combine`) means
    "releasable to no partner".
  - *restrictive* categories: nation-only markings (``JPN ONLY``: only that nation) and named
    categories (e.g. ``ORCON``): a partner must satisfy every one of them.

Canonical text (fits the records' ``label`` field, numpy ``U64``)::

    POLICY//CLASSIFICATION[//REL TO AAA, BBB, ...][//XXX ONLY ...][//NAMED ...]

REL TO nations sorted and separated by ``", "``; nation-only markings sorted, then named
categories sorted, one per ``//`` segment. Example: ``SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA``.

The lattice
-----------
Order labels by "at least as restrictive as" (:func:`dominates`): ``a >= b`` iff

* ``a.classification >= b.classification``,
* ``a.rel_to ⊆ b.rel_to`` (an absent REL TO is the set of all nations, the bottom), and
* ``a.nation_only ⊇ b.nation_only`` and ``a.restrictive ⊇ b.restrictive``.

This is the product of a chain, a reversed power set and two power sets, hence a lattice; its
join (least upper bound) is :func:`combine`: highest classification, intersection of REL TO,
union of the restrictive categories. The label of data derived from several inputs is the
join of their labels, so it is releasable to a partner only if every input was (the
releasability predicate is antitone: ``a >= b`` and ``releasable_to(a, ...)`` imply
``releasable_to(b, ...)``). Labels under different policy identifiers are incomparable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

__all__ = [
    "Classification",
    "Label",
    "NATIONS",
    "LABEL_MAX_CHARS",
    "DEFAULT_POLICY_ID",
    "parse",
    "parse_cached",
    "format_label",
    "releasable_to",
    "combine",
    "dominates",
]

LABEL_MAX_CHARS = 64  # records' `label` field is numpy "U64"
DEFAULT_POLICY_ID = "SIAP"


class Classification(IntEnum):
    """Classification levels, ordered (higher value = more restrictive)."""

    UNCLASSIFIED = 0
    RESTRICTED = 1
    CONFIDENTIAL = 2
    SECRET = 3
    TOP_SECRET = 4

    @property
    def text(self) -> str:
        """The marking as written in a label (``TOP SECRET`` with a space)."""
        return self.name.replace("_", " ")

    @classmethod
    def from_text(cls, text: str) -> Classification:
        """Parse ``CONFIDENTIAL`` / ``TOP SECRET`` (exact, upper case); ValueError otherwise."""
        for c in cls:
            if c.text == text:
                return c
        raise ValueError(
            f"unknown classification {text!r}; expected one of "
            + ", ".join(c.text for c in cls)
        )


# ISO 3166-1 alpha-3 country codes (the nation vocabulary of REL TO and nation-only markings).
NATIONS: frozenset[str] = frozenset(
    """
    ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL BEN BES BFA
    BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE CHL CHN
    CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR CYM CYP CZE DEU DJI DMA DNK DOM DZA ECU
    EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR GEO GGY GHA GIB GIN GLP GMB GNB
    GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN IND IOT IRL IRN IRQ ISL
    ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN LBR LBY LCA LIE LKA LSO
    LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT MMR MNE MNG MNP MOZ MRT MSR
    MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR NPL NRU NZL OMN PAK PAN PCN PER
    PHL PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU RUS RWA SAU SDN SEN SGP SGS SHN SJM
    SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK
    TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM
    VUT WLF WSM YEM ZAF ZMB ZWE
    """.split()
)

_POLICY_RE = re.compile(r"^[A-Z][A-Z0-9_-]{0,15}$")
_NAMED_RE = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}$")
_REL_TO = "REL TO "
_ONLY = " ONLY"
_REL_TO_NONE = "NONE"


def _check_nation(code: str, where: str) -> str:
    if code not in NATIONS:
        raise ValueError(
            f"unknown nation code {code!r} in {where}; expected an ISO 3166-1 alpha-3 code "
            "in upper case (e.g. AUS, JPN, USA)"
        )
    return code


@dataclass(frozen=True, slots=True)
class Label:
    """A confidentiality label (immutable, hashable). Build with :func:`parse` or directly.

    ``rel_to=None``: no REL TO marking (no nationality restriction); ``frozenset()``: releasable
    to no partner. ``nation_only``: nations of ``XXX ONLY`` markings. ``restrictive``: named
    restrictive categories a partner must be authorised for.
    """

    classification: Classification
    rel_to: frozenset[str] | None = None
    nation_only: frozenset[str] = field(default_factory=frozenset)
    restrictive: frozenset[str] = field(default_factory=frozenset)
    policy: str = DEFAULT_POLICY_ID

    def __post_init__(self) -> None:
        object.__setattr__(self, "classification", Classification(self.classification))
        if not _POLICY_RE.match(self.policy):
            raise ValueError(
                f"bad policy identifier {self.policy!r}; expected 1-16 of A-Z, 0-9, '_', '-' "
                "starting with a letter"
            )
        if self.rel_to is not None:
            object.__setattr__(self, "rel_to", frozenset(self.rel_to))
            for n in self.rel_to:
                _check_nation(n, "REL TO")
        object.__setattr__(self, "nation_only", frozenset(self.nation_only))
        for n in self.nation_only:
            _check_nation(n, "nation-only marking")
        object.__setattr__(self, "restrictive", frozenset(self.restrictive))
        for c in self.restrictive:
            if not _NAMED_RE.match(c) or c == "REL" or c in NATIONS:
                raise ValueError(
                    f"bad restrictive category {c!r}; expected 2-16 of A-Z, 0-9, '_', '-' "
                    "starting with a letter, not a nation code"
                )

    def format(self) -> str:
        """Canonical text; ValueError if it would not fit the 64-character ``label`` field."""
        return format_label(self)

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def parse(cls, text: str) -> Label:
        return parse(text)


def format_label(label: Label) -> str:
    """Canonical text of ``label`` (see module doc). ValueError if longer than 64 characters."""
    parts = [label.policy, label.classification.text]
    if label.rel_to is not None:
        parts.append(_REL_TO + (", ".join(sorted(label.rel_to)) if label.rel_to else _REL_TO_NONE))
    parts.extend(n + _ONLY for n in sorted(label.nation_only))
    parts.extend(sorted(label.restrictive))
    text = "//".join(parts)
    if len(text) > LABEL_MAX_CHARS:
        raise ValueError(
            f"label text {text!r} is {len(text)} characters; the records' label field holds "
            f"at most {LABEL_MAX_CHARS}"
        )
    return text


def parse(text: str) -> Label:
    """Parse a label's text strictly; ValueError with the reason on anything malformed.

    Accepts REL TO nations in any order (``REL TO USA, JPN``) and categories in any order; rejects
    lower case, unknown classifications or nations, duplicates, empty list items, a second
    REL TO, and text longer than 64 characters.
    """
    if not isinstance(text, str):
        raise ValueError(f"label must be a string, got {type(text).__name__}")
    if text == "":
        raise ValueError("empty label (unlabelled data); expected e.g. 'SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA'")
    if len(text) > LABEL_MAX_CHARS:
        raise ValueError(f"label {text!r} is longer than {LABEL_MAX_CHARS} characters")
    segments = text.split("//")
    if len(segments) < 2:
        raise ValueError(f"malformed label {text!r}; expected 'POLICY//CLASSIFICATION[//CATEGORY...]'")
    policy, cls_text, *cats = segments
    if not _POLICY_RE.match(policy):
        raise ValueError(f"malformed label {text!r}: bad policy identifier {policy!r}")
    classification = Classification.from_text(cls_text)
    rel_to: frozenset[str] | None = None
    only: set[str] = set()
    named: set[str] = set()
    for seg in cats:
        if seg.startswith(_REL_TO):
            if rel_to is not None:
                raise ValueError(f"malformed label {text!r}: more than one REL TO")
            rel_to = _parse_rel_to(seg[len(_REL_TO):], text)
        elif seg.endswith(_ONLY):
            nation = _check_nation(seg[: -len(_ONLY)], f"label {text!r}")
            if nation in only:
                raise ValueError(f"malformed label {text!r}: duplicate {seg!r}")
            only.add(nation)
        elif _NAMED_RE.match(seg) and seg not in NATIONS and seg != "REL":
            if seg in named:
                raise ValueError(f"malformed label {text!r}: duplicate category {seg!r}")
            named.add(seg)
        else:
            raise ValueError(
                f"malformed label {text!r}: category {seg!r} is neither 'REL TO AAA, BBB', "
                "'XXX ONLY' nor a named category (A-Z0-9_-)"
            )
    return Label(classification, rel_to, frozenset(only), frozenset(named), policy)


def _parse_rel_to(body: str, text: str) -> frozenset[str]:
    if body == _REL_TO_NONE:
        return frozenset()
    items = body.split(",")
    out: set[str] = set()
    for i, raw in enumerate(items):
        if i > 0 and not raw.startswith(" "):
            raise ValueError(f"malformed REL TO list {body!r} in label {text!r}; expected 'AAA, BBB, CCC'")
        item = raw[1:] if i > 0 else raw
        if item == "" or item != item.strip():
            raise ValueError(f"malformed REL TO list {body!r} in label {text!r}; expected 'AAA, BBB, CCC'")
        _check_nation(item, f"label {text!r}")
        if item in out:
            raise ValueError(f"malformed REL TO list {body!r} in label {text!r}: duplicate {item}")
        out.add(item)
    return frozenset(out)


@lru_cache(maxsize=4096)
def parse_cached(text: str) -> Label:
    """:func:`parse` with a cache (labels repeat across a batch's rows)."""
    return parse(text)


def _as_label(x: Label | str) -> Label:
    return x if isinstance(x, Label) else parse_cached(x)


def releasable_to(
    label: Label | str,
    partner: str,
    clearance: Classification | str | int,
    authorisations: Iterable[str] = (),
) -> bool:
    """True iff data under ``label`` may be released to ``partner`` holding ``clearance``.

    Rules: clearance >= classification; partner in REL TO (when there is one); partner equal to
    every nation-only marking; every named restrictive category in ``authorisations``.
    """
    lab = _as_label(label)
    if isinstance(clearance, str):
        clearance = Classification.from_text(clearance)
    if Classification(clearance) < lab.classification:
        return False
    if lab.rel_to is not None and partner not in lab.rel_to:
        return False
    if any(n != partner for n in lab.nation_only):
        return False
    return lab.restrictive <= frozenset(authorisations)


def dominates(a: Label | str, b: Label | str) -> bool:
    """True iff ``a`` is at least as restrictive as ``b`` (``a >= b`` in the lattice).

    Labels under different policy identifiers are incomparable (False).
    """
    la, lb = _as_label(a), _as_label(b)
    if la.policy != lb.policy:
        return False
    if la.classification < lb.classification:
        return False
    if lb.rel_to is not None and (la.rel_to is None or not la.rel_to <= lb.rel_to):
        return False
    return la.nation_only >= lb.nation_only and la.restrictive >= lb.restrictive


def combine(labels: Iterable[Label | str]) -> Label:
    """The join of ``labels``: the label of data derived from all of them.

    Highest classification, intersection of REL TO sets (absent = all), union of nation-only
    markings and of named restrictive categories. ValueError on an empty input or mixed policy
    identifiers.
    """
    items = [_as_label(x) for x in labels]
    if not items:
        raise ValueError("combine() needs at least one label")
    policies = {x.policy for x in items}
    if len(policies) > 1:
        raise ValueError(f"cannot combine labels of different policies {sorted(policies)}")
    rel: frozenset[str] | None = None
    for x in items:
        if x.rel_to is not None:
            rel = x.rel_to if rel is None else rel & x.rel_to
    return Label(
        max(x.classification for x in items),
        rel,
        frozenset().union(*(x.nation_only for x in items)),
        frozenset().union(*(x.restrictive for x in items)),
        items[0].policy,
    )
