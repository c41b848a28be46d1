"""What the service runs on: the :class:`LiveSource` contract, and :class:`PictureReplayer`,
a live source that replays recorded pictures (a coalition run, or a recording folder) on a
clock that can be paused, sped up and moved.

``siap.runtime.Runtime`` satisfies the same contract; the service is written against the
protocol only, so either plugs in (``siap.service.create_app(source, config)``).

A recording folder (:func:`save_recording` / :func:`load_recording`) holds::

    manifest.json            policy (built-in name or file), partners, picture times
    pictures-<PARTNER>.parquet   that partner's pictures over time (TRACK_DTYPE rows)
    truth.parquet            (optional) truth states (TRUTH_DTYPE)
    sensors.json             the sensors (id, partner, site, ranges) for the map
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from siap import records
from siap.errors import InputError
from siap.picture import Picture, PictureSink
from siap.records import MeasurementKind
from siap.sensors.base import SensorInfo

__all__ = ["LiveSource", "PictureReplayer", "save_recording", "load_recording"]

log = logging.getLogger(__name__)


@runtime_checkable
class LiveSource(Protocol):
    """The members the service uses of a live picture source (``siap.runtime.Runtime``)."""

    partners: Sequence[str]
    policy: object  # siap.sharing.policy.Policy
    sensors: Sequence[SensorInfo]
    truth: np.ndarray | None
    start_s: float
    end_s: float

    @property
    def now_s(self) -> float: ...
    @property
    def speed(self) -> float: ...
    @property
    def paused(self) -> bool: ...
    def add_sink(self, sink: PictureSink) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def set_speed(self, speed: float) -> None: ...
    def seek(self, time_s: float) -> None: ...


class PictureReplayer:
    """Replays each partner's recorded pictures to sinks on a virtual clock.

    The clock advances ``speed`` seconds of picture time per wall second while not paused.
    Whenever it passes a picture time, every sink gets, for each partner, the newest picture
    at or before the clock (pictures skipped at high speed are not sent: sinks want the
    latest). ``seek`` sends the pictures at the new time at once. At the end it either loops
    to the start (``loop=True``) or pauses there.
    """

    def __init__(
        self,
        pictures: dict[str, np.ndarray],
        policy,
        *,
        sensors: Sequence[SensorInfo] = (),
        truth: np.ndarray | None = None,
        speed: float = 1.0,
        loop: bool = True,
        kind: str = "coalition",
        tick_s: float = 0.05,
        times: np.ndarray | None = None,
    ) -> None:
        self.policy = policy
        self.partners = [p for p in policy.partners if p in pictures]
        self.sensors = list(sensors)
        self.truth = truth
        self.kind = kind
        self.loop = loop
        self.tick_s = float(tick_s)
        self._frames: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
        starts, ends = [], []
        for p in self.partners:
            rows = pictures[p]
            rows = rows[np.argsort(rows["time_s"], kind="stable")]
            # the picture times: given (so that an empty picture is sent too) or those of the rows
            ts = np.unique(rows["time_s"]) if times is None else np.unique(np.asarray(times, dtype=np.float64))
            lo = np.searchsorted(rows["time_s"], ts, side="left")
            hi = np.searchsorted(rows["time_s"], ts, side="right")
            self._frames[p] = (ts, [rows[a:b] for a, b in zip(lo, hi, strict=True)])
            if len(ts):
                starts.append(ts[0])
                ends.append(ts[-1])
        if not starts:
            raise InputError("replay: no pictures to replay (every partner's picture is empty)")
        self.start_s = float(min(starts))
        self.end_s = float(max(ends))
        self._sinks: list[PictureSink] = []
        self._lock = threading.Lock()
        self._now_s = self.start_s
        self._speed = self._check_speed(speed)
        self._paused = False
        self._sent: dict[str, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_coalition(cls, result, policy, **kwargs) -> PictureReplayer:
        """Replay the partners' coalition pictures of a ``siap.coalition.CoalitionResult``
        (at every evaluation time, empty pictures included)."""
        return cls(dict(result.coalition), policy, times=result.times, **kwargs)

    # --- the clock -------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        with self._lock:
            return self._now_s

    @property
    def speed(self) -> float:
        with self._lock:
            return self._speed

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused

    @staticmethod
    def _check_speed(speed: float) -> float:
        speed = float(speed)
        if not (np.isfinite(speed) and 0 < speed <= 10_000):
            raise ValueError(f"speed: expected a number in (0, 10000] (got {speed})")
        return speed

    def add_sink(self, sink: PictureSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            if self._now_s >= self.end_s and not self.loop:
                self._now_s = self.start_s
            self._paused = False
        self._wake.set()

    def set_speed(self, speed: float) -> None:
        speed = self._check_speed(speed)
        with self._lock:
            self._speed = speed

    def seek(self, time_s: float) -> None:
        """Move the clock to ``time_s`` (within [start_s, end_s]) and send the pictures there."""
        t = float(time_s)
        if not (np.isfinite(t) and self.start_s <= t <= self.end_s):
            raise ValueError(f"time_s: expected a time in [{self.start_s}, {self.end_s}] (got {time_s})")
        with self._lock:
            self._now_s = t
            self._sent.clear()
        self._emit(t)

    # --- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the clock thread; the first pictures go out at once."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._emit(self.now_s)
        self._thread = threading.Thread(target=self._run, name="siap-picture-replayer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.tick_s)
            self._wake.clear()
            now = time.monotonic()
            dt, last = now - last, now
            with self._lock:
                if self._paused:
                    continue
                t = self._now_s + dt * self._speed
                if t > self.end_s:
                    if self.loop:
                        t = self.start_s
                        self._sent.clear()
                    else:
                        t = self.end_s
                        self._paused = True
                self._now_s = t
            self._emit(t)

    def _emit(self, t: float) -> None:
        """Send, for each partner, its newest picture at or before ``t`` if not sent yet."""
        out = []
        with self._lock:
            for p in self.partners:
                times, frames = self._frames[p]
                i = int(np.searchsorted(times, t, side="right")) - 1
                if i < 0 or self._sent.get(p) == i:
                    continue
                self._sent[p] = i
                out.append(Picture(p, float(times[i]), frames[i], self.kind))
            sinks = list(self._sinks)
        for picture in out:
            for sink in sinks:
                try:
                    sink.on_picture(picture)
                except Exception:  # a failing sink must not stop the others
                    log.exception("replay: sink %r failed", sink)


# --- recordings ---------------------------------------------------------------------------------

_SENSOR_FIELDS = (
    "id", "partner", "type", "lat_deg", "lon_deg", "alt_m", "scan_period_s", "max_range_m",
    "min_range_m", "min_elevation_deg", "max_elevation_deg",
)


def save_recording(
    folder: str | Path, pictures: dict[str, np.ndarray], policy_ref: str, *, sensors=(), truth=None, times=None
) -> Path:
    """Write a recording folder (see the module docstring); ``policy_ref`` is the policy's
    built-in name or file path. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for p, rows in pictures.items():
        records.write_parquet(rows, folder / f"pictures-{p}.parquet", metadata={"partner": p, "kind": "coalition"})
    if truth is not None:
        records.write_parquet(truth, folder / "truth.parquet")
    sens = []
    for s in sensors:
        d = {k: v for k, v in asdict(s).items() if k in _SENSOR_FIELDS}
        d["kind"] = MeasurementKind(s.kind).name
        if s.platform_track is not None and len(s.platform_track):
            pt = s.platform_track
            d["platform_track"] = {k: np.asarray(pt[k]).tolist() for k in pt.dtype.names}
        sens.append(d)
    (folder / "sensors.json").write_text(json.dumps(sens, indent=1), encoding="utf-8")
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "format": "siap-recording-1",
                "policy": policy_ref,
                "partners": sorted(pictures),
                "times_s": None if times is None else np.asarray(times, dtype=np.float64).tolist(),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return folder


