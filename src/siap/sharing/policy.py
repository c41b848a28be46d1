"""Releasability policy: who the partners are, what they may see, who owns which sensor.

A policy file is YAML, validated by pydantic (unknown keys are errors)::

    policy: pacific                 # name of this policy
    label_policy: SIAP              # policy identifier every label must carry
    partners:
      JPN:                          # ISO 3166-1 alpha-3
        clearance: SECRET           # highest classification the partner may receive
        authorisations: []          # named restrictive categories it may receive (e.g. ORCON)
        track_label: "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"   # default label of its tracks
        sensors:
          jpn-radar-1:              # sensor id (<= 16 characters, unique across partners)
            label: "SIAP//CONFIDENTIAL//REL TO JPN, USA"          # default label of its data
            share_plots: false      # raw plots may leave the owner (centralised mode)?

The label a track must carry at least is :meth:`Policy.required_track_label`: the join of the
producing partner's ``track_label`` and the labels of the sources named in the track's
``sources`` (data derived from a sensor is at least as restricted as the sensor's data): a
sensor id contributes its sensor label, ``PARTNER:TRACK_ID`` (a fused coalition track's
contributor) that partner's ``track_label``.

A bad file raises :class:`siap.errors.ConfigError` with one line ``file: field: expected ...
(got ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from siap.errors import ConfigError
from siap.sharing.labels import (
    NATIONS,
    Classification,
    Label,
    combine,
    parse,
    parse_cached,
    releasable_to,
)

__all__ = ["Policy", "PartnerPolicy", "SensorPolicy", "load_policy", "builtin_policies", "split_sources"]

SENSOR_ID_MAX = 16  # records' sensor_id is numpy "U16"


def _label_field(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError(f"a label string like 'SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA' (got {v!r})")
    try:
        return parse(v).format()
    except ValueError as e:
        raise ValueError(f"a valid label ({e})") from None


class SensorPolicy(BaseModel):
    """Policy for one sensor: the default label of its data and whether raw plots may be shared."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    share_plots: bool = False

    _v_label = field_validator("label", mode="before")(_label_field)


