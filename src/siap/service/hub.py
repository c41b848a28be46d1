"""The picture hub: the service's :class:`~siap.picture.PictureSink`.

The runtime calls :meth:`PictureHub.on_picture` on its own thread; the hub only parks the
picture in a one-slot mailbox per partner and wakes its worker, so the pipeline is never
delayed. The worker thread turns the newest picture of each partner into a :class:`View`:

1. keep the partner's own coalition picture only (other kinds are counted and ignored);
2. filter it again with ``Picture.releasable_to(partner, policy)`` (defence in depth: rows
   not releasable to the partner never reach its clients; ``withheld`` counts them);
3. keep confirmed and coasting tracks (what a display shows);
4. encode each track once (:func:`siap.service.tracks.encode_tracks`) to JSON text;
5. diff against the previous view: added / changed / removed track ids, and pre-render the
   ``delta`` frame (from the previous view) and the ``full`` frame, shared by every client;
6. append each track's position to its bounded history (trails, ``/history``);
7. publish the view and wake the subscribers of that partner.

A subscriber (one WebSocket client) is told only *that* something new exists; it fetches the
latest view when it is ready to send, so a slow client skips intermediate views and never
holds memory for them (see ``siap.service.app``). When pictures arrive faster than the worker
encodes, intermediate pictures are skipped too (``skipped`` counts them) and their positions
are missing from the history.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from siap.picture import Picture
from siap.service.tracks import Identifier, encode_tracks

__all__ = ["PictureHub", "View", "Subscription"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    """What one partner's clients are shown at one time (immutable, shared by every client)."""

    partner: str
    seq: int  # 1, 2, ... per partner; restarts the diff chain when ``reset``
    time_s: float
    picture: Picture  # the releasable, displayed picture (confirmed + coasting)
    tracks: dict[str, dict]  # id -> encoded track
    texts: dict[str, str]  # id -> JSON text of the encoded track
    full_text: str  # the "full" frame
    delta_text: str  # the "delta" frame from view seq - 1
    received_s: float  # time.perf_counter() when the picture arrived (latency measurement)
    withheld: int  # rows of the incoming picture not releasable to the partner
    reset: bool = False  # time went backwards (seek): clients get a full frame


def _frame(kind: str, partner: str, seq: int, time_s: float, **parts: str) -> str:
    head = f'{{"seq":{seq},"type":"{kind}","partner":"{partner}","time_s":{json.dumps(time_s)}'
    return head + "".join(f',"{k}":{v}' for k, v in parts.items()) + "}"


def _array(texts) -> str:
    return "[" + ",".join(texts) + "]"


def delta_frame(partner: str, seq: int, time_s: float, base_seq: int, old: dict[str, str], new: dict[str, str]) -> str:
    """The delta frame taking a client holding ``old`` (id -> JSON text) to ``new``."""
    added = [t for k, t in new.items() if k not in old]
    changed = [t for k, t in new.items() if k in old and old[k] is not t and old[k] != t]
    removed = [json.dumps(k) for k in old if k not in new]
    return _frame(
        "delta", partner, seq, time_s,
        base_seq=str(base_seq), added=_array(added), changed=_array(changed), removed=_array(removed),
    )


@dataclass
class Subscription:
    """One subscriber of a partner's views: ``notify`` is called (from the hub's worker) when
    a new view exists; it must not block (e.g. ``loop.call_soon_threadsafe(event.set)``)."""

    partner: str
    notify: Callable[[], None]
    id: int = field(default=0)


