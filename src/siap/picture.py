"""What a user holds: a partner's :class:`Picture` at one time, and one track over time,
:class:`TrackHistory`.

Both wrap a track batch (:data:`siap.records.TRACK_DTYPE`) and hand it back as pandas or
Parquet when asked, in the spirit of ``traffic``'s ``Flight`` / ``Traffic``::

    picture = result.picture("JPN", at_s=t)        # the tracks JPN holds at t
    picture.confirmed().to_pandas()
    picture.history(track_id).to_parquet("track.parquet")

The runtime hands pictures to *sinks*: anything with ``on_picture(picture)``
(:class:`PictureSink`). A picture is immutable once made: sinks may keep it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from siap import records

__all__ = ["Picture", "TrackHistory", "PictureSink", "tracks_to_pandas"]

# The kinds of picture a partner holds (see siap.coalition): its coalition picture (own local
# tracks fused with what it received), the picture of its own sensors alone, and a centralised
# tracker's picture over every plot it may receive (for comparison).
PICTURE_KINDS = ("coalition", "own", "centralised", "network")


def tracks_to_pandas(tracks: np.ndarray) -> pd.DataFrame:
    """A track batch as a DataFrame: one row per track, vector fields split into columns
    (``x_ecef_m``, ``vx_ecef_mps``, ...), the covariance as position and velocity sigmas (m,
    m/s), ``status`` by name and ``time`` as a UTC timestamp beside ``time_s``."""
    t = np.asarray(tracks)
    pos, vel, cov = t["pos_ecef_m"], t["vel_ecef_mps"], t["cov_ecef"]
    diag = np.diagonal(cov, axis1=1, axis2=2) if len(t) else np.zeros((0, 6))
    frame = pd.DataFrame(
        {
            "time_s": t["time_s"],
            "time": pd.to_datetime(t["time_s"], unit="s", utc=True),
            "track_id": t["track_id"],
            "status": pd.Categorical.from_codes(
                t["status"].astype(np.int64), [s.name.lower() for s in records.TrackStatus]
            ),
            "lat_deg": t["lat_deg"],
            "lon_deg": t["lon_deg"],
            "alt_m": t["alt_m"],
            "x_ecef_m": pos[:, 0],
            "y_ecef_m": pos[:, 1],
            "z_ecef_m": pos[:, 2],
            "vx_ecef_mps": vel[:, 0],
            "vy_ecef_mps": vel[:, 1],
            "vz_ecef_mps": vel[:, 2],
            "speed_mps": np.linalg.norm(vel, axis=1) if len(t) else np.zeros(0),
            "pos_sigma_m": np.sqrt(np.maximum(diag[:, :3].sum(axis=1), 0.0)),
            "vel_sigma_mps": np.sqrt(np.maximum(diag[:, 3:].sum(axis=1), 0.0)),
            "n_updates": t["n_updates"],
            "mode_s_address": t["mode_s_address"],
            "mode_3a": t["mode_3a"],
            "callsign": t["callsign"],
            "partner": t["partner"],
            "label": t["label"],
            "sources": t["sources"],
            "sensors": t["sensors"],
        }
    )
    return frame


@dataclass(frozen=True)
class Picture:
    """The tracks ``partner`` holds at ``time_s`` (one row per track, TRACK_DTYPE).

    ``kind`` says which picture: ``coalition`` (the partner's fused picture), ``own`` (its own
    sensors alone), ``centralised`` (one tracker over every plot it may receive) or
    ``network`` (a single tracker over every sensor, no coalition).
    """

    partner: str
    time_s: float
    tracks: np.ndarray
    kind: str = "coalition"

    def __post_init__(self) -> None:
        if self.tracks.dtype != records.TRACK_DTYPE:
            raise TypeError(f"Picture.tracks must be a TRACK_DTYPE batch, not {self.tracks.dtype}")
        if self.kind not in PICTURE_KINDS:
            raise ValueError(f"Picture.kind must be one of {PICTURE_KINDS}, not {self.kind!r}")
        self.tracks.flags.writeable = False

    def __len__(self) -> int:
        return len(self.tracks)

    def __repr__(self) -> str:
        return (
            f"Picture({self.partner or 'network'} {self.kind}, "
            f"{pd.Timestamp(self.time_s, unit='s', tz='UTC'):%Y-%m-%d %H:%M:%S}Z, "
            f"{len(self)} tracks)"
        )

    @property
    def track_ids(self) -> np.ndarray:
        return self.tracks["track_id"]

    def track(self, track_id: int) -> np.void | None:
        """The row of one track, or None if the picture does not hold it."""
        hit = np.flatnonzero(self.tracks["track_id"] == track_id)
        return self.tracks[hit[0]] if len(hit) else None

    def where(self, mask: np.ndarray) -> Picture:
        """The same picture restricted to the rows where ``mask`` is true."""
        return Picture(self.partner, self.time_s, self.tracks[np.asarray(mask, bool)], self.kind)

    def confirmed(self) -> Picture:
        """Only the tracks that are confirmed or coasting (what a display shows)."""
        status = self.tracks["status"]
        keep = (status == records.TrackStatus.CONFIRMED) | (status == records.TrackStatus.COASTING)
        return self.where(keep)

    def releasable_to(self, partner: str, policy) -> Picture:
        """The rows of this picture that ``policy`` (siap.sharing.Policy) releases to
        ``partner``, by each row's own label."""
        return self.where(policy.releasable_mask(self.tracks["label"], partner))

    def with_mode_s(self, address: int) -> Picture:
        """The tracks carrying the 24-bit Mode S address ``address``."""
        return self.where(self.tracks["mode_s_address"] == int(address))

    def to_pandas(self) -> pd.DataFrame:
        return tracks_to_pandas(self.tracks)

    def to_parquet(self, path: str | Path) -> None:
        records.write_parquet(
            self.tracks,
            path,
            metadata={"partner": self.partner, "kind": self.kind, "time_s": repr(self.time_s)},
        )


