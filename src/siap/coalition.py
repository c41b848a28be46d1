"""Coalition runs: partner nodes that track their own sensors, share signed local tracks under a
releasability policy, and fuse what they receive into their own picture.

:func:`run_coalition` is a thin wrapper: it builds a :class:`siap.runtime.Runtime` over the
plots with a virtual clock, every partner updating at the given ``times`` (or on a period),
runs it, and keeps the pictures at ``times``. How a partner update works (source groups,
release, signing, verification, fusion) is in :mod:`siap.runtime.partner`; the loop in
:mod:`siap.runtime.runtime`; see docs/coalition.md and docs/runtime.md.

Centralised mode (for comparison): each partner runs one tracker over all the raw plots it may
receive (releasable and ``share_plots: true``, plus its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap import records
from siap.fusion import FusionConfig
from siap.picture import Picture, TrackHistory
from siap.runtime import (
    DEFAULT_SUBJECT_PREFIX,
    GROUP_SHIFT,
    ArraySource,
    PartnerNode,
    PictureRecorder,
    Runtime,
    SourceGroup,
    VirtualClock,
    label_plots,
    source_groups,
    subject_for,
)
from siap.sharing.policy import Policy
from siap.sharing.release import release_mask
from siap.sharing.signing import TrustStore
from siap.tracking import TrackerConfig, track_with_stats
from siap.tracking.registration import SensorRegistration
from siap.transport import MessageBus

__all__ = [
    "SourceGroup",
    "PartnerNode",
    "CoalitionResult",
    "source_groups",
    "run_coalition",
    "label_plots",
    "subject_for",
    "GROUP_SHIFT",
]

ProgressFn = Callable[[str, float], None]
Tamper = Callable[[str, bytes], "bytes | list[tuple[str, bytes]] | None"]


@dataclass
class CoalitionResult:
    """The pictures of one coalition run, per partner, at the evaluation times.

    ``coalition``/``own``/``centralised`` hold each partner's pictures at ``times`` as one
    TRACK_DTYPE batch; :meth:`picture` and :meth:`history` give them as the user's objects.
    """

    times: np.ndarray
    partners: list[str]
    groups: list[SourceGroup]
    coalition: dict[str, np.ndarray]  # partner -> its fused coalition picture (TRACK_DTYPE)
    own: dict[str, np.ndarray]  # partner -> picture from its own sensors alone
    centralised: dict[str, np.ndarray] = field(default_factory=dict)
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # partner -> reason -> count
    messages: dict[str, int] = field(default_factory=dict)
    tracker_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    biases: dict[str, dict[str, dict[str, float | int | bool]]] = field(default_factory=dict)
    audit_paths: dict[str, Path] = field(default_factory=dict)
    run_id: str = ""  # binds the audit logs to this run (siap.sharing.audit)
    trust: TrustStore | None = None  # the run's pinned public keys (verify the audit logs with it)
    timings_s: dict[str, float] = field(default_factory=dict)
    runtime: object | None = None  # siap.runtime.RuntimeResult of the federated run

    def _kind(self, kind: str) -> dict[str, np.ndarray]:
        table = {"coalition": self.coalition, "own": self.own, "centralised": self.centralised}
        if kind not in table:
            raise ValueError(f"kind: expected one of {', '.join(table)}, got {kind!r}")
        return table[kind]

    def picture(self, partner: str, at_s: float | None = None, kind: str = "coalition") -> Picture:
        """The picture ``partner`` held at the last evaluation time at or before ``at_s``
        (default: the last one)."""
        if partner not in self.partners:
            raise KeyError(f"no partner {partner!r} (have {', '.join(self.partners)})")
        tracks = self._kind(kind).get(partner, records.empty_tracks(0))
        times = np.asarray(self.times, dtype=np.float64)
        if len(times) == 0:
            raise ValueError("the run has no evaluation times")
        i = len(times) - 1 if at_s is None else int(np.searchsorted(times, float(at_s), side="right")) - 1
        if i < 0:
            raise ValueError(f"at_s {at_s}: before the first evaluation time {times[0]}")
        t = float(times[i])
        return Picture(partner, t, records.take(tracks, tracks["time_s"] == t), kind)

    def pictures(self, partner: str, kind: str = "coalition") -> list[Picture]:
        """Every picture of ``partner`` at the evaluation times, in time order."""
        return [self.picture(partner, t, kind) for t in np.asarray(self.times, dtype=np.float64)]

    def history(self, partner: str, track_id: int, kind: str = "coalition") -> TrackHistory:
        """One of ``partner``'s tracks over the run (its states at the evaluation times)."""
        return TrackHistory.from_tracks(self._kind(kind).get(partner, records.empty_tracks(0)), track_id, partner)