class PictureHub:
    """Latest picture per partner, bounded history per track, fan-out to subscribers."""

    def __init__(self, policy, partners, *, identifier: Identifier | None = None, history_points: int = 120) -> None:
        self.policy = policy
        self.partners = tuple(partners)
        self.identifier = identifier or Identifier()
        self.history_points = int(history_points)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Picture, float]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._views: dict[str, View] = {}
        self._history: dict[str, dict[str, deque]] = {p: {} for p in self.partners}
        self._subs: dict[int, Subscription] = {}
        self._next_sub = 1
        self._thread: threading.Thread | None = None
        self._view_listeners: list[Callable[[View], None]] = []
        self.counts = {"received": 0, "ignored": 0, "skipped": 0, "views": 0, "withheld_rows": 0, "errors": 0}

    # --- the sink --------------------------------------------------------------------------
    def on_picture(self, picture: Picture) -> None:
        """Park the newest picture of its partner and wake the worker; O(1), never blocks on
        clients. Pictures of another kind than ``coalition`` or of an unknown partner are
        counted (``ignored``) and dropped."""
        if picture.kind != "coalition" or picture.partner not in self._history:
            with self._lock:
                self.counts["ignored"] += 1
            return
        with self._lock:
            self.counts["received"] += 1
            if picture.partner in self._pending:
                self.counts["skipped"] += 1
            self._pending[picture.partner] = (picture, time.perf_counter())
        self._wake.set()

    # --- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="siap-picture-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            self.process_pending()

    def process_pending(self) -> int:
        """Turn every parked picture into a view (the worker's step; callable directly in
        tests without the thread). Returns the number of views made."""
        with self._lock:
            pending, self._pending = self._pending, {}
        made = 0
        for picture, received in pending.values():
            try:
                self._publish(self._make_view(picture, received))
                made += 1
            except Exception:  # one bad picture must not stop the stream
                log.exception("picture hub: could not build the view of %r", picture)
                with self._lock:
                    self.counts["errors"] += 1
        return made

    # --- views ------------------------------------------------------------------------------
    def _make_view(self, picture: Picture, received_s: float) -> View:
        partner = picture.partner
        releasable = picture.releasable_to(partner, self.policy)
        withheld = len(picture) - len(releasable)
        shown = releasable.confirmed()
        encoded = encode_tracks(shown.tracks, self.identifier)
        tracks = {t["id"]: t for t in encoded}
        texts = {k: orjson.dumps(t).decode() for k, t in tracks.items()}  # ~10x json.dumps
        prev = self._views.get(partner)
        reset = prev is not None and picture.time_s < prev.time_s
        seq = (prev.seq + 1) if prev is not None else 1
        t = float(picture.time_s)
        full_text = _frame("full", partner, seq, t, tracks=_array(texts.values()))
        if prev is None or reset:
            delta_text = full_text
        else:
            delta_text = delta_frame(partner, seq, t, prev.seq, prev.texts, texts)
        self._record_history(partner, tracks, reset)
        return View(partner, seq, t, shown, tracks, texts, full_text, delta_text, received_s, withheld, reset)

    def _record_history(self, partner: str, tracks: dict[str, dict], reset: bool) -> None:
        hist = self._history[partner]
        if reset:
            hist.clear()
        for tid in [k for k in hist if k not in tracks]:
            del hist[tid]  # a dropped track's history goes with it
        for tid, tr in tracks.items():
            dq = hist.get(tid)
            if dq is None:
                dq = hist[tid] = deque(maxlen=self.history_points)
            dq.append((tr["t"], tr["lat"], tr["lon"], tr["alt_m"]))

    def _publish(self, view: View) -> None:
        with self._lock:
            self._views[view.partner] = view
            self.counts["views"] += 1
            self.counts["withheld_rows"] += view.withheld
            subs = [s for s in self._subs.values() if s.partner == view.partner]
            listeners = list(self._view_listeners)
        for s in subs:
            try:
                s.notify()
            except Exception:  # a closed event loop: that client is gone
                log.debug("picture hub: notify failed for subscriber %d", s.id)
        for fn in listeners:
            fn(view)

    # --- queries ----------------------------------------------------------------------------
    def view(self, partner: str) -> View | None:
        """The latest view of ``partner`` (None before its first picture)."""
        with self._lock:
            return self._views.get(partner)

    def history(self, partner: str, track_id: str) -> list[tuple] | None:
        """(time_s, lat_deg, lon_deg, alt_m) of a shown track, oldest first; None if not held."""
        with self._lock:
            dq = self._history.get(partner, {}).get(track_id)
            return list(dq) if dq is not None else None

    def trails(self, partner: str, max_points: int | None = None) -> dict[str, list[tuple]]:
        """Every shown track's recent positions (see :meth:`history`)."""
        with self._lock:
            hist = self._history.get(partner, {})
            n = max_points or self.history_points
            return {tid: list(dq)[-n:] for tid, dq in hist.items()}

    def subscribe(self, partner: str, notify: Callable[[], None]) -> Subscription:
        with self._lock:
            sub = Subscription(partner, notify, self._next_sub)
            self._subs[sub.id] = sub
            self._next_sub += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(sub.id, None)

    def add_view_listener(self, fn: Callable[[View], None]) -> None:
        """Call ``fn(view)`` on the worker thread after each view is published (benchmarks)."""
        with self._lock:
            self._view_listeners.append(fn)

    @property
    def n_subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def ready(self) -> bool:
        """True once every partner has a view."""
        with self._lock:
            return all(p in self._views for p in self.partners)