@dataclass(frozen=True)
class TrackHistory:
    """One track over time: its rows (TRACK_DTYPE) in time order, as held by ``partner``."""

    partner: str
    track_id: int
    rows: np.ndarray

    def __post_init__(self) -> None:
        if self.rows.dtype != records.TRACK_DTYPE:
            raise TypeError(f"TrackHistory.rows must be a TRACK_DTYPE batch, not {self.rows.dtype}")
        if len(self.rows) and np.any(self.rows["track_id"] != self.track_id):
            raise ValueError("TrackHistory rows must all carry its track_id")
        if len(self.rows) > 1 and np.any(np.diff(self.rows["time_s"]) < 0):
            raise ValueError("TrackHistory rows must be in time order")
        self.rows.flags.writeable = False

    @classmethod
    def from_tracks(cls, tracks: np.ndarray, track_id: int, partner: str = "") -> TrackHistory:
        """The history of ``track_id`` in a batch of pictures over time (any order)."""
        rows = tracks[tracks["track_id"] == track_id]
        rows = rows[np.argsort(rows["time_s"], kind="stable")]
        return cls(partner, int(track_id), rows)

    @classmethod
    def from_pictures(cls, pictures: Iterable[Picture], track_id: int) -> TrackHistory:
        pictures = list(pictures)
        partner = pictures[0].partner if pictures else ""
        parts = [p.tracks[p.tracks["track_id"] == track_id] for p in pictures]
        rows = records.concatenate(parts) if parts else records.empty_tracks(0)
        return cls.from_tracks(rows, track_id, partner)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"TrackHistory({self.partner or 'network'} track {self.track_id}, {len(self)} states, {self.duration_s:.0f} s)"

    @property
    def start_s(self) -> float:
        return float(self.rows["time_s"][0]) if len(self) else float("nan")

    @property
    def stop_s(self) -> float:
        return float(self.rows["time_s"][-1]) if len(self) else float("nan")

    @property
    def duration_s(self) -> float:
        return self.stop_s - self.start_s if len(self) else 0.0

    def at(self, time_s: float) -> np.void | None:
        """The last state at or before ``time_s``, or None before the track began."""
        i = int(np.searchsorted(self.rows["time_s"], time_s, side="right")) - 1
        return self.rows[i] if i >= 0 else None

    def between(self, start_s: float, stop_s: float) -> TrackHistory:
        t = self.rows["time_s"]
        return TrackHistory(self.partner, self.track_id, self.rows[(t >= start_s) & (t <= stop_s)])

    def to_pandas(self) -> pd.DataFrame:
        return tracks_to_pandas(self.rows)

    def to_parquet(self, path: str | Path) -> None:
        records.write_parquet(
            self.rows, path, metadata={"partner": self.partner, "track_id": str(self.track_id)}
        )


class PictureSink(Protocol):
    """Anything the runtime hands each new picture to (web COP, ASTERIX CAT062, CoT,
    recorder, evaluator). Called on the runtime's thread: a sink must return quickly and
    never block (queue work, drop intermediate updates for slow consumers)."""

    def on_picture(self, picture: Picture) -> None: ...
