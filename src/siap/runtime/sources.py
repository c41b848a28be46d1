"""Sources: where plots come from.

The contract (ASTERIX, Mode S and recording sources are written against it): **a source is any
iterable of** :data:`siap.records.PLOT_DTYPE` **batches in non-decreasing time** (each batch's
plots are not earlier than the previous batch's latest plot). The runtime releases each plot
into the partner nodes when its clock passes the plot's ``time_s``, whatever the batch
boundaries. It reads a source's next batch only when the current one is released, so a batch
may be any size.

* An **empty batch** means "nothing yet": the runtime asks again at its next step (a live feed
  that has nothing new must not block; see :class:`ThreadedSource`).
* The end of the iteration is the end of the source.
* A source that can be iterated again from its start (a list, :class:`ArraySource`,
  :class:`SimulatorSource`) lets the runtime seek backward (it restarts and fast-forwards); a
  one-shot iterator cannot.
* A batch of the wrong dtype is dropped, counted and logged; the source goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from siap import records

__all__ = ["ArraySource", "SimulatorSource", "ThreadedSource", "is_restartable"]

log = logging.getLogger(__name__)


class ArraySource:
    """Plots held in memory (a recording read from Parquet, a test's array), handed out in
    time slices of ``batch_s`` seconds. Sorted by time on construction (stable)."""

    def __init__(self, plots: np.ndarray, batch_s: float = 1.0) -> None:
        plots = np.asarray(plots)
        if plots.dtype != records.PLOT_DTYPE:
            raise TypeError(f"ArraySource: plots must be records.PLOT_DTYPE, not {plots.dtype}")
        if not batch_s > 0:
            raise ValueError(f"ArraySource: batch_s: expected > 0, got {batch_s}")
        self.plots = plots[np.argsort(plots["time_s"], kind="stable")]
        self.batch_s = float(batch_s)

    def __len__(self) -> int:
        return len(self.plots)

    @property
    def start_s(self) -> float:
        return float(self.plots["time_s"][0]) if len(self.plots) else float("nan")

    @property
    def end_s(self) -> float:
        return float(self.plots["time_s"][-1]) if len(self.plots) else float("nan")

    def __iter__(self) -> Iterator[np.ndarray]:
        t = self.plots["time_s"]
        if len(t) == 0:
            return
        edges = np.arange(t[0], t[-1] + self.batch_s, self.batch_s)
        cuts = np.searchsorted(t, edges, side="right")
        start = 0
        for stop in cuts.tolist():
            if stop > start:
                yield self.plots[start:stop]
                start = stop
        if start < len(t):
            yield self.plots[start:]


class SimulatorSource(ArraySource):
    """The plots of a simulation (:func:`siap.simulation.simulate`'s result), released into
    the runtime as the clock passes their time."""

    def __init__(self, simulation, batch_s: float = 1.0) -> None:
        super().__init__(simulation.plots, batch_s)
        self.simulation = simulation


class ThreadedSource:
    """A blocking feed (a socket, a serial line, a file being written) read on its own thread.

    Iterating yields what the feed produced since the last step, or an empty batch when it has
    produced nothing, so the runtime's loop never waits on the feed. Batches that do not fit
    in ``max_batches`` are dropped (oldest first) and counted in :attr:`dropped`.
    """

    def __init__(self, feed: Iterable[np.ndarray], max_batches: int = 1000) -> None:
        self._feed = feed
        self._queue: queue.Queue = queue.Queue()
        self._max = int(max_batches)
        self._done = threading.Event()
        self.dropped = 0
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        try:
            for batch in self._feed:
                if self._queue.qsize() >= self._max:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
                self._queue.put(batch)
        except Exception:  # a feed that fails ends; the runtime goes on
            log.exception("threaded source: the feed failed; it ends here")
        finally:
            self._done.set()

    def start(self) -> None:
        """Start reading the feed now (iterating starts it too): a feed that arrives before
        the runtime's first step is then queued, not lost."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="siap-source", daemon=True)
            self._thread.start()

    @property
    def done(self) -> bool:
        """Whether the feed has ended (everything it produced is queued or handed out)."""
        return self._done.is_set()

    def __iter__(self) -> Iterator[np.ndarray]:
        self.start()
        while True:
            parts = []
            while True:
                try:
                    parts.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if parts:
                yield records.concatenate(parts) if len(parts) > 1 else parts[0]
            elif self._done.is_set() and self._queue.empty():
                return
            else:
                yield records.empty_plots(0)


def is_restartable(source) -> bool:
    """Whether iterating ``source`` again starts it over (needed to seek backward)."""
    return not isinstance(source, Iterator) and not isinstance(source, ThreadedSource)
