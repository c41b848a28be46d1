"""Moving signed messages between coalition nodes.

:class:`InProcessBus` is the embedded default (no server needed): subjects, ordered delivery,
and counters that let tests check that no message is lost or duplicated.
"""

from collections import Counter
from typing import Protocol

from .inprocess import InProcessBus
from .nats import NatsBus, TransportError  # NATS JetStream bus; nats-py is imported lazily

__all__ = ["InProcessBus", "MessageBus", "NatsBus", "TransportError"]


class MessageBus(Protocol):
    """What a coalition run needs of a transport (InProcessBus and NatsBus both are one)."""

    published: Counter[str]
    delivered: Counter[str]

    def subscribe(self, subject: str) -> None: ...
    def publish(self, subject: str, message: bytes) -> None: ...
    def drain(self, subject: str) -> list[bytes]: ...
    def requeue(self, subject: str, message: bytes) -> None: ...
