"""Evaluation of a track picture against truth: GOSPA, OSPA and the SIAP metrics.

* :func:`gospa`, :func:`ospa`: one time step, positions as (M, d) and (N, d) arrays.
* :func:`gospa_over_time`, :func:`ospa_over_time`: truth and track record batches.
* :func:`associate_tracks_to_truth`, :func:`siap_metrics`: SIAP attribute metrics.
* :func:`evaluate`: all of them with air-surveillance defaults; what ``siap.evaluate`` is.

Definitions, units and defaults: docs/metrics.md.
"""

from __future__ import annotations

from .evaluate import DEFAULTS, Evaluation, evaluate
from .gospa import (
    GospaOverTime,
    GospaResult,
    OspaOverTime,
    gospa,
    gospa_over_time,
    ospa,
    ospa_over_time,
)
from .siap_metrics import Associations, SiapResult, associate_tracks_to_truth, siap_metrics

__all__ = [
    "DEFAULTS",
    "Evaluation",
    "evaluate",
    "GospaResult",
    "GospaOverTime",
    "OspaOverTime",
    "gospa",
    "ospa",
    "gospa_over_time",
    "ospa_over_time",
    "Associations",
    "SiapResult",
    "associate_tracks_to_truth",
    "siap_metrics",
]
