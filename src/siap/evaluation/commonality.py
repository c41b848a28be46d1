"""Commonality: do two partners hold the same track number for the same object?

Definition (docs/metrics.md, "Commonality"): at each evaluation time, each partner's picture
is assigned to truth by GOSPA's optimal assignment with cut-off ``c`` (a truth object counts as
held by the partner when a track of that partner is assigned to it within ``c``). For partners
A and B, the *common* (object, time) pairs are those held by both: both partners are entitled
to see the object (their pictures are built only from data releasable to them) and both do.
Commonality(A, B) is the fraction of common pairs in which A's and B's track numbers are equal.
It is 1 for identical pictures and undefined (NaN) when there are no common pairs.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .gospa import gospa

__all__ = ["held_track_numbers", "commonality"]


def _by_time(batch: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(batch["time_s"], kind="stable")
    b = batch[order]
    key = np.round(b["time_s"], 3)
    lo = np.searchsorted(key, np.round(times, 3), side="left")
    hi = np.searchsorted(key, np.round(times, 3), side="right")
    return [b[i:j] for i, j in zip(lo, hi, strict=True)]


def held_track_numbers(
    truth: np.ndarray, tracks: np.ndarray, times: np.ndarray, c_m: float
) -> dict[tuple[float, int], int]:
    """{(time, truth_id): track_id} for every truth object a picture holds (assigned within c)."""
    held: dict[tuple[float, int], int] = {}
    for t, tr, tk in zip(times, _by_time(truth, times), _by_time(tracks, times), strict=True):
        if len(tr) == 0 or len(tk) == 0:
            continue
        res = gospa(tr["pos_ecef_m"], tk["pos_ecef_m"], c=c_m, p=1.0, alpha=2.0)
        for i, j in res.assignment:
            held[(round(float(t), 3), int(tr["truth_id"][i]))] = int(tk["track_id"][j])
    return held


def commonality(
    truth: np.ndarray, pictures: dict[str, np.ndarray], *, c_m: float = 5000.0
) -> dict[str, dict[str, float | int]]:
    """Commonality for every pair of partners: ``{"A/B": {"commonality": f, "common": n}}``."""
    times = np.unique(np.round(truth["time_s"], 3))
    held = {p: held_track_numbers(truth, pic, times, c_m) for p, pic in pictures.items()}
    out: dict[str, dict[str, float | int]] = {}
    for a, b in combinations(sorted(pictures), 2):
        common = held[a].keys() & held[b].keys()
        same = sum(held[a][k] == held[b][k] for k in common)
        out[f"{a}/{b}"] = {
            "commonality": same / len(common) if common else float("nan"),
            "common": len(common),
        }
    return out
