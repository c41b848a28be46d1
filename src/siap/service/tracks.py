"""Tracks as the COP and the API show them: one JSON object per track, with its affiliation.

:func:`encode_tracks` turns a track batch (TRACK_DTYPE) into plain dicts: position, flight
level, velocity in the local east-north-up frame (speed, course, vertical rate), quality
(position / velocity sigma from the covariance), identity (Mode S, Mode 3/A, callsign),
provenance (sources, sensors), label and the affiliation decided by :class:`Identifier`.

Track ids are 63-bit coalition track numbers (see :mod:`siap.fusion.ctn`), larger than a
JavaScript number holds exactly, so they travel as decimal strings (``"id"``); ``"tn"`` is the
short display number (partner letters and the founder's local track id, e.g. ``JPN-1042``).

Affiliation (MIL-STD-2525 / APP-6 standard identity) is *not* inferred from who tracks an
aircraft: partners track hostiles too. :class:`Identifier` applies the configured rules in
order (first match wins); the default rules are:

1. a Mode S address in a configured coalition military block (default: the US military block
   ``ADF7C8``-``AFFFFF`` of the ICAO allocation to the United States) -> ``friend``;
2. any cooperative identity (Mode S address, Mode 3/A code or callsign) -> ``neutral``
   (identified civil traffic);
3. otherwise -> ``unknown`` (a primary-only track, pending identification).

Nothing is ``hostile`` unless a rule says so (e.g. a listed Mode 3/A code or address).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from siap import geo, records
from siap.fusion.ctn import LOCAL_ID_BITS, PARTNER_SHIFT
from siap.runtime.groups import GROUP_SHIFT

__all__ = ["AFFILIATIONS", "IdentityRule", "Identifier", "DEFAULT_RULES", "encode_tracks", "display_number"]

AFFILIATIONS = ("friend", "neutral", "unknown", "hostile")
Affiliation = Literal["friend", "neutral", "unknown", "hostile"]
_FEET_PER_M = 1.0 / 0.3048
_STATUS = {int(s): s.name.lower() for s in records.TrackStatus}


class IdentityRule(BaseModel):
    """One identification rule: every condition given must hold (an empty rule matches all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field("", description="what the rule stands for (shown in the track panel)")
    affiliation: Affiliation
    mode_s_from: str | None = Field(None, description="lowest 24-bit Mode S address, hex (e.g. ADF7C8)")
    mode_s_to: str | None = Field(None, description="highest 24-bit Mode S address, hex")
    mode_3a: tuple[str, ...] = Field((), description="Mode 3/A codes, four octal digits (e.g. '7500')")
    callsign_prefix: tuple[str, ...] = Field((), description="callsign prefixes (e.g. 'RCH')")
    sensor: tuple[str, ...] = Field((), description="sensor ids: matches when any contributed")
    cooperative: bool | None = Field(None, description="has a Mode S address, Mode 3/A code or callsign")

    @field_validator("mode_s_from", "mode_s_to")
    @classmethod
    def _hex24(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            n = int(v, 16)
        except ValueError:
            raise ValueError(f"a 24-bit hex address like ADF7C8 (got {v!r})") from None
        if not 0 <= n < 1 << 24:
            raise ValueError(f"a 24-bit hex address like ADF7C8 (got {v!r})")
        return f"{n:06X}"

    @field_validator("mode_3a")
    @classmethod
    def _octal(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for code in v:
            if len(code) != 4 or any(c not in "01234567" for c in code):
                raise ValueError(f"Mode 3/A codes of four octal digits like '7500' (got {code!r})")
        return v


DEFAULT_RULES: tuple[IdentityRule, ...] = (
    IdentityRule(
        name="coalition military Mode S block (US military, ICAO allocation ADF7C8-AFFFFF)",
        affiliation="friend",
        mode_s_from="ADF7C8",
        mode_s_to="AFFFFF",
    ),
    IdentityRule(name="cooperative: identifies itself (Mode S, Mode 3/A or callsign)", affiliation="neutral", cooperative=True),
    IdentityRule(name="non-cooperative: no identity, pending identification", affiliation="unknown"),
)


class Identifier:
    """Affiliation of each track in a batch by ordered rules (first match wins)."""

    def __init__(self, rules: Sequence[IdentityRule] = DEFAULT_RULES, default: Affiliation = "unknown") -> None:
        self.rules = tuple(rules)
        self.default = default

    def classify(self, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(affiliation per track, index of the rule that decided it, -1 for the default)."""
        n = len(tracks)
        out = np.full(n, self.default, dtype="U7")
        which = np.full(n, -1, dtype=np.int64)
        undecided = np.ones(n, dtype=bool)
        if n == 0:
            return out, which
        addr = tracks["mode_s_address"].astype(np.int64)
        code = tracks["mode_3a"].astype(np.int64)
        callsign = np.char.strip(tracks["callsign"])
        coop = (addr >= 0) | (code >= 0) | (callsign != "")
        for i, rule in enumerate(self.rules):
            m = undecided.copy()
            if rule.mode_s_from is not None:
                m &= addr >= int(rule.mode_s_from, 16)
            if rule.mode_s_to is not None:
                m &= (addr >= 0) & (addr <= int(rule.mode_s_to, 16))
            if rule.mode_3a:
                m &= np.isin(code, [int(c, 8) for c in rule.mode_3a])
            if rule.callsign_prefix:
                hit = np.zeros(n, dtype=bool)
                for prefix in rule.callsign_prefix:
                    hit |= np.char.startswith(callsign, prefix)
                m &= hit
            if rule.sensor:
                hit = np.zeros(n, dtype=bool)
                for sid in rule.sensor:
                    hit |= np.array([sid in s.split(",") for s in tracks["sensors"].tolist()], dtype=bool)
                m &= hit
            if rule.cooperative is not None:
                m &= coop == rule.cooperative
            out[m] = rule.affiliation
            which[m] = i
            undecided &= ~m
            if not undecided.any():
                break
        return out, which


def display_number(track_id: int) -> str:
    """Short track number for labels: the founding partner's code and local id (``JPN-1042``,
    ``JPN-1042.1`` for generation 1); a local id from the partner's second or later source
    group (``group << GROUP_SHIFT | track``, see :mod:`siap.runtime.groups`) reads
    ``JPN-1:62`` (group 1, track 62); the plain number for ids that are not coalition track
    numbers."""
    tid = int(track_id)
    code = tid >> PARTNER_SHIFT
    letters = [(code >> s) & 31 for s in (10, 5, 0)]
    if tid < 0 or code == 0 or any(v > 26 for v in letters) or letters[0] == 0:
        return str(tid)
    name = "".join(chr(ord("A") + v - 1) for v in letters if v)
    generation = (tid >> LOCAL_ID_BITS) & ((1 << (PARTNER_SHIFT - LOCAL_ID_BITS)) - 1)
    local = tid & ((1 << LOCAL_ID_BITS) - 1)
    group, track = local >> GROUP_SHIFT, local & ((1 << GROUP_SHIFT) - 1)
    number = f"{group}:{track}" if group else str(track)
    return f"{name}-{number}" + (f".{generation}" if generation else "")


def _floats(values: np.ndarray, decimals: int) -> list[float | None]:
    """Rounded floats as a list, None where not finite (JSON has no NaN)."""
    v = np.round(np.asarray(values, dtype=np.float64), decimals)
    ok = np.isfinite(v)
    out = v.tolist()
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            out[i] = None
    return out


def encode_tracks(tracks: np.ndarray, identifier: Identifier) -> list[dict]:
    """One JSON-ready dict per row of a track batch (see the module docstring)."""
    n = len(tracks)
    if n == 0:
        return []
    rot = geo.enu_rotation(tracks["lat_deg"], tracks["lon_deg"])  # (N, 3, 3)
    v_enu = np.einsum("nij,nj->ni", rot, tracks["vel_ecef_mps"])
    speed = np.hypot(v_enu[:, 0], v_enu[:, 1])
    course = np.degrees(np.arctan2(v_enu[:, 0], v_enu[:, 1])) % 360.0
    cov = tracks["cov_ecef"]
    diag = np.diagonal(cov, axis1=1, axis2=2)
    pos_sigma = np.sqrt(np.maximum(diag[:, :3].sum(axis=1), 0.0))
    vel_sigma = np.sqrt(np.maximum(diag[:, 3:].sum(axis=1), 0.0))
    affiliation, rule = identifier.classify(tracks)
    fl = np.round(tracks["alt_m"] * _FEET_PER_M / 100.0)
    cols = {
        "id": tracks["track_id"].tolist(),
        "t": _floats(tracks["time_s"], 3),
        "status": tracks["status"].tolist(),
        "lat": _floats(tracks["lat_deg"], 5),
        "lon": _floats(tracks["lon_deg"], 5),
        "alt": _floats(tracks["alt_m"], 1),
        "fl": _floats(fl, 0),
        "ve": _floats(v_enu[:, 0], 2),
        "vn": _floats(v_enu[:, 1], 2),
        "vu": _floats(v_enu[:, 2], 2),
        "spd": _floats(speed, 1),
        "crs": _floats(course, 1),
        "ps": _floats(pos_sigma, 1),
        "vs": _floats(vel_sigma, 2),
        "nu": tracks["n_updates"].tolist(),
        "ms": tracks["mode_s_address"].tolist(),
        "m3a": tracks["mode_3a"].tolist(),
        "cs": np.char.strip(tracks["callsign"]).tolist(),
        "label": tracks["label"].tolist(),
        "sources": tracks["sources"].tolist(),
        "sensors": tracks["sensors"].tolist(),
        "aff": affiliation.tolist(),
        "rule": rule.tolist(),
    }
    rule_names = [r.name for r in identifier.rules]
    out = []
    for i in range(n):
        tid = cols["id"][i]
        ms, m3a, fli = cols["ms"][i], cols["m3a"][i], cols["fl"][i]
        r = cols["rule"][i]
        out.append(
            {
                "id": str(tid),
                "tn": display_number(tid),
                "t": cols["t"][i],
                "status": _STATUS.get(cols["status"][i], "unknown"),
                "lat": cols["lat"][i],
                "lon": cols["lon"][i],
                "alt_m": cols["alt"][i],
                "fl": int(fli) if fli is not None else None,
                "ve_mps": cols["ve"][i],
                "vn_mps": cols["vn"][i],
                "vu_mps": cols["vu"][i],
                "speed_mps": cols["spd"][i],
                "course_deg": cols["crs"][i],
                "pos_sigma_m": cols["ps"][i],
                "vel_sigma_mps": cols["vs"][i],
                "n_updates": cols["nu"][i],
                "mode_s": f"{ms:06X}" if ms >= 0 else None,
                "mode_3a": f"{m3a:04o}" if m3a >= 0 else None,
                "callsign": cols["cs"][i] or None,
                "label": cols["label"][i],
                "sources": cols["sources"][i],
                "sensors": cols["sensors"][i],
                "affiliation": cols["aff"][i],
                "identified_by": rule_names[r] if r >= 0 else "default",
            }
        )
    return out
