"""Source groups: a partner's sensors split by audience, each tracked by its own tracker.

A sensor's audience is the set of partners its label releases to. Each group has its own
tracker, so a track's label follows only from the group's sensors and never changes with what
other sensors saw: what partner P receives is computed from data releasable to P alone
(non-interference, docs/coalition.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from siap.errors import ConfigError
from siap.sharing.labels import combine
from siap.sharing.policy import Policy

__all__ = [
    "GROUP_SHIFT",
    "SourceGroup",
    "audience_rank",
    "combine_label_text",
    "group_index",
    "label_plots",
    "source_groups",
]

GROUP_SHIFT = 32  # local track id = group index << GROUP_SHIFT | tracker track id


@dataclass
class SourceGroup:
    """Sensors of one partner whose data share an audience, tracked together."""

    partner: str
    index: int  # the group's index among its partner's groups (the track id's high bits)
    sensor_ids: tuple[str, ...]
    label: str  # canonical label text carried by every track of this group
    audience: frozenset[str]


def source_groups(policy: Policy, sensor_ids: list[str]) -> list[SourceGroup]:
    """Split the scenario's sensors into source groups (per owner, by audience).

    The group label is the join of the owner's track label and its sensors' labels. Raises
    ConfigError if a scenario sensor is not declared in the policy.
    """
    by_key: dict[tuple[str, frozenset[str]], list[str]] = {}
    for sid in sorted(sensor_ids):
        owner = policy.owner_or_none(sid)
        if owner is None:
            raise ConfigError(
                f"policy {policy.name}: sensors: scenario sensor {sid!r} is not declared under any partner"
            )
        label = policy.sensor_label(sid)
        audience = frozenset(p for p in policy.partners if policy.releasable(label, p))
        by_key.setdefault((owner, audience), []).append(sid)
    groups: list[SourceGroup] = []
    per_partner: Counter[str] = Counter()
    ordered = sorted(by_key.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]), kv[1]))
    for (owner, _audience), sids in ordered:
        label = combine([policy.track_label(owner), *(policy.sensor_label(s) for s in sids)])
        text = str(label)
        real_audience = frozenset(p for p in policy.partners if policy.releasable(text, p))
        groups.append(SourceGroup(owner, per_partner[owner], tuple(sids), text, real_audience))
        per_partner[owner] += 1
    return groups


def label_plots(plots: np.ndarray, policy: Policy) -> np.ndarray:
    """A copy of ``plots`` with each row labelled by its sensor's default label."""
    out = plots.copy()
    codes, uniq = pd.factorize(out["sensor_id"])
    labels = np.array([str(policy.sensor_label(s)) for s in uniq.tolist()], dtype=out.dtype["label"])
    out["label"] = labels[codes] if len(uniq) else out["label"]
    return out


def group_index(plots: np.ndarray, groups: list[SourceGroup]) -> np.ndarray:
    """Index (into ``groups``) of the group of each plot's sensor; -1 for unknown sensors."""
    lookup = {sid: i for i, g in enumerate(groups) for sid in g.sensor_ids}
    codes, uniq = pd.factorize(plots["sensor_id"])
    table = np.array([lookup.get(s, -1) for s in uniq.tolist()], dtype=np.int64)
    return table[codes] if len(uniq) else np.zeros(0, np.int64)


def combine_label_text(labels: list[str]) -> str:
    """The label of a fused track: the join of its contributors' labels (siap.sharing)."""
    return str(combine(labels))


def audience_rank(policy: Policy) -> Callable[[str], int]:
    """Founder rank for the fusers: minus the number of partners a label is releasable to, so
    numbers founded on widely releasable tracks survive merges (higher commonality)."""
    cache: dict[str, int] = {}

    def rank(label: str) -> int:
        if label not in cache:
            try:
                cache[label] = -sum(policy.releasable(label, p) for p in policy.partners)
            except ValueError:
                cache[label] = 0
        return cache[label]

    return rank