class PartnerPolicy(BaseModel):
    """Policy for one partner nation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    clearance: str
    authorisations: tuple[str, ...] = ()
    track_label: str
    sensors: dict[Annotated[str, Field(min_length=1, max_length=SENSOR_ID_MAX)], SensorPolicy] = {}

    _v_track_label = field_validator("track_label", mode="before")(_label_field)

    @field_validator("clearance")
    @classmethod
    def _v_clearance(cls, v: str) -> str:
        if v not in {c.text for c in Classification}:
            raise ValueError("a classification: one of " + ", ".join(c.text for c in Classification))
        return v


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    policy: str
    label_policy: str = "SIAP"
    partners: dict[str, PartnerPolicy]

    @field_validator("partners")
    @classmethod
    def _v_partners(cls, v: dict[str, PartnerPolicy]) -> dict[str, PartnerPolicy]:
        if not v:
            raise ValueError("at least one partner")
        for code in v:
            if code not in NATIONS:
                raise ValueError(f"ISO 3166-1 alpha-3 partner codes such as JPN (got {code!r})")
        return v

    @model_validator(mode="after")
    def _v_consistent(self) -> _PolicyFile:
        seen: dict[str, str] = {}
        for code, p in self.partners.items():
            labels = [("track_label", p.track_label)] + [
                (f"sensors.{sid}.label", s.label) for sid, s in p.sensors.items()
            ]
            for where, text in labels:
                lab = parse(text)
                if lab.policy != self.label_policy:
                    raise ValueError(
                        f"partners.{code}.{where}: policy identifier {self.label_policy} (got {lab.policy})"
                    )
                if not releasable_to(lab, code, p.clearance, p.authorisations):
                    raise ValueError(
                        f"partners.{code}.{where}: a label releasable to its owner {code} "
                        f"(got {text!r})"
                    )
            for sid in p.sensors:
                if sid in seen:
                    raise ValueError(
                        f"partners.{code}.sensors.{sid}: a sensor id unique across partners "
                        f"(also owned by {seen[sid]})"
                    )
                seen[sid] = code
        return self


def _error_line(source: str, err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
    msg = e["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if e["type"] == "extra_forbidden":
        return f"{source}: {loc}: expected no such field (got unknown key)"
    if e["type"] == "missing":
        return f"{source}: {loc}: expected a value (got nothing: field is required)"
    for prefix, repl in (("Input should be ", ""), ("String should have ", "a string with "), ("Dictionary should have ", "a mapping with ")):
        if msg.startswith(prefix):
            msg = repl + msg[len(prefix):]
    if not msg.startswith("partners."):
        got = e.get("input")
        got_s = repr(got) if not isinstance(got, dict | list) else type(got).__name__
        if "(got" in msg or got_s in msg:
            return f"{source}: {loc}: expected {msg}"
        return f"{source}: {loc}: expected {msg} (got {got_s})"
    field_path, _, rest = msg.partition(": ")
    return f"{source}: {field_path}: expected {rest}"


class Policy:
    """A validated releasability policy. Build with :func:`load_policy` or :meth:`from_mapping`."""

    def __init__(self, spec: _PolicyFile, source: str = "<policy>") -> None:
        self._spec = spec
        self.source = source
        self.name: str = spec.policy
        self.label_policy: str = spec.label_policy
        self._owner: dict[str, str] = {}
        self._sensor_label: dict[str, Label] = {}
        self._share_plots: dict[str, bool] = {}
        for code, p in spec.partners.items():
            for sid, s in p.sensors.items():
                self._owner[sid] = code
                self._sensor_label[sid] = parse(s.label)
                self._share_plots[sid] = s.share_plots
        self._track_label = {code: parse(p.track_label) for code, p in spec.partners.items()}
        self._mask_cache: dict[tuple[str, str], bool] = {}

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, object], source: str = "<policy>") -> Policy:
        """Validate a parsed YAML mapping; ConfigError (one line) when it is bad."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: (top level): expected a mapping (got {type(data).__name__})")
        try:
            spec = _PolicyFile.model_validate(dict(data))
        except ValidationError as e:
            raise ConfigError(_error_line(source, e)) from None
        return cls(spec, source)

    # --- queries ------------------------------------------------------------------------
    @property
    def partners(self) -> tuple[str, ...]:
        """Partner codes, sorted."""
        return tuple(sorted(self._spec.partners))

    @cached_property
    def sensors(self) -> tuple[str, ...]:
        """All sensor ids the policy knows, sorted."""
        return tuple(sorted(self._owner))

    def partner(self, partner: str) -> PartnerPolicy:
        try:
            return self._spec.partners[partner]
        except KeyError:
            raise KeyError(f"partner {partner!r} is not in policy {self.name!r} ({', '.join(self.partners)})") from None

    def clearance(self, partner: str) -> Classification:
        return Classification.from_text(self.partner(partner).clearance)

    def owner(self, sensor_id: str) -> str:
        """The partner owning ``sensor_id``; KeyError if the policy does not know the sensor."""
        try:
            return self._owner[sensor_id]
        except KeyError:
            raise KeyError(f"sensor {sensor_id!r} is not in policy {self.name!r}") from None

    def owner_or_none(self, sensor_id: str) -> str | None:
        """The partner owning ``sensor_id``, or None if the policy does not know the sensor."""
        return self._owner.get(sensor_id)

    def check_scenario_sensors(self, owners: dict[str, str], where: str | None = None) -> None:
        """ConfigError unless every sensor of a scenario (``owners``: sensor id -> the partner
        the scenario gives it) is declared in this policy under the same partner. A policy that
        gives a sensor to another owner than the scenario does is an error, never a silent
        reassignment (it would change who may release that sensor's data)."""
        name = where or f"policy {self.name}"
        for sid, partner in sorted(owners.items()):
            owner = self.owner_or_none(sid)
            if owner is None:
                raise ConfigError(f"{name}: partners.*.sensors.{sid}: expected the scenario's sensor {sid} to be declared")
            if owner != partner:
                raise ConfigError(
                    f"{name}: partners.{owner}.sensors.{sid}: expected under {partner}, the partner the scenario gives it "
                    f"(the policy gives it to {owner})"
                )

    def sensor_label(self, sensor_id: str) -> Label:
        """Default label of the data of ``sensor_id`` (KeyError if unknown)."""
        self.owner(sensor_id)
        return self._sensor_label[sensor_id]

    def track_label(self, partner: str) -> Label:
        """Default label of the tracks produced by ``partner``'s node."""
        self.partner(partner)
        return self._track_label[partner]

    def share_plots(self, sensor_id: str) -> bool:
        """Whether raw plots of ``sensor_id`` may leave its owner (centralised mode)."""
        self.owner(sensor_id)
        return self._share_plots[sensor_id]

    def source_label(self, token: str) -> tuple[str, Label]:
        """(owning partner, label) of one ``sources`` token of a track.

        A token is a sensor id (the tracker's provenance) or ``PARTNER:TRACK_ID`` (a fused
        coalition track's contributor, whose lower-bound label is that partner's
        ``track_label``). KeyError for anything else.
        """
        if token in self._owner:
            return self._owner[token], self._sensor_label[token]
        head, sep, tail = token.partition(":")
        if sep and tail.lstrip("-").isdigit() and head in self._track_label:
            return head, self._track_label[head]
        raise KeyError(f"track source {token!r} is neither a sensor of policy {self.name!r} nor PARTNER:TRACK_ID")

    def required_track_label(self, partner: str, sources: Iterable[str] | str = ()) -> Label:
        """Least label a track must carry: join of ``partner``'s track label and its sources'.

        ``sources`` is a list of tokens or the track's ``sources`` text (see
        :func:`split_sources`). ``partner == ""`` (a coalition track) uses the sources only;
        KeyError on an unknown partner or source.
        """
        tokens = split_sources(sources) if isinstance(sources, str) else list(sources)
        labels = [self.track_label(partner)] if partner else []
        labels += [self.source_label(s)[1] for s in tokens]
        if not labels:
            raise KeyError("a coalition track with no sources has no default label")
        return combine(labels)

    def releasable(self, label: Label | str, partner: str) -> bool:
        """Whether one label may be released to ``partner`` under this policy."""
        p = self.partner(partner)
        lab = label if isinstance(label, Label) else parse_cached(label)
        if lab.policy != self.label_policy:
            return False
        return releasable_to(lab, partner, p.clearance, p.authorisations)

    def releasable_mask(self, labels: np.ndarray, partner: str) -> np.ndarray:
        """Boolean mask over a batch's ``label`` column: True where releasable to ``partner``.

        Vectorised: each distinct label is parsed and decided once (and cached). Empty or
        malformed labels are not releasable (fail closed). KeyError for an unknown partner.
        """
        self.partner(partner)
        labels = np.asarray(labels)
        if labels.size == 0:
            return np.zeros(labels.shape, dtype=bool)
        # hash-based factorisation: ~10x faster than np.unique's sort on U64 strings
        inverse, uniq = pd.factorize(labels.ravel())
        ok = np.empty(len(uniq), dtype=bool)
        for i, text in enumerate(uniq.tolist()):
            key = (text, partner)
            hit = self._mask_cache.get(key)
            if hit is None:
                try:
                    hit = self.releasable(text, partner)
                except ValueError:
                    hit = False
                if len(self._mask_cache) < 65536:
                    self._mask_cache[key] = hit
            ok[i] = hit
        return ok[inverse.reshape(labels.shape)]

    def shareable_plots_mask(self, sensor_ids: np.ndarray) -> np.ndarray:
        """Mask over a plot batch's ``sensor_id`` column: True where raw plots may be shared."""
        sensor_ids = np.asarray(sensor_ids)
        if sensor_ids.size == 0:
            return np.zeros(sensor_ids.shape, dtype=bool)
        uniq, inverse = np.unique(sensor_ids, return_inverse=True)
        ok = np.array([self._share_plots.get(s, False) for s in uniq.tolist()], dtype=bool)
        return ok[inverse.reshape(sensor_ids.shape)]

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, partners={self.partners}, sensors={len(self._owner)})"


