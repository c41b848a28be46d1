"""Releasing a batch to a partner: keep only the rows that partner may see, and log it.

The decision is per row, by the row's own ``label`` (see :meth:`Policy.releasable_mask`);
unlabelled or malformed labels are withheld (fail closed). Raw plots are also withheld when
the policy forbids sharing the plots of their sensor (``share_plots: false``).
"""

from __future__ import annotations

import time

import numpy as np

from siap.records import PLOT_DTYPE
from siap.sharing.audit import AuditLog
from siap.sharing.policy import Policy

__all__ = ["release", "release_mask"]


def release_mask(batch: np.ndarray, partner: str, policy: Policy) -> np.ndarray:
    """Boolean mask of the rows of ``batch`` that may be released to ``partner``."""
    mask = policy.releasable_mask(batch["label"], partner)
    if batch.dtype == PLOT_DTYPE:
        # Raw plots leave their owner only where the policy allows it (centralised mode).
        mask &= policy.shareable_plots_mask(batch["sensor_id"]) | (batch["partner"] == partner)
    return mask


def release(
    batch: np.ndarray,
    partner: str,
    policy: Policy,
    *,
    audit: AuditLog | None = None,
    time_s: float | None = None,
) -> np.ndarray:
    """The rows of ``batch`` releasable to ``partner`` (a copy), logged to ``audit`` if given.

    The audit entry (kind ``release``) records the partner, the record kind, the ids released
    under each label (``track_id`` for tracks, ``plot_id`` for plots), the number withheld and
    the batch's time span. KeyError if ``partner`` is not in the policy.
    """
    mask = release_mask(batch, partner, policy)
    out = batch[mask]
    if audit is not None:
        id_field = "track_id" if "track_id" in (batch.dtype.names or ()) else "plot_id"
        kind = "tracks" if id_field == "track_id" else "plots"
        released: dict[str, list[int]] = {}
        if len(out):
            uniq, inverse = np.unique(out["label"], return_inverse=True)
            for i, text in enumerate(uniq.tolist()):
                released[text] = out[id_field][inverse == i].tolist()
        times = batch["time_s"]
        finite = times[np.isfinite(times)]
        audit.append(
            "release",
            time_s=time.time() if time_s is None else time_s,
            partner=partner,
            records=kind,
            released=released,
            n_released=int(len(out)),
            n_withheld=int(len(batch) - len(out)),
            data_time_s=[float(finite.min()), float(finite.max())] if finite.size else None,
        )
    return out
