"""An in-process message bus with NATS-like subjects (``siap.tracks.JPN``).

Messages are opaque bytes (signed envelopes); delivery is in publication order per subject.
A subscriber drains its subject with :meth:`InProcessBus.drain`.
"""

from __future__ import annotations

from collections import Counter, deque


class InProcessBus:
    """Publish/subscribe on exact subjects, in order, within one process."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[bytes]] = {}
        self.published: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()

    def subscribe(self, subject: str) -> None:
        """Start keeping messages published on ``subject`` (earlier ones are not kept)."""
        self._queues.setdefault(subject, deque())

    def publish(self, subject: str, message: bytes) -> None:
        """Queue ``message`` for the subscriber of ``subject`` (dropped if there is none)."""
        self.published[subject] += 1
        queue = self._queues.get(subject)
        if queue is not None:
            queue.append(bytes(message))

    def requeue(self, subject: str, message: bytes) -> None:
        """Put a message in flight on ``subject`` without counting a publication (used by tests
        that play an attacker on the link)."""
        queue = self._queues.get(subject)
        if queue is not None:
            queue.append(bytes(message))

    def drain(self, subject: str) -> list[bytes]:
        """Every message queued on ``subject`` since the last drain, oldest first."""
        queue = self._queues.get(subject)
        if not queue:
            return []
        out = list(queue)
        queue.clear()
        self.delivered[subject] += len(out)
        return out
