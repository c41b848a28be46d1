"""Publishing without blocking the caller: a bounded outbox per subject, drained by its own
thread, with an optional bandwidth budget, where a newer message supersedes an older waiting
one of the same key.

A node publishes *states* (each release envelope carries the sender's current tracks of one
label), so when a link is slow, cut or over its budget there is no point in sending an old state
once a newer one of the same key is waiting: the outbox keeps only the newest message per key
(the **supersede rule**), so what waits for a link is bounded by the number of keys (labels),
never by how long the link is down, and the caller never waits for the link. Messages of
different keys go out in the order they were queued.

The transport knows nothing of tracks: the caller gives ``key_fn(subject, message) -> key``
(the node uses the envelope's origin and label).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

__all__ = ["Outbox"]


class _Link:
    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.waiting: OrderedDict[Hashable, tuple[bytes, float]] = OrderedDict()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.tokens = 0.0
        self.last_refill = time.monotonic()


class Outbox:
    """Asynchronous, superseding publisher over ``bus`` (anything with ``publish(subject, bytes)``).

    Parameters
    ----------
    bus:
        The bus publishes go to (a :class:`~siap.transport.NatsBus`: its publish waits for the
        stream's ack and retries, on this outbox's thread instead of the caller's).
    key_fn:
        ``key_fn(subject, message)``: messages of equal key on a subject supersede each other.
    budget_bytes_per_s:
        Bandwidth budget per subject (token bucket, burst of one second); None: unlimited.
    """

    def __init__(self, bus, key_fn: Callable[[str, bytes], Hashable],
                 budget_bytes_per_s: dict[str, float] | float | None = None) -> None:
        self.bus = bus
        self.key_fn = key_fn
        self.budget = budget_bytes_per_s
        self.queued: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.sent_bytes: Counter[str] = Counter()
        self.superseded: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency_s: dict[str, list[float]] = {}  # queue -> published, per subject (last 10 000)
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _budget(self, subject: str) -> float | None:
        if isinstance(self.budget, dict):
            return self.budget.get(subject)
        return self.budget

    def publish(self, subject: str, message: bytes) -> None:
        """Queue ``message``; an older waiting message of the same key is dropped (counted in
        :attr:`superseded`). Never blocks on the link."""
        key = self.key_fn(subject, message)
        with self._lock:
            link = self._links.get(subject)
            if link is None:
                link = self._links[subject] = _Link(subject)
                link.thread = threading.Thread(target=self._run, args=(link,), name=f"outbox-{subject}", daemon=True)
                link.thread.start()
        with link.cond:
            if key in link.waiting:
                del link.waiting[key]
                self.superseded[subject] += 1
            link.waiting[key] = (bytes(message), time.monotonic())
            self.queued[subject] += 1
            link.cond.notify()

    def waiting(self, subject: str | None = None) -> int:
        """Messages waiting (on ``subject``, or on all)."""
        links = [self._links[subject]] if subject in self._links else ([] if subject else list(self._links.values()))
        return sum(len(link.waiting) for link in links)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is waiting (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self.waiting() or any(getattr(link, "busy", False) for link in self._links.values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._closed = True
        for link in self._links.values():
            with link.cond:
                link.cond.notify()

    def _run(self, link: _Link) -> None:
        while True:
            with link.cond:
                while not link.waiting and not self._closed:
                    link.cond.wait(0.5)
                if self._closed and not link.waiting:
                    return
                _key, (message, queued_at) = link.waiting.popitem(last=False)
                link.busy = True
            try:
                self._spend(link, len(message))
                self.bus.publish(link.subject, message)
                self.sent[link.subject] += 1
                self.sent_bytes[link.subject] += len(message)
                lat = self.latency_s.setdefault(link.subject, [])
                lat.append(time.monotonic() - queued_at)
                if len(lat) > 10_000:
                    del lat[:5_000]
            except Exception as exc:  # noqa: BLE001 - a failed publish is counted; newer states follow
                self.errors[link.subject] += 1
                log.warning("outbox %s: publish failed: %s", link.subject, exc)
            finally:
                link.busy = False

    def _spend(self, link: _Link, n: int) -> None:
        """Token bucket: wait until ``n`` bytes fit the subject's budget (burst: one second)."""
        rate = self._budget(link.subject)
        if rate is None:
            return
        while True:
            now = time.monotonic()
            link.tokens = min(rate, link.tokens + (now - link.last_refill) * rate)
            link.last_refill = now
            if link.tokens >= min(n, rate) or self._closed:
                link.tokens -= n
                return
            time.sleep(min((min(n, rate) - link.tokens) / rate, 0.5))