def run_coalition(
    plots: np.ndarray,
    policy: Policy,
    times: np.ndarray,
    *,
    origin: tuple[float, float, float],
    sensor_ids: list[str] | None = None,
    centralised: bool = True,
    tracker_config: TrackerConfig | None = None,
    fusion_config: FusionConfig | None = None,
    audit_dir: str | Path | None = None,
    registration: bool = False,
    bus: MessageBus | None = None,
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
    tamper: Tamper | None = None,
    progress: ProgressFn | None = None,
    update_period_s: float | dict[str, float] | None = None,
    sinks: tuple = (),
    keep_pictures: bool = True,
) -> CoalitionResult:
    """Run the coalition over ``plots`` on the runtime (virtual clock) and return every
    partner's picture at ``times``.

    Partners update at ``times`` (default) or every ``update_period_s`` (one number, or per
    partner); the pictures kept are those of the updates at ``times``. ``origin`` (lat_deg,
    lon_deg, alt_m) is the trackers' frame. ``sensor_ids`` defaults to the sensors present in
    the plots. ``tamper`` lets tests act as an attacker on the link (alter, drop, replay or
    redirect messages; see :class:`TamperedBus`). ``sinks``: more picture sinks on the
    runtime (e.g. a :class:`siap.formats.recording.Recorder` writing pictures as they are
    made); ``keep_pictures=False`` keeps none in memory (the result's pictures are then empty).

    A run stopped early (a signal, a lost server, an error) raises
    :class:`siap.errors.RunStopped` with the pictures and counters of the updates done as
    ``partial`` (a CoalitionResult, no centralised pictures); the audit logs are closed and
    anchored all the same.
    """
    t_start = time.perf_counter()
    times = np.asarray(times, dtype=np.float64)
    cfg = tracker_config or TrackerConfig(
        origin_lat_deg=origin[0], origin_lon_deg=origin[1], origin_alt_m=origin[2]
    )
    sids = sorted(set(sensor_ids) if sensor_ids is not None else set(np.unique(plots["sensor_id"]).tolist()))
    link = bus
    if tamper is not None:
        link = TamperedBus(bus if bus is not None else _in_process_bus(), tamper)
    first = float(min(times.min() if len(times) else np.inf, plots["time_s"].min() if len(plots) else np.inf))
    start_s = first - 1.0 if np.isfinite(first) else 0.0
    if update_period_s is not None and len(times):
        # put the update grid on the evaluation times: start a whole number of (the largest)
        # periods before the first of them (periods that divide the largest stay on it too)
        periods = update_period_s.values() if isinstance(update_period_s, dict) else [update_period_s]
        big = float(max(periods))
        start_s = float(times[0]) - big * max(np.ceil((float(times[0]) - first) / big - 1e-9), 1.0)
    runtime = Runtime(
        policy,
        [ArraySource(plots)],
        sensor_ids=sids,
        tracker_config=cfg,
        fusion_config=fusion_config,
        clock=VirtualClock(),
        bus=link,
        update_period_s=update_period_s if update_period_s is not None else 1.0,
        update_times=times if update_period_s is None else None,
        start_s=start_s,
        end_s=float(times.max()) if len(times) else start_s,
        registration=registration,
        audit_dir=audit_dir,
        subject_prefix=subject_prefix,
        progress=progress,
    )
    recorder = runtime.add_sink(PictureRecorder(times)) if keep_pictures else PictureRecorder(times[:0])
    for sink in sinks:
        runtime.add_sink(sink)
    stopped: BaseException | None = None
    try:
        rt = runtime.run()
    except BaseException as exc:  # noqa: BLE001 - kept below as the RunStopped's cause
        stopped, rt = exc, runtime.result
    finally:
        runtime.close()
    timings = {"federated": time.perf_counter() - t_start}
    partners = list(runtime.partners)
    if stopped is not None and rt is None:
        raise stopped
    result = CoalitionResult(
        times=times,
        partners=partners,
        groups=runtime.groups,
        coalition={p: recorder.tracks(p, "coalition") for p in partners},
        own={p: recorder.tracks(p, "own") for p in partners},
        rejected=rt.rejected,
        messages=rt.messages,
        tracker_stats=rt.tracker_stats,
        biases=rt.biases,
        audit_paths=rt.audit_paths,
        run_id=runtime.run_id,
        trust=runtime.trust,
        timings_s=timings,
        runtime=rt,
    )
    if stopped is not None:
        from siap.errors import RunStopped

        err = RunStopped("coalition run stopped", stopped, result)
        raise err.with_traceback(None) from stopped
    if centralised:
        t0 = time.perf_counter()
        ordered = label_plots(plots[np.argsort(plots["time_s"], kind="stable")], policy)
        for i, p in enumerate(partners):
            mine = ordered[release_mask(ordered, p, policy)]
            result.centralised[p] = _centralised_picture(mine, cfg, times, p, registration)
            if progress is not None:
                progress("centralised", (i + 1) / len(partners))
        result.timings_s["centralised"] = time.perf_counter() - t0
    return result


def _in_process_bus():
    from siap.transport import InProcessBus

    return InProcessBus()


class TamperedBus:
    """A bus with an attacker on the link (tests): ``tamper(subject, message)`` returns the
    bytes to deliver on that subject, None to drop it, or a list of (subject, bytes) to deliver
    instead (redirection, duplication). The publication is counted once, as sent."""

    def __init__(self, bus: MessageBus, tamper: Tamper) -> None:
        self.bus, self.tamper = bus, tamper

    @property
    def published(self):
        return self.bus.published

    @property
    def delivered(self):
        return self.bus.delivered

    def subscribe(self, subject: str) -> None:
        self.bus.subscribe(subject)

    def drain(self, subject: str) -> list[bytes]:
        return self.bus.drain(subject)

    def requeue(self, subject: str, message: bytes) -> None:
        self.bus.requeue(subject, message)

    def publish(self, subject: str, message: bytes) -> None:
        self.bus.published[subject] += 1
        changed = self.tamper(subject, message)
        if changed is None:
            return
        for target, data in [(subject, changed)] if isinstance(changed, bytes) else changed:
            self.bus.requeue(target, data)


def _centralised_picture(
    plots: np.ndarray, cfg: TrackerConfig, times: np.ndarray, partner: str, registration: bool
) -> np.ndarray:
    reg = SensorRegistration() if registration else None
    tracks, _ = track_with_stats(plots, cfg, times, registration=reg)
    tracks["partner"] = partner
    return tracks
