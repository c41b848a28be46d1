"""Moving signed messages between coalition nodes.

:class:`InProcessBus` is the embedded default (no server needed): subjects, ordered delivery,
and counters that let tests check that no message is lost or duplicated.
"""

from .inprocess import InProcessBus
from .nats import NatsBus, TransportError  # noqa: F401  (NATS JetStream bus; nats-py imported lazily)

__all__ = ["InProcessBus"]
