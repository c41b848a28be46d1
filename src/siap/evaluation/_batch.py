"""Turn truth and track record batches into the sorted, de-duplicated arrays the metrics use.

Both batches are put on one time grid: the sorted union of their sample times, rounded to the
millisecond (``time_key_ms``). A time present in one batch and absent in the other is an empty
set on that side. Where one object (one ``truth_id`` or ``track_id``) has several rows at the
same time, the last row (in input order) is kept, as Stone Soup's ``last_timestamp_generator``
does. Rows whose position or velocity is not finite are dropped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from siap.errors import InputError

__all__ = ["ObjectStates", "Grid", "prepare", "time_key_ms"]

log = logging.getLogger(__name__)

_REQUIRED = ("time_s", "pos_ecef_m", "vel_ecef_mps")


def time_key_ms(time_s: np.ndarray) -> np.ndarray:
    """Times (float s) as integer milliseconds, the key on which steps are matched."""
    return np.rint(np.asarray(time_s, dtype=np.float64) * 1000.0).astype(np.int64)


@dataclass(frozen=True)
class ObjectStates:
    """States of one kind of object (truths or tracks), sorted by (object, time), one per pair.

    ``obj`` indexes ``ids`` (the original ``truth_id`` / ``track_id`` values, ascending);
    ``step`` indexes the common :class:`Grid`.
    """

    ids: np.ndarray  # (n_objects,) original identities, ascending
    obj: np.ndarray  # (n,) int64 object index
    step: np.ndarray  # (n,) int64 grid step index
    key_ms: np.ndarray  # (n,) int64 time key
    pos: np.ndarray  # (n, 3) float64
    vel: np.ndarray  # (n, 3) float64
    dropped: int  # rows dropped for non-finite position or velocity

    @property
    def n(self) -> int:
        return len(self.obj)

    @property
    def n_objects(self) -> int:
        return len(self.ids)

    def by_step(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, bounds): ``order`` sorts the rows by step (stable, so by object within a
        step); rows of step ``s`` are ``order[bounds[s]:bounds[s + 1]]``."""
        order = np.argsort(self.step, kind="stable")
        bounds = np.searchsorted(self.step[order], np.arange(n_steps + 1), side="left")
        return order, bounds

    def row_of(self, obj: np.ndarray, step: np.ndarray, n_steps: int) -> np.ndarray:
        """Row index of the state of object ``obj`` at grid step ``step``; -1 where there is none."""
        keys = self.obj * n_steps + self.step  # ascending: rows are sorted by (obj, time)
        want = np.asarray(obj, dtype=np.int64) * n_steps + np.asarray(step, dtype=np.int64)
        pos = np.searchsorted(keys, want)
        pos_c = np.minimum(pos, max(len(keys) - 1, 0))
        found = (
            (pos < len(keys)) & (keys[pos_c] == want) if len(keys) else np.zeros(len(want), bool)
        )
        return np.where(found, pos_c, -1)


@dataclass(frozen=True)
class Grid:
    """The common time grid: sorted unique time keys of truth and tracks together."""

    key_ms: np.ndarray  # (S,) int64

    @property
    def n(self) -> int:
        return len(self.key_ms)

    @property
    def time_s(self) -> np.ndarray:
        return self.key_ms.astype(np.float64) / 1000.0


def _check(batch: np.ndarray, id_field: str, what: str) -> None:
    names = getattr(getattr(batch, "dtype", None), "names", None)
    if names is None:
        raise InputError(
            f"{what}: expected a NumPy structured array (records dtype), got {type(batch).__name__}"
        )
    for field in (*_REQUIRED, id_field):
        if field not in names:
            raise InputError(f"{what}: field {field!r} is missing; expected the siap.records dtype")
    for field in ("pos_ecef_m", "vel_ecef_mps"):
        if batch.dtype[field].shape != (3,):
            raise InputError(
                f"{what}: field {field!r} has shape {batch.dtype[field].shape}; expected (3,)"
            )


def _states(batch: np.ndarray, id_field: str, what: str) -> tuple[np.ndarray, ...]:
    _check(batch, id_field, what)
    t = np.asarray(batch["time_s"], dtype=np.float64)
    pos = np.asarray(batch["pos_ecef_m"], dtype=np.float64).reshape(-1, 3)
    vel = np.asarray(batch["vel_ecef_mps"], dtype=np.float64).reshape(-1, 3)
    ids = np.asarray(batch[id_field]).astype(np.int64)
    ok = np.isfinite(t) & np.isfinite(pos).all(axis=1) & np.isfinite(vel).all(axis=1)
    dropped = int(len(ok) - ok.sum())
    if dropped:
        log.warning("%s: dropped %d rows with non-finite time, position or velocity", what, dropped)
    return time_key_ms(t[ok]), ids[ok], pos[ok], vel[ok], dropped


def _dedupe(key, ids, pos, vel, dropped, grid_keys) -> ObjectStates:
    uniq_ids, obj = np.unique(ids, return_inverse=True)
    obj = obj.astype(np.int64).reshape(-1)
    n = len(obj)
    # sort by (object, time), stable so that the last input row of a duplicate comes last
    order = np.lexsort((np.arange(n), key, obj))
    obj, key, pos, vel = obj[order], key[order], pos[order], vel[order]
    if n:
        last = np.ones(n, dtype=bool)
        last[:-1] = (obj[1:] != obj[:-1]) | (key[1:] != key[:-1])
        obj, key, pos, vel = obj[last], key[last], pos[last], vel[last]
    step = np.searchsorted(grid_keys, key).astype(np.int64)
    return ObjectStates(uniq_ids, obj, step, key, pos, vel, dropped)


def prepare(truth: np.ndarray, tracks: np.ndarray) -> tuple[Grid, ObjectStates, ObjectStates]:
    """Validate both batches, put them on the common grid and de-duplicate (object, time)."""
    tk, tid, tpos, tvel, tdrop = _states(truth, "truth_id", "truth")
    kk, kid, kpos, kvel, kdrop = _states(tracks, "track_id", "tracks")
    grid = Grid(np.unique(np.concatenate([tk, kk])))
    return (
        grid,
        _dedupe(tk, tid, tpos, tvel, tdrop, grid.key_ms),
        _dedupe(kk, kid, kpos, kvel, kdrop, grid.key_ms),
    )