def split_sources(text: str) -> list[str]:
    """Tokens of a track's ``sources`` text: ``"A,B"``, ``"JPN:12,USA:7"``.

    The truncation markers the producers append when the list does not fit 64 characters
    (``",..."`` from the tracker, a trailing ``"+"`` from fusion) are dropped: the contributors
    they stand for are unknown, so checks against the policy use the ones that are listed.
    """
    tokens = [t.strip() for t in text.split(",")]
    if tokens and tokens[-1].endswith("+"):
        tokens[-1] = tokens[-1][:-1]
    return [t for t in tokens if t and t != "..."]


def builtin_policies() -> tuple[str, ...]:
    """Names of the built-in policies (``src/siap/sharing/builtin/*.yaml``)."""
    root = resources.files("siap.sharing") / "builtin"
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml")))


def load_policy(path_or_name: str | Path) -> Policy:
    """Load a policy file, or a built-in policy by name (e.g. ``"pacific"``).

    ConfigError (one line: file, field, expectation) if the file is missing or invalid.
    """
    text_path = str(path_or_name)
    is_name = "/" not in text_path and not text_path.endswith((".yaml", ".yml")) and not Path(text_path).is_file()
    if isinstance(path_or_name, str) and is_name:
        if text_path not in builtin_policies():
            raise ConfigError(
                f"{text_path}: (policy): expected a policy file path or a built-in policy name "
                f"({', '.join(builtin_policies())})"
            )
        res = resources.files("siap.sharing") / "builtin" / f"{text_path}.yaml"
        source, raw = f"builtin:{text_path}", res.read_text(encoding="utf-8")
    else:
        p = Path(path_or_name)
        try:
            raw = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ConfigError(f"{p}: (file): expected a readable policy file (got {why})") from None
        source = str(p)
    try:
        data = yaml.safe_load(raw)
    except RecursionError:
        raise ConfigError(f"{source}: (top level): expected a YAML document of sensible depth (nested too deep)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        raise ConfigError(f"{source}: {where}: expected valid YAML (got {getattr(e, 'problem', e)})") from None
    return Policy.from_mapping(data if data is not None else {}, source)