def load_recording(folder: str | Path, policy=None, **kwargs) -> PictureReplayer:
    """A :class:`PictureReplayer` over a recording folder. ``policy`` overrides the one named
    in the manifest. InputError (one line) when the folder is not a recording."""
    from siap.sharing.policy import Policy, load_policy

    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError:
        raise InputError(f"{manifest_path}: expected a siap recording folder with manifest.json") from None
    except ValueError as e:
        raise InputError(f"{manifest_path}: expected JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "siap-recording-1":
        raise InputError(f"{manifest_path}: format: expected 'siap-recording-1'")
    if policy is None:
        policy = manifest.get("policy")
        if not isinstance(policy, str):
            raise InputError(f"{manifest_path}: policy: expected a policy name or path (or pass --policy)")
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    pictures = {}
    for p in manifest.get("partners", []):
        path = folder / f"pictures-{p}.parquet"
        try:
            pictures[p], _ = records.read_parquet(path, records.TRACK_DTYPE)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: expected a siap tracks Parquet file ({str(e).splitlines()[0]})") from None
    truth = None
    if (folder / "truth.parquet").exists():
        truth, _ = records.read_parquet(folder / "truth.parquet", records.TRUTH_DTYPE)
    sensors = []
    sensors_path = folder / "sensors.json"
    if sensors_path.exists():
        for i, d in enumerate(json.loads(sensors_path.read_text(encoding="utf-8"))):
            try:
                kind = MeasurementKind[d.pop("kind")]
                pt = d.pop("platform_track", None)
                track = None
                if pt:
                    dtype = [("time_s", "f8"), ("lat_deg", "f8"), ("lon_deg", "f8"), ("alt_m", "f8")]
                    track = np.zeros(len(pt["time_s"]), dtype=dtype)
                    for k, _ in dtype:
                        track[k] = pt[k]
                sensors.append(SensorInfo(kind=kind, platform_track=track, **d))
            except (KeyError, TypeError) as e:
                raise InputError(f"{sensors_path}: sensor {i}: expected the fields {', '.join(_SENSOR_FIELDS)} ({e})") from None
    times = manifest.get("times_s")
    return PictureReplayer(pictures, policy, sensors=sensors, truth=truth, times=times, **kwargs)
