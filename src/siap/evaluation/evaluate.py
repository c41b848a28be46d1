"""``evaluate``: every metric of a track picture against truth, in one call.

Defaults are for air surveillance (see docs/metrics.md for the reasoning): GOSPA and OSPA with
cut-off ``c = 5 km`` and ``p = 1`` (so every part is in metres), ``alpha = 2``; SIAP track-to-truth
association within 5 km, confirmed after 3 consecutive steps and ended after 2 misses (Stone
Soup's ``TrackToTruth`` defaults).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from siap.errors import ConfigError, InputError
from siap.records import TrackStatus

from ._batch import _check, prepare, time_key_ms
from .gospa import GospaOverTime, OspaOverTime, _gospa_prepared, _ospa_prepared
from .siap_metrics import SiapResult, _associate_prepared, _siap_prepared

__all__ = ["Evaluation", "evaluate", "DEFAULTS"]

DEFAULTS = {
    "gospa_c_m": 5000.0,
    "gospa_p": 1.0,
    "gospa_alpha": 2.0,
    "ospa_c_m": 5000.0,
    "ospa_p": 1.0,
    "association_threshold_m": 5000.0,
    "consec_pairs_confirm": 3,
    "consec_misses_end": 2,
}


@dataclass
class Evaluation:
    """The result of :func:`evaluate`: GOSPA, OSPA and SIAP metrics per step and over the run."""

    gospa: GospaOverTime
    ospa: OspaOverTime
    siap: SiapResult
    parameters: dict
    counts: dict
    _per_time: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def per_time(self) -> pd.DataFrame:
        """One row per step of the common time grid (index ``time_s``, Unix s), one column per
        metric. GOSPA parts are in m^p (m for the default p = 1)."""
        if self._per_time is None:
            g, s = self.gospa, self.siap
            df = pd.DataFrame(
                {
                    "gospa_m": g.distance,
                    "gospa_localisation": g.localisation,
                    "gospa_missed": g.missed,
                    "gospa_false": g.false,
                    "ospa_m": self.ospa.distance,
                    "n_truths": s.n_truths,
                    "n_tracks": s.n_tracks,
                    "n_missed": g.n_missed,
                    "n_false": g.n_false,
                    "n_assigned": g.n_assigned,
                    "n_associated_truths": s.n_associated_truths,
                    "n_associated_tracks": s.n_associated_tracks,
                    "completeness": s.completeness,
                    "ambiguity": s.ambiguity,
                    "spuriousness": s.spuriousness,
                    "position_accuracy_m": s.position_accuracy_m,
                    "velocity_accuracy_mps": s.velocity_accuracy_mps,
                },
                index=pd.Index(g.time_s, name="time_s"),
            )
            self._per_time = df
        return self._per_time

    def summary(self) -> dict:
        """Run-level numbers as plain JSON-serialisable ints and floats."""
        g = self.gospa.means()
        out: dict = dict(self.counts)
        out.update(
            {
                "gospa_mean_m": g["distance"],
                "gospa_rms_m": self.gospa.rms,
                "gospa_localisation_mean": g["localisation"],
                "gospa_missed_mean": g["missed"],
                "gospa_false_mean": g["false"],
                "gospa_n_missed_mean": g["n_missed"],
                "gospa_n_false_mean": g["n_false"],
                "ospa_mean_m": self.ospa.mean,
            }
        )
        out.update({f"siap_{k}": v for k, v in self.siap.run_metrics().items()})
        out.update(self.parameters)
        return {k: _plain(v) for k, v in out.items()}

    def to_json(self, path: str | Path) -> Path:
        """Write the summary and the per-step table to ``path`` as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pt = self.per_time
        doc = {
            "summary": self.summary(),
            "per_time": {
                "time_s": [float(t) for t in pt.index],
                **{c: [_plain(v) for v in pt[c].tolist()] for c in pt.columns},
            },
        }
        path.write_text(json.dumps(doc, indent=1, allow_nan=False))
        return path


