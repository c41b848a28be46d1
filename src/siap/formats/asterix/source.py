"""ASTERIX sources: files (raw ASTERIX, pcap, pcapng) and live UDP (unicast, multicast), each an
iterable of plot batches (:data:`siap.records.PLOT_DTYPE`) in non-decreasing time, the form
the live runtime consumes.

Records from different sensors, or a radar's sectors, can arrive slightly out of time order; a
reorder buffer holds plots for ``reorder_s`` seconds of feed time and releases them sorted.
A plot older than one already released is dropped and counted (``late``). Every source keeps
:class:`AsterixStats`: records per category, drops per reason (each logged with its byte
offset), records per unknown SAC/SIC.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siap.errors import InputError
from siap.records import concatenate, empty_plots, take

from .capture import Payloads, read_payloads
from .decode import DAY_S, Decoded, decode
from .framing import ERRORS
from .plots import cat021_to_plots, cat048_to_plots
from .sites import Sites

logger = logging.getLogger("siap.formats.asterix")


@dataclass
class AsterixStats:
    """What a source has seen so far."""

    records: dict[str, int] = field(default_factory=lambda: {"cat048": 0, "cat034": 0, "cat021": 0})
    dropped: dict[str, int] = field(default_factory=dict)  # per reason (framing.ERRORS, "late", "no_time")
    unknown_sac_sic: dict[str, int] = field(default_factory=dict)  # "sac/sic" -> records
    skipped_packets: dict[str, int] = field(default_factory=dict)  # capture packets that are not UDP
    plots: int = 0
    service_messages: list = field(default_factory=list)  # CAT034 tables as decoded (the latest ~10,000 rows)

    def add(self, d: Decoded) -> None:
        for k, v in d.counts.items():
            self.records[k] = self.records.get(k, 0) + v
        for k, v in d.error_counts().items():
            self.dropped[k] = self.dropped.get(k, 0) + v

    def drop(self, why: str, n: int) -> None:
        if n:
            self.dropped[why] = self.dropped.get(why, 0) + n

    def as_dict(self) -> dict:
        return {
            "records": dict(self.records),
            "dropped": dict(self.dropped),
            "unknown_sac_sic": dict(self.unknown_sac_sic),
            "skipped_packets": dict(self.skipped_packets),
            "plots": self.plots,
        }


def midnight_s(date: str | dt.date | None) -> float:
    """Unix time of 00:00 UTC on ``date`` (``YYYY-MM-DD``); NaN for None."""
    if date is None:
        return float("nan")
    if isinstance(date, str):
        try:
            date = dt.date.fromisoformat(date)
        except ValueError:
            raise InputError(f"--date: a date as YYYY-MM-DD (got {date!r})") from None
    return dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC).timestamp()


class _Reorder:
    """Holds plots for ``window_s`` of feed time and releases them in time order."""

    def __init__(self, window_s: float, stats: AsterixStats):
        self.window_s = window_s
        self.stats = stats
        self.held: list[np.ndarray] = []
        self.last_out = -np.inf
        self.next_id = 0

    def push(self, plots: np.ndarray, final: bool = False) -> np.ndarray:
        if len(plots):
            late = plots["time_s"] < self.last_out
            if late.any():
                self.stats.drop("late", int(late.sum()))
                plots = take(plots, ~late)
            self.held.append(plots)
        if not self.held:
            return empty_plots(0)
        allp = concatenate(self.held) if len(self.held) > 1 else self.held[0]
        if not len(allp):
            self.held = []
            return allp
        cut = np.inf if final else allp["time_s"].max() - self.window_s
        ready = allp["time_s"] <= cut
        out = take(allp, ready) if not ready.all() else allp
        self.held = [take(allp, ~ready)] if not ready.all() else []
        out = take(out, np.argsort(out["time_s"], kind="stable"))
        if len(out):
            self.last_out = float(out["time_s"][-1])
            out["plot_id"] = np.arange(self.next_id, self.next_id + len(out))
            self.next_id += len(out)
        self.stats.plots += len(out)
        return out


class _Converter:
    """Decoded tables -> plots, updating the stats."""

    def __init__(self, sites: Sites, stats: AsterixStats, keep_tables: bool = False):
        self.configured = sites
        self.sites = sites
        self.stats = stats
        self.keep_tables = keep_tables
        self.tables: list[Decoded] = []
        self.radar_positions: dict[tuple[int, int], tuple[float, float, float]] = {}

    def __call__(self, d: Decoded) -> np.ndarray:
        self.stats.add(d)
        if len(d.cat034):
            kept = self.stats.service_messages
            kept.append(d.cat034)
            while len(kept) > 1 and sum(len(t) for t in kept) > 10_000:  # a live feed runs for days
                kept.pop(0)
            pos = d.cat034[np.isfinite(d.cat034["site_lat_deg"])]
            new = {(int(r["sac"]), int(r["sic"])): (float(r["site_lat_deg"]), float(r["site_lon_deg"]), float(r["site_alt_m"])) for r in pos}
            if any(self.radar_positions.get(k) != v for k, v in new.items()):
                self.radar_positions.update(new)
                self.sites = self.configured.with_positions(self.radar_positions)
        if self.keep_tables:
            self.tables.append(d)
        no_time = int((~np.isfinite(d.cat048["time_s"])).sum() + (~np.isfinite(d.cat021["time_s"])).sum())
        self.stats.drop("no_time", no_time)
        p48 = cat048_to_plots(d.cat048, self.sites, self.stats.unknown_sac_sic, self.stats.dropped)
        p21 = cat021_to_plots(d.cat021, self.sites, self.stats.unknown_sac_sic, self.stats.dropped)
        return concatenate([p48, p21])


def _latest_time(d: Decoded, previous: float) -> float:
    """The latest resolved time in ``d`` (``previous`` if it has none): the reference that
    carries the day from one chunk or datagram batch to the next."""
    times = np.concatenate([d.cat048["time_s"], d.cat021["time_s"], d.cat034["time_s"]])
    times = times[np.isfinite(times)]
    if not len(times):
        return previous
    return float(times.max()) if not np.isfinite(previous) else max(previous, float(times.max()))


def _split(plots: np.ndarray, batch_s: float) -> Iterator[np.ndarray]:
    if not len(plots):
        return
    key = np.floor(plots["time_s"] / batch_s)
    cuts = np.flatnonzero(np.diff(key)) + 1
    yield from np.split(plots, cuts)


class AsterixFileSource:
    """Plot batches from an ASTERIX file: raw data blocks (``.ast``, ``.raw``: read in chunks;
    ``date`` fixes the day of the first time of day) or a pcap / pcapng capture (each UDP
    payload by its UDP length; the capture time fixes the day, ``date`` is not needed)."""

    def __init__(
        self, path: str | Path, sites: Sites, *, date: str | dt.date | None = None, batch_s: float = 1.0,
        reorder_s: float = 5.0, chunk_bytes: int = 1 << 22, keep_tables: bool = False,
    ):  # fmt: skip
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        self.sites = sites
        self.date = date
        self.batch_s = batch_s
        self.reorder_s = reorder_s
        self.chunk_bytes = chunk_bytes
        self.stats = AsterixStats()
        self._convert = _Converter(sites, self.stats, keep_tables)

    @property
    def tables(self) -> list[Decoded]:
        """The decoded field tables, chunk by chunk (with ``keep_tables=True``)."""
        return self._convert.tables

    def _decoded(self) -> Iterator[Decoded]:
        payloads = read_payloads(self.path)
        if payloads is not None:
            yield from self._from_capture(payloads)
            return
        first_ref = midnight_s(self.date) + DAY_S / 2 if self.date is not None else np.nan
        if self.date is None:
            logger.warning("%s: raw ASTERIX without --date: times of day are placed on 1970-01-01", self.path)
        offset, seq, tail = 0, 0, b""
        with open(self.path, "rb") as f:
            while True:
                chunk = f.read(self.chunk_bytes)
                final = not chunk
                data = tail + chunk
                if not data:
                    return
                d = decode(data, first_ref_s=first_ref, final=final, base_offset=offset - len(tail), seq0=seq)
                seq += sum(d.counts.values())
                yield d
                first_ref = _latest_time(d, first_ref)  # the next chunk continues from here
                tail = data[d.consumed :]
                offset += len(chunk)
                if final:
                    return

    def _from_capture(self, p: Payloads) -> Iterator[Decoded]:
        for k, v in p.skipped.items():
            self.stats.skipped_packets[k] = self.stats.skipped_packets.get(k, 0) + v
        # decode in chunks of whole packets; offsets are reported within the payload stream
        bounds = np.searchsorted(p.start, np.arange(0, len(p.data) + self.chunk_bytes, self.chunk_bytes))
        bounds = np.unique(np.append(bounds, len(p)))
        seq = 0
        for a, b in zip(bounds[:-1], bounds[1:], strict=False):
            if a == b:
                continue
            s0, s1 = int(p.start[a]), int(p.end[b - 1])
            segs = np.stack([p.start[a:b] - s0, p.end[a:b] - s0], axis=1)
            d = decode(p.data[s0:s1], segs, p.time_s[a:b], base_offset=s0, seq0=seq)
            seq += sum(d.counts.values())
            yield d

    def __iter__(self) -> Iterator[np.ndarray]:
        # restartable (the runtime may seek backward): each pass starts its counts afresh
        self.stats = AsterixStats()
        self._convert = _Converter(self.sites, self.stats, self._convert.keep_tables)
        reorder = _Reorder(self.reorder_s, self.stats)
        for d in self._decoded():
            yield from _split(reorder.push(self._convert(d)), self.batch_s)
        yield from _split(reorder.push(empty_plots(0), final=True), self.batch_s)

    def read_all(self) -> np.ndarray:
        """Every plot of the file in one batch."""
        batches = list(self)
        return concatenate(batches) if batches else empty_plots(0)


class AsterixUdpSource:
    """Plot batches from ASTERIX over UDP, one or more data blocks per datagram.

    Binds ``host:port`` (``group``: join that IPv4 multicast group on interface ``interface``).
    Each datagram's receive time fixes the day of its times of day, unless ``date`` is given
    (a replay of an old feed). Iteration yields a batch every ``batch_s`` of wall time (when
    there are plots) and stops after ``idle_timeout_s`` without a datagram, or after
    :meth:`close`. It is one-shot and blocks while it waits for datagrams: in the live runtime,
    wrap it in ``siap.runtime.ThreadedSource``."""

    def __init__(
        self, sites: Sites, port: int, *, host: str = "127.0.0.1", group: str | None = None,
        interface: str = "127.0.0.1", date: str | dt.date | None = None, batch_s: float = 0.5,
        reorder_s: float = 2.0, idle_timeout_s: float | None = None, bufsize: int = 1 << 22,
    ):  # fmt: skip
        self.sites = sites
        self.stats = AsterixStats()
        self._convert = _Converter(sites, self.stats)
        self.batch_s = batch_s
        self.reorder_s = reorder_s
        self.idle_timeout_s = idle_timeout_s
        self._date_ref = midnight_s(date) + DAY_S / 2 if date is not None else None
        self._closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
        except OSError:
            pass
        self.sock.bind((group or host, port))
        if group:
            mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface))
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.port = self.sock.getsockname()[1]
        self._offset = 0
        self._seq = 0
        self._last_ref = np.nan

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _drain(self, deadline: float) -> tuple[list[bytes], list[float]]:
        datagrams, times = [], []
        while not self._closed:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            except OSError:
                self._closed = True
                break
            datagrams.append(data)
            times.append(time.time())
        return datagrams, times

    def __iter__(self) -> Iterator[np.ndarray]:
        reorder = _Reorder(self.reorder_s, self.stats)
        last_rx = time.monotonic()
        while not self._closed:
            datagrams, times = self._drain(time.monotonic() + self.batch_s)
            now = time.monotonic()
            if datagrams:
                last_rx = now
                yield from self._decode(datagrams, times, reorder)
            elif self.idle_timeout_s is not None and now - last_rx >= self.idle_timeout_s:
                break
        rest = reorder.push(empty_plots(0), final=True)
        if len(rest):
            yield rest
        self.close()

    def _decode(self, datagrams, times, reorder) -> Iterator[np.ndarray]:
        lens = np.array([len(d) for d in datagrams], np.int64)
        end = np.cumsum(lens)
        segs = np.stack([end - lens, end], axis=1)
        ref = np.array(times) if self._date_ref is None else np.full(len(times), np.nan)
        first = self._last_ref if np.isfinite(self._last_ref) else (self._date_ref or np.nan)
        d = decode(b"".join(datagrams), segs, ref, first_ref_s=first, base_offset=self._offset, seq0=self._seq)
        self._offset += int(end[-1])
        self._seq += sum(d.counts.values())
        self._last_ref = _latest_time(d, self._last_ref)
        out = reorder.push(self._convert(d))
        if len(out):
            yield out


def drop_summary(stats: AsterixStats) -> str:
    """One line: records per category, drops per reason, unknown SAC/SIC."""
    rec = ", ".join(f"{k.upper()} {v}" for k, v in stats.records.items())
    drops = ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items())) or "none"
    unk = ", ".join(f"{k} ({v})" for k, v in sorted(stats.unknown_sac_sic.items())) or "none"
    return f"records: {rec}; plots: {stats.plots}; dropped: {drops}; unknown SAC/SIC: {unk}"


__all__ = ["AsterixFileSource", "AsterixUdpSource", "AsterixStats", "midnight_s", "drop_summary", "ERRORS"]
