"""Recordings as runtime sources: a siap recording (or plots Parquet file), an ASTERIX file or
pcap capture, or a Mode S file (Beast, AVR, JSON lines), opened as one restartable source with
the span of its plots and the sensors it reports, ready for :class:`~siap.runtime.Runtime` on a
replay clock (``siap replay``, ``siap serve RECORDING``).

Every input is iterated once on opening to find its time span (the first and last plot), so
that the runtime knows its start and end and the COP can seek; the runtime then iterates it
again (and again after a backward seek), so memory stays one batch, whatever the file's size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap import records
from siap.errors import InputError
from siap.records import MeasurementKind
from siap.sensors.base import SensorInfo

__all__ = ["ReplayInput", "Reiterable", "open_replay_input", "input_kind"]


class Reiterable:
    """An iterable that calls ``factory()`` for each pass: a generator-based reader made
    restartable (the runtime iterates it again to seek backward)."""

    def __init__(self, factory: Callable[[], Iterator[np.ndarray]], name: str = "source") -> None:
        self.factory = factory
        self.name = name

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.factory())


@dataclass
class ReplayInput:
    """A recording opened for replay: its source, span and what the service shows of it."""

    path: Path
    kind: str  # "recording", "asterix", "modes"
    source: object  # a restartable iterable of PLOT_DTYPE batches
    first_s: float  # time of the first plot
    last_s: float  # time of the last plot
    n_plots: int
    sensor_ids: list[str]  # the sensors whose plots it holds
    sensors: list[SensorInfo] = field(default_factory=list)  # with known sites, for the map
    truth: np.ndarray | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    stats: object | None = None  # decoder counts (ASTERIX: AsterixStats)


def input_kind(path: Path) -> str:
    """``recording`` (a siap recording folder or a .parquet plots file), ``modes`` (by name, as
    :func:`siap.formats.modes.file_kind`: .bin/.beast Beast, .avr/.txt AVR, .jsonl/.json
    JSON lines, optionally .gz) or ``asterix`` (.ast, .raw, .asterix, or a pcap / pcapng
    capture by its magic number); InputError for anything else."""
    from siap.formats import modes
    from siap.formats.asterix.capture import file_kind as capture_kind

    if path.is_dir() or path.name.lower().endswith(".parquet"):
        return "recording"
    try:
        modes.file_kind(path)
        return "modes"
    except ValueError:
        pass
    if path.name.lower().endswith((".ast", ".raw", ".asterix")) or capture_kind(path) != "raw":
        return "asterix"
    raise InputError(
        f"{path}: expected a siap recording folder or .parquet plots file, an ASTERIX file "
        "(.ast, .raw, .asterix, pcap, pcapng) or a Mode S file (.bin Beast, .avr, .jsonl[.gz])"
    )


def _span(source) -> tuple[float, float, int, set[str]]:
    lo, hi, n, sensors = math.inf, -math.inf, 0, set()
    for batch in source:
        if len(batch) == 0:
            continue
        t = batch["time_s"]
        lo, hi, n = min(lo, float(t.min())), max(hi, float(t.max())), n + len(batch)
        sensors.update(np.unique(batch["sensor_id"]).tolist())
    return lo, hi, n, sensors


def _radar_info(sensor_id: str, partner: str, kind: MeasurementKind, lat: float, lon: float, alt: float) -> SensorInfo:
    # a sites file or a receiver declares no range or scan period: 0 means unknown (no
    # coverage ring is drawn, the COP shows the site only)
    return SensorInfo(id=sensor_id, partner=partner, type="radar" if kind != MeasurementKind.ADSB else "adsb",
                      kind=kind, lat_deg=lat, lon_deg=lon, alt_m=alt, scan_period_s=0.0, max_range_m=0.0)


def open_replay_input(
    path: str | Path, *, sites=None, receiver=None, date: str | None = None, start_time_s: float | None = None,
) -> ReplayInput:
    """Open ``path`` for replay. ASTERIX needs ``sites`` (:class:`siap.formats.asterix.Sites`;
    ``date``: the UTC day of a raw file); Mode S needs ``receiver``
    (:class:`siap.formats.modes.ReceiverConfig`; ``start_time_s``: the time of the first 12 MHz
    timestamp). InputError (one line) for a missing, unreadable or empty input."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    kind = input_kind(path)
    truth = None
    metadata: dict[str, str] = {}
    sensors: list[SensorInfo] = []
    stats = None
    if kind == "recording":
        from siap.formats.recording import read_manifest, read_plot_batches

        if path.is_dir():
            metadata = {k: str(v) for k, v in read_manifest(path).items() if isinstance(v, str | int | float)}
            if (path / "truth.parquet").exists():
                truth, _ = records.read_parquet(path / "truth.parquet", records.TRUTH_DTYPE)
        source = Reiterable(lambda: read_plot_batches(path), str(path))
    elif kind == "asterix":
        from siap.formats.asterix import AsterixFileSource

        if sites is None:
            raise InputError(f"{path}: an ASTERIX input needs --sites (SAC/SIC -> sensor id, partner, position)")
        source = AsterixFileSource(path, sites, date=date)
        for s in sites.sites:
            if s.has_position:
                k = MeasurementKind.ADSB if s.kind == "adsb" else MeasurementKind.RADAR_2D
                sensors.append(_radar_info(s.sensor_id, s.partner, k, s.lat_deg, s.lon_deg, s.alt_m or 0.0))
    else:
        from siap.formats import modes

        if receiver is None:
            raise InputError(f"{path}: a Mode S input needs --receiver LAT,LON[,ALT] (and --receiver-id, --partner)")
        start = start_time_s if start_time_s is not None else path.stat().st_mtime

        def read():
            return modes.file_source(path, receiver, start_time_s=start)

        source = Reiterable(read, str(path))
        sensors.append(_radar_info(receiver.receiver_id, receiver.partner, MeasurementKind.ADSB,
                                   receiver.lat_deg, receiver.lon_deg, receiver.alt_m))
    try:
        first, last, n, sensor_ids = _span(source)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if kind == "asterix":
        stats = source.stats
    if n == 0:
        raise InputError(f"{path}: no plots to replay")
    return ReplayInput(path, kind, source, first, last, n, sorted(sensor_ids), sensors, truth, metadata, stats)