def _plain(v):
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def evaluate(
    truth: np.ndarray,
    tracks: np.ndarray,
    *,
    gospa_c_m: float = DEFAULTS["gospa_c_m"],
    gospa_p: float = DEFAULTS["gospa_p"],
    gospa_alpha: float = DEFAULTS["gospa_alpha"],
    ospa_c_m: float | None = None,
    ospa_p: float = DEFAULTS["ospa_p"],
    association_threshold_m: float = DEFAULTS["association_threshold_m"],
    consec_pairs_confirm: int = DEFAULTS["consec_pairs_confirm"],
    consec_misses_end: int = DEFAULTS["consec_misses_end"],
    exclude_statuses: Collection[int] | None = (TrackStatus.DELETED,),
    times: str | np.ndarray = "union",
) -> Evaluation:
    """Evaluate a track batch (``records.TRACK_DTYPE``) against a truth batch
    (``records.TRUTH_DTYPE``): GOSPA, OSPA and SIAP metrics on the common time grid (times
    matched to the millisecond; 3D ECEF distances).

    ``ospa_c_m`` defaults to ``gospa_c_m``. Track rows whose ``status`` is in
    ``exclude_statuses`` (default: deleted tracks) are left out; ``None`` keeps every row.

    ``times`` chooses the steps: ``"union"`` (default) every time present in either batch, a
    time missing on one side being an empty set there; ``"tracks"`` only the times at which
    the track batch has rows (use it when tracks are snapshots taken less often than truth is
    sampled: otherwise every truth-only time counts all truths as missed); ``"truth"`` only the
    truth times; or an array of times (s). Rows at other times are left out and counted.
    """
    _check(truth, "truth_id", "truth")
    _check(tracks, "track_id", "tracks")
    truth, tracks, outside_truth, outside_tracks = _restrict_times(truth, tracks, times)
    if exclude_statuses:
        if "status" not in tracks.dtype.names:
            raise InputError(
                "tracks: field 'status' is missing; expected the siap.records track dtype"
            )
        keep = ~np.isin(tracks["status"], np.asarray(list(exclude_statuses), dtype=np.int64))
        excluded = int(len(tracks) - keep.sum())
        tracks = tracks[keep]
    else:
        excluded = 0
    if ospa_c_m is None:
        ospa_c_m = gospa_c_m
    grid, t, k = prepare(truth, tracks)
    g = _gospa_prepared(grid, t, k, gospa_c_m, gospa_p, gospa_alpha)
    o = _ospa_prepared(grid, t, k, ospa_c_m, ospa_p)
    assoc = _associate_prepared(
        grid, t, k, association_threshold_m, consec_pairs_confirm, consec_misses_end
    )
    s = _siap_prepared(grid, t, k, assoc)
    counts = {
        "n_steps": grid.n,
        "n_truth_objects": t.n_objects,
        "n_track_objects": k.n_objects,
        "n_truth_states": t.n,
        "n_track_states": k.n,
        "n_associations": len(assoc),
        "dropped_truth_rows": t.dropped,
        "dropped_track_rows": k.dropped,
        "excluded_track_rows": excluded,
        "truth_rows_outside_times": outside_truth,
        "track_rows_outside_times": outside_tracks,
    }
    parameters = {
        "gospa_c_m": float(gospa_c_m),
        "gospa_p": float(gospa_p),
        "gospa_alpha": float(gospa_alpha),
        "ospa_c_m": float(ospa_c_m),
        "ospa_p": float(ospa_p),
        "association_threshold_m": float(association_threshold_m),
        "consec_pairs_confirm": int(consec_pairs_confirm),
        "consec_misses_end": int(consec_misses_end),
    }
    return Evaluation(g, o, s, parameters, counts)


def _restrict_times(
    truth: np.ndarray, tracks: np.ndarray, times
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Keep the rows at the chosen evaluation times (see :func:`evaluate`)."""
    if isinstance(times, str):
        if times == "union":
            return truth, tracks, 0, 0
        if times == "tracks":
            keys = np.unique(time_key_ms(tracks["time_s"]))
        elif times == "truth":
            keys = np.unique(time_key_ms(truth["time_s"]))
        else:
            raise ConfigError(
                f"evaluate: times: expected 'union', 'tracks', 'truth' or an array of times, got {times!r}"
            )
    else:
        keys = np.unique(time_key_ms(np.asarray(times, dtype=np.float64).reshape(-1)))
    keep_t = np.isin(time_key_ms(truth["time_s"]), keys)
    keep_k = np.isin(time_key_ms(tracks["time_s"]), keys)
    return truth[keep_t], tracks[keep_k], int((~keep_t).sum()), int((~keep_k).sum())
