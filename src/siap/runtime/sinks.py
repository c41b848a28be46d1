"""Sinks: where pictures go (web COP, ASTERIX CAT062, CoT, recorder, evaluator).

A sink is anything with ``on_picture(picture)`` (:class:`siap.picture.PictureSink`). After each
partner update the runtime hands every registered sink that partner's ``coalition`` picture
and then its ``own`` picture.

**A sink cannot stall the loop.** Sinks are called on the runtime's thread, so a sink must
return quickly (queue its work, keep the latest picture). A sink that raises is logged (the
first time, then every 100th time) and counted in :attr:`SinkSet.errors`, and the loop goes on.
A sink that may block (network, disk, a slow client) is registered with a queue
(``Runtime.add_sink(sink, queue_size=N)``): it then runs on its own thread behind a bounded
queue, and when the queue is full the oldest picture waiting is dropped and counted
(:attr:`QueuedSink.dropped`), so a stuck sink costs the loop one ``put``.

A sink may also have ``on_seek(time_s)``: called when a backward seek restarts the run, so that
it can forget pictures later than ``time_s``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter

import numpy as np

from siap import records
from siap.picture import Picture, TrackHistory

__all__ = ["OnePartner", "PictureRecorder", "QueuedSink", "SinkSet"]

log = logging.getLogger(__name__)


def _name(sink) -> str:
    return getattr(sink, "name", None) or type(sink).__name__


class SinkSet:
    """The registered sinks; hands each picture to every one of them, whatever they do."""

    def __init__(self) -> None:
        self.sinks: list = []
        self.errors: Counter[str] = Counter()  # sink name -> exceptions raised
        self.delivered = 0

    def add(self, sink) -> None:
        if not callable(getattr(sink, "on_picture", None)):
            raise TypeError(f"a sink needs an on_picture(picture) method; {type(sink).__name__} has none")
        self.sinks.append(sink)

    def emit(self, picture: Picture) -> None:
        for sink in self.sinks:
            try:
                sink.on_picture(picture)
                self.delivered += 1
            except Exception:
                name = _name(sink)
                self.errors[name] += 1
                n = self.errors[name]
                if n == 1 or n % 100 == 0:
                    log.exception("sink %s raised on %r (%d times so far); the runtime goes on", name, picture, n)

    def seek(self, time_s: float) -> None:
        for sink in self.sinks:
            hook = getattr(sink, "on_seek", None)
            if callable(hook):
                try:
                    hook(time_s)
                except Exception:
                    self.errors[_name(sink)] += 1
                    log.exception("sink %s raised in on_seek; the runtime goes on", _name(sink))

    def flush(self, timeout_s: float = 5.0) -> None:
        """Let queued sinks finish what is waiting (each up to ``timeout_s``)."""
        for sink in self.sinks:
            if isinstance(sink, QueuedSink):
                sink.flush(timeout_s)


class QueuedSink:
    """Runs ``sink`` on its own thread behind a queue of ``maxsize`` pictures; when the queue is
    full the oldest waiting picture is dropped (counted in :attr:`dropped`)."""

    def __init__(self, sink, maxsize: int = 64) -> None:
        if maxsize < 1:
            raise ValueError(f"QueuedSink: maxsize: expected >= 1, got {maxsize}")
        self.sink = sink
        self.name = f"queued:{_name(sink)}"
        self._queue: queue.Queue = queue.Queue(maxsize)
        self.dropped = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._work, name=f"siap-sink-{_name(sink)}", daemon=True)
        self._thread.start()

    def on_picture(self, picture: Picture) -> None:
        while True:
            try:
                self._queue.put_nowait(picture)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self._queue.task_done()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def on_seek(self, time_s: float) -> None:
        hook = getattr(self.sink, "on_seek", None)
        if callable(hook):
            hook(time_s)

    def _work(self) -> None:
        while True:
            picture = self._queue.get()
            try:
                self.sink.on_picture(picture)
            except Exception:
                self.errors += 1
                if self.errors == 1 or self.errors % 100 == 0:
                    log.exception("queued sink %s raised (%d times so far)", _name(self.sink), self.errors)
            finally:
                self._queue.task_done()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait (up to ``timeout_s``) until the sink has taken every queued picture; whether
        it has. The worker is a daemon thread: it ends with the process."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


class OnePartner:
    """Hands ``sink`` only the pictures of one partner and one kind (default: its coalition
    picture): a per-partner output (CAT062, CoT) carries that partner's releasable picture
    and nothing else."""

    def __init__(self, sink, partner: str, kind: str = "coalition") -> None:
        self.sink = sink
        self.partner = partner
        self.kind = kind
        self.name = f"{_name(sink)}[{partner}]"

    def on_picture(self, picture: Picture) -> None:
        if picture.partner == self.partner and picture.kind == self.kind:
            self.sink.on_picture(picture)

    def on_seek(self, time_s: float) -> None:
        hook = getattr(self.sink, "on_seek", None)
        if callable(hook):
            hook(time_s)


class PictureRecorder:
    """Keeps the pictures handed to it (all of them, or those at ``times``), per partner and
    kind: what :func:`siap.coalition.run_coalition` gives back."""

    def __init__(self, times: np.ndarray | None = None, kinds: tuple[str, ...] = ("coalition", "own")) -> None:
        self.times = None if times is None else np.asarray(times, dtype=np.float64)
        self.kinds = kinds
        self.pictures: dict[tuple[str, str], list[Picture]] = {}

    def on_picture(self, picture: Picture) -> None:
        if picture.kind not in self.kinds:
            return
        if self.times is not None and not np.any(self.times == picture.time_s):
            return
        self.pictures.setdefault((picture.partner, picture.kind), []).append(picture)

    def on_seek(self, time_s: float) -> None:
        for key, pics in self.pictures.items():
            self.pictures[key] = [p for p in pics if p.time_s <= time_s]

    def tracks(self, partner: str, kind: str = "coalition") -> np.ndarray:
        """Every recorded picture of ``partner`` of ``kind``, concatenated (TRACK_DTYPE)."""
        parts = [p.tracks for p in self.pictures.get((partner, kind), []) if len(p)]
        return records.concatenate(parts) if parts else records.empty_tracks(0)

    def history(self, partner: str, track_id: int, kind: str = "coalition") -> TrackHistory:
        return TrackHistory.from_pictures(self.pictures.get((partner, kind), []), track_id)
