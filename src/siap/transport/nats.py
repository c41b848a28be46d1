"""A NATS JetStream bus with the synchronous interface of :class:`~siap.transport.InProcessBus`.

Coalition nodes in separate processes (or machines) exchange signed envelopes through a
JetStream stream instead of the embedded bus. See docs/transport.md for the whole picture.

* **Stream**: one file-backed stream (default ``SIAP``) over ``siap.>``, limits retention, a
  duplicate window (default 120 s). A restarted server recovers it from its store dir.
* **Publish**: a JetStream publish that waits for the stream's ack. Every message carries the
  ``Nats-Msg-Id`` header ``sha256(subject NUL message)``, so a publish retried after a lost ack
  (or while the server restarts) is stored once: at-least-once publication plus server-side
  de-duplication gives effectively-once storage within the duplicate window.
* **Subscribe**: one durable pull consumer per subject (explicit ack, filter = the subject).
  A consumer that already exists is resumed where it was acknowledged, so a restarted node
  process continues; a new one starts with the messages published after it was created (as
  :meth:`InProcessBus.subscribe <siap.transport.InProcessBus.subscribe>`).
* **Drain**: asks the consumer how many messages are pending, fetches exactly those (bounded by
  ``wait_s``), hands them out in stream order and acknowledges them. Each bus remembers the last
  stream sequence it handed out per subject and drops anything at or below it (a redelivery
  after a server crash lost the consumer's ack state); after a reconnect the consumer is
  re-positioned just after that sequence, so a fetch reply lost in the outage is fetched again
  instead of being redelivered out of order after the ack wait.
* **Failures**: while the server is unreachable, publish and drain wait for the client to
  reconnect (nats-py reconnects forever in the background) and retry with exponential backoff,
  counting retries in :attr:`NatsBus.retries`; past ``unreachable_timeout_s`` they raise
  :class:`TransportError` (one line).

nats-py's asyncio client runs on an event loop in a daemon thread owned by the bus; the public
methods submit coroutines to it and wait, so the synchronous coalition loop can call them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from siap.errors import SiapError

log = logging.getLogger(__name__)

__all__ = ["NatsBus", "TransportError", "message_id", "durable_name"]

T = TypeVar("T")

MSG_ID_HEADER = "Nats-Msg-Id"
FETCH_BATCH = 64  # messages per fetch request (64 x 1 MiB max_payload stays in nats-py's limits)


class TransportError(SiapError):
    """The message transport failed: server unreachable beyond the configured time, a message
    too large for the server, or a stream/consumer the server refused. One line."""

    exit_code = 3


def message_id(subject: str, message: bytes) -> str:
    """The de-duplication id of ``message`` on ``subject`` (``Nats-Msg-Id`` header): hex SHA-256
    of ``subject NUL message``. Identical bytes on the same subject are the same message."""
    h = hashlib.sha256(subject.encode("utf-8"))
    h.update(b"\0")
    h.update(message)
    return h.hexdigest()


_DURABLE_BAD = re.compile(r"[^A-Za-z0-9_-]")


def durable_name(prefix: str, subject: str) -> str:
    """Durable consumer name for ``subject``: ``PREFIX_sub_ject_HASH8`` (JetStream names may not
    contain ``.``, ``*``, ``>`` or spaces; the hash keeps ``a.b_c`` and ``a_b.c`` apart)."""
    tag = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:8]
    return f"{_DURABLE_BAD.sub('_', prefix)}_{_DURABLE_BAD.sub('_', subject)}_{tag}"


@dataclass
class _Sub:
    subject: str
    durable: str
    psub: Any  # nats.js.JetStreamContext.PullSubscription
    last_seq: int = 0  # last stream sequence handed out by this bus
    needs_reset: bool = False


class NatsBus:
    """Publish/subscribe on exact subjects through a NATS JetStream stream (synchronous API).

    Parameters
    ----------
    url:
        NATS server URL, e.g. ``nats://127.0.0.1:4222``.
    stream:
        JetStream stream name; created (file storage) if missing.
    subjects:
        Subjects the stream captures when it is created (added to an existing stream if missing).
    durable_prefix:
        Prefix of the durable consumer names (one consumer per subscribed subject).
    connect_timeout_s:
        Timeout of one TCP/NATS connection attempt.
    unreachable_timeout_s:
        How long publish, drain, subscribe and the initial connection keep retrying while the
        server cannot be reached before raising :class:`TransportError`.
    ack_timeout_s:
        How long one publish waits for the stream's ack before retrying.
    backoff_s, max_backoff_s:
        First and largest pause between retries (doubling).
    duplicate_window_s, max_age_s, max_bytes:
        Stream limits used when the stream is created.
    deliver_new:
        A newly created consumer starts after the last stored message (True, like
        ``InProcessBus.subscribe``) or at the beginning of the stream (False).
    ack_wait_s:
        Server redelivery delay of an unacknowledged message.
    name:
        Client connection name (shown by the server's monitoring).
    user, password:
        Credentials of the connection (a partner's account user on an isolated network).
    tls_ca_file:
        Verify the server's TLS certificate against this CA (PEM); use a ``tls://`` URL.
    placement_tags, replicas:
        Where a newly created stream lives in a cluster (server tags, e.g. ``site:JPN``) and
        how many servers hold a copy of it.
    """

    def __init__(
        self,
        url: str,
        stream: str = "SIAP",
        *,
        subjects: Iterable[str] = ("siap.>",),
        durable_prefix: str = "siap",
        connect_timeout_s: float = 2.0,
        unreachable_timeout_s: float = 30.0,
        ack_timeout_s: float = 2.0,
        backoff_s: float = 0.05,
        max_backoff_s: float = 1.0,
        duplicate_window_s: float = 120.0,
        max_age_s: float = 24 * 3600.0,
        max_bytes: int = 1 << 30,
        deliver_new: bool = True,
        ack_wait_s: float = 30.0,
        name: str | None = None,
        user: str | None = None,
        password: str | None = None,
        tls_ca_file: str | None = None,
        placement_tags: Iterable[str] = (),
        replicas: int = 1,
    ) -> None:
        try:
            import nats  # noqa: F401  (nats-py; imported lazily so siap.transport stays light)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise TransportError("NatsBus needs the nats-py package: pip install nats-py") from exc
        self.url = url
        self.stream = stream
        self.subjects = list(subjects)
        self.durable_prefix = durable_prefix
        self.connect_timeout_s = float(connect_timeout_s)
        self.unreachable_timeout_s = float(unreachable_timeout_s)
        self.ack_timeout_s = float(ack_timeout_s)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.duplicate_window_s = float(duplicate_window_s)
        self.max_age_s = float(max_age_s)
        self.max_bytes = int(max_bytes)
        self.deliver_new = bool(deliver_new)
        self.ack_wait_s = float(ack_wait_s)
        self.name = name or f"siap-{uuid.uuid4().hex[:8]}"
        self.user = user
        self.password = password
        self.tls_ca_file = tls_ca_file
        self.placement_tags = list(placement_tags)
        self.replicas = int(replicas)

        self.published: Counter[str] = Counter()  # publish calls acknowledged by the stream
        self.delivered: Counter[str] = Counter()  # messages handed out by drain
        self.duplicates: Counter[str] = Counter()  # publishes the stream reported as duplicates
        self.redelivered: Counter[str] = Counter()  # redeliveries dropped by drain (seen before)
        self.retries: Counter[str] = Counter()  # publish/drain attempts retried, per subject
        self.reconnects = 0
        self.disconnects = 0

        self._subs: dict[str, _Sub] = {}
        self._epoch = 0  # moves on every disconnect and reconnect
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        self._connected: asyncio.Event | None = None
        self._nc: Any = None
        self._js: Any = None
        try:
            self._run(self._connect())
        except BaseException:
            self._stop_loop()
            raise

    # ------------------------------------------------------------------ synchronous API
    def subscribe(self, subject: str) -> None:
        """Create (or resume) the durable pull consumer of ``subject``."""
        self._check_open()
        if subject not in self._subs:
            self._run(self._subscribe(subject))

    def unsubscribe(self, subject: str, *, delete_consumer: bool = False) -> None:
        """Stop pulling ``subject``; with ``delete_consumer`` also delete its durable consumer
        (messages not yet drained are then no longer kept for it)."""
        self._check_open()
        sub = self._subs.pop(subject, None)
        if sub is not None:
            self._run(self._unsubscribe(sub, delete_consumer))

    def publish(self, subject: str, message: bytes) -> None:
        """Store ``message`` on ``subject`` in the stream, waiting for the stream's ack; retried
        (same ``Nats-Msg-Id``, so never stored twice) until ``unreachable_timeout_s``."""
        self._check_open()
        data = bytes(message)
        ack = self._run(self._publish(subject, data, message_id(subject, data)))
        self.published[subject] += 1
        if ack.duplicate:
            self.duplicates[subject] += 1

    def requeue(self, subject: str, message: bytes) -> None:
        """Put ``message`` in flight on ``subject`` without counting a publication and with a
        fresh message id, so that an exact replay is *not* de-duplicated by the server (tests
        that play an attacker on the link need replays to reach the verifier)."""
        self._check_open()
        data = bytes(message)
        self._run(self._publish(subject, data, f"requeue-{uuid.uuid4().hex}"))

    def drain(self, subject: str, wait_s: float = 2.0, min_messages: int = 0) -> list[bytes]:
        """Every message stored on ``subject`` that this subject's consumer has not handed out
        yet, oldest first; acknowledged before returning.

        Fetching stops when what was pending at the call has arrived or after ``wait_s``
        (whatever is left comes with the next drain). With ``min_messages`` > 0 it also waits up
        to ``wait_s`` for that many messages to be published. Subscribes first if needed.
        """
        self._check_open()
        if subject not in self._subs:
            self._run(self._subscribe(subject))
        out = self._run(self._drain(self._subs[subject], float(wait_s), int(min_messages)))
        self.delivered[subject] += len(out)
        return out

    def position(self, subject: str) -> int:
        """The stream sequence of the last message :meth:`drain` handed out on ``subject``
        (0 before any); a node's snapshot records it to :meth:`rewind` to after a restart."""
        sub = self._subs.get(subject)
        return 0 if sub is None else sub.last_seq

    def rewind(self, subject: str, after_seq: int) -> None:
        """Deliver ``subject`` again from just after stream sequence ``after_seq``, whatever
        was acknowledged since (a node restored from a snapshot taken at ``after_seq`` re-reads
        what it had drained but not yet applied)."""
        self._check_open()
        if subject not in self._subs:
            self._run(self._subscribe(subject))
        sub = self._subs[subject]
        sub.last_seq = int(after_seq)
        self._run(self._reset(sub, from_last=True))

    def pending(self, subject: str) -> int:
        """Messages stored on ``subject`` not yet delivered to its consumer."""
        self._check_open()
        if subject not in self._subs:
            self._run(self._subscribe(subject))
        info = self._run(self._retrying(subject, "consumer info", lambda: self._subs[subject].psub.consumer_info()))
        return int(info.num_pending or 0)

    def close(self) -> None:
        """Flush and close the connection and stop the event-loop thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._nc is not None:
                self._run(self._close(), timeout=self.connect_timeout_s + 5.0)
        except Exception as exc:  # closing a connection to a dead server must not fail
            log.debug("closing NATS connection: %s", exc)
        finally:
            self._stop_loop()

    def __enter__(self) -> NatsBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"NATS bus {self.url}: used after close()")

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:  # would wait on itself forever
            coro.close()
            raise RuntimeError("NatsBus methods cannot be called from its own event-loop thread")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            try:  # let nats-py's reader/flusher/subscription tasks end before the loop closes
                self._run(self._cancel_tasks(), timeout=5.0)
            except Exception as exc:
                log.debug("cancelling NATS tasks: %s", exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._loop.is_running():
            self._loop.close()

    def _unreachable(self, what: str, attempts: int, exc: BaseException | None) -> TransportError:
        why = f" (last error: {type(exc).__name__}{': ' + str(exc) if str(exc) else ''})" if exc else ""
        why = why.replace("\n", " ")
        return TransportError(
            f"NATS server {self.url} unreachable for {self.unreachable_timeout_s:g} s: {what} "
            f"failed after {attempts} attempt(s){why}; is nats-server running with -js?"
        )

    async def _connect(self) -> None:
        import nats

        self._connected = asyncio.Event()

        async def on_disconnect() -> None:
            self.disconnects += 1
            self._epoch += 1
            self._connected.clear()
            if not self._closed:
                log.warning("NATS %s: disconnected", self.url)

        async def on_reconnect() -> None:
            self.reconnects += 1
            self._epoch += 1
            for sub in self._subs.values():
                sub.needs_reset = True
            self._connected.set()
            log.warning("NATS %s: reconnected", self.url)

        async def on_error(exc: Exception) -> None:
            log.debug("NATS %s: %s", self.url, exc)

        extra: dict[str, Any] = {}
        if self.user is not None:
            extra.update(user=self.user, password=self.password)
        if self.tls_ca_file is not None:
            import ssl

            extra["tls"] = ssl.create_default_context(cafile=self.tls_ca_file)
        connect = nats.connect(
            servers=[self.url],
            **extra,
            name=self.name,
            connect_timeout=self.connect_timeout_s,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=min(self.max_backoff_s, 0.25),
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            error_cb=on_error,
        )
        try:
            self._nc = await asyncio.wait_for(connect, self.unreachable_timeout_s)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise self._unreachable("connecting", 1, exc) from None
        self._connected.set()
        self._js = self._nc.jetstream(timeout=self.ack_timeout_s)
        await self._retrying("", "stream setup", self._ensure_stream)

    async def _ensure_stream(self) -> None:
        from nats.js import api
        from nats.js.errors import NotFoundError

        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            cfg = api.StreamConfig(
                name=self.stream,
                subjects=self.subjects,
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.OLD,
                duplicate_window=self.duplicate_window_s,
                max_age=self.max_age_s,
                max_bytes=self.max_bytes,
                num_replicas=self.replicas,
                placement=api.Placement(tags=self.placement_tags) if self.placement_tags else None,
            )
            await self._js.add_stream(cfg)
            return
        have = list(info.config.subjects or [])
        missing = [s for s in self.subjects if s not in have]
        if missing:
            info.config.subjects = have + missing
            await self._js.update_stream(info.config)

    async def _retrying(self, subject: str, what: str, attempt_fn) -> Any:
        """Run ``attempt_fn()`` until it succeeds, retrying transient failures (server away,
        JetStream not ready, request timed out) with backoff until ``unreachable_timeout_s``."""
        import nats
        from nats.js import errors as jse

        transient: tuple[type[BaseException], ...] = (
            asyncio.TimeoutError,
            nats.errors.NoRespondersError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.StaleConnectionError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.FlushTimeoutError,
            jse.NoStreamResponseError,
            jse.ServiceUnavailableError,
            jse.ServerError,
            OSError,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unreachable_timeout_s
        attempts = 0
        pause = self.backoff_s
        last: BaseException | None = None
        while True:
            if not self._nc.is_connected:  # publishing now would only fill nats-py's buffer
                self.retries[subject] += 1
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._unreachable(what, attempts, last)
                try:
                    await asyncio.wait_for(self._connected.wait(), remaining)
                except TimeoutError:
                    raise self._unreachable(what, attempts, last) from None
            attempts += 1
            try:
                return await attempt_fn()
            except nats.errors.ConnectionClosedError as exc:
                raise TransportError(f"NATS connection to {self.url} is closed: {what} on {subject or self.stream}") from exc
            except transient as exc:
                last = exc
            self.retries[subject] += 1
            if loop.time() + pause > deadline:
                raise self._unreachable(what, attempts, last)
            log.debug("NATS %s: %s on %s retry %d after %s", self.url, what, subject, attempts, last)
            await asyncio.sleep(pause)
            pause = min(pause * 2.0, self.max_backoff_s)

    async def _publish(self, subject: str, data: bytes, msg_id: str):
        import nats
        from nats.js import errors as jse

        if self._nc.max_payload and len(data) > self._nc.max_payload:
            raise TransportError(
                f"NATS {self.url}: message on {subject} is {len(data)} bytes; the server's "
                f"max_payload is {self._nc.max_payload} bytes"
            )

        async def attempt():
            return await self._js.publish(
                subject, data, timeout=self.ack_timeout_s, stream=self.stream, headers={MSG_ID_HEADER: msg_id}
            )

        try:
            return await self._retrying(subject, f"publish on {subject}", attempt)
        except jse.APIError as exc:
            raise TransportError(f"NATS {self.url}: stream {self.stream} refused a message on {subject}: {exc.description}") from None
        except (nats.errors.BadSubjectError, nats.errors.MaxPayloadError) as exc:
            raise TransportError(f"NATS {self.url}: cannot publish on {subject!r}: {type(exc).__name__}") from None

    def _consumer_config(self, subject: str, durable: str, start_seq: int | None):
        from nats.js import api

        if start_seq is not None:
            policy, opt = api.DeliverPolicy.BY_START_SEQUENCE, start_seq
        else:
            policy, opt = (api.DeliverPolicy.NEW if self.deliver_new else api.DeliverPolicy.ALL), None
        return api.ConsumerConfig(
            durable_name=durable,
            name=durable,
            filter_subject=subject,
            deliver_policy=policy,
            opt_start_seq=opt,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_ack_pending=-1,
        )

    async def _subscribe(self, subject: str) -> None:
        durable = durable_name(self.durable_prefix, subject)

        async def attempt():
            return await self._js.pull_subscribe(
                subject, durable=durable, stream=self.stream, config=self._consumer_config(subject, durable, None)
            )

        try:
            psub = await self._retrying(subject, f"subscribe to {subject}", attempt)
        except TransportError:
            raise
        except Exception as exc:
            raise TransportError(f"NATS {self.url}: cannot create consumer {durable} on stream {self.stream}: {exc}") from None
        self._subs[subject] = _Sub(subject, durable, psub)

    async def _unsubscribe(self, sub: _Sub, delete: bool) -> None:
        try:
            await sub.psub.unsubscribe()
        except Exception as exc:
            log.debug("unsubscribe %s: %s", sub.subject, exc)
        if delete:
            from nats.js.errors import NotFoundError

            try:
                await self._retrying(sub.subject, "delete consumer", lambda: self._js.delete_consumer(self.stream, sub.durable))
            except NotFoundError:
                pass

    async def _reset(self, sub: _Sub, from_last: bool = False) -> None:
        """Re-position the consumer just after what this bus has handed out (after a reconnect).

        A fetch reply lost while the connection was down leaves messages "delivered, unacked" on
        the server; they would come back only after ``ack_wait`` and behind newer ones. Recreating
        the durable at ``max(last handed out, ack floor) + 1`` fetches them again, in order.
        """
        from nats.js.errors import NotFoundError

        async def attempt():
            floor = 0
            try:
                info = await self._js.consumer_info(self.stream, sub.durable)
                floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
                await self._js.delete_consumer(self.stream, sub.durable)
            except NotFoundError:
                pass
            start = (sub.last_seq if from_last else max(sub.last_seq, floor)) + 1
            try:
                await sub.psub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe %s: %s", sub.subject, exc)
            sub.psub = await self._js.pull_subscribe(
                sub.subject, durable=sub.durable, stream=self.stream,
                config=self._consumer_config(sub.subject, sub.durable, start),
            )
            sub.needs_reset = False

        await self._retrying(sub.subject, f"re-position consumer of {sub.subject}", attempt)

    async def _drain(self, sub: _Sub, wait_s: float, min_messages: int) -> list[bytes]:
        """Fetch what is pending, hand it out in order, ack it.

        A fetch that overlapped a disconnect or reconnect (``_epoch`` moved) may have lost
        replies, leaving a gap: its messages are neither handed out nor acked, and the consumer
        is re-positioned after the last message handed out (:meth:`_reset`) and read again.
        """
        import nats

        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(wait_s, 0.0)
        out: list[bytes] = []
        acks = []
        poll = 0.01
        while True:
            if sub.needs_reset:
                await self._reset(sub)
            epoch = self._epoch
            info = await self._retrying(sub.subject, f"consumer info of {sub.subject}", sub.psub.consumer_info)
            want = int(info.num_pending or 0)
            batch = []
            while len(batch) < want and self._epoch == epoch:
                remaining = deadline - loop.time()
                try:
                    batch += await sub.psub.fetch(min(want - len(batch), FETCH_BATCH), timeout=max(remaining, 0.05))
                except TimeoutError:
                    if loop.time() >= deadline:
                        # replies to this fetch may still arrive (or be lost): start the next
                        # drain from what was handed out rather than rely on redelivery
                        sub.needs_reset = True
                        break
                except nats.errors.Error as exc:
                    if isinstance(exc, nats.errors.ConnectionClosedError):
                        raise TransportError(f"NATS connection to {self.url} is closed: drain {sub.subject}") from exc
                    self.retries[sub.subject] += 1
                    sub.needs_reset = True  # a reply may have been lost: fetch again from last_seq
                    break
            if self._epoch != epoch:  # the connection dropped meanwhile: fetch again after last_seq
                self.retries[sub.subject] += 1
                sub.needs_reset = True
                if loop.time() < deadline:
                    continue
                break
            for msg in batch:
                acks.append(msg)
                seq = int(msg.metadata.sequence.stream)
                if seq <= sub.last_seq:
                    self.redelivered[sub.subject] += 1
                    continue
                sub.last_seq = seq
                out.append(msg.data)
            if sub.needs_reset and len(batch) < want and loop.time() < deadline:
                continue
            if len(out) >= min_messages or loop.time() >= deadline:
                break
            await asyncio.sleep(poll)
            poll = min(poll * 2.0, 0.2)
        for msg in acks:
            try:
                await msg.ack()
            except nats.errors.Error as exc:  # unacked: redelivered later, dropped by last_seq
                log.debug("ack on %s: %s", sub.subject, exc)
        if acks:
            try:
                await self._nc.flush(timeout=max(self.ack_timeout_s, 0.1))
            except (TimeoutError, nats.errors.Error) as exc:
                log.debug("flush after acks on %s: %s", sub.subject, exc)
        return out

    @staticmethod
    async def _cancel_tasks() -> None:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self) -> None:
        try:
            await self._nc.flush(timeout=1)
        except Exception:
            pass
        await self._nc.close()
