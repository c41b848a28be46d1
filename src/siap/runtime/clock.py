"""Clocks of the runtime: what "now" is, and how the loop waits for the next event.

* :class:`VirtualClock`: time jumps from event to event as fast as the CPU allows. A run is a
  pure function of its inputs (same scenario and seed, same pictures, bit for bit): used by
  ``siap demo``, the benches and the tests.
* :class:`ReplayClock`: scenario time runs at ``speed`` times the wall clock from a start time
  (a recording or a simulated scenario replayed at xN).
* :class:`RealTimeClock`: a replay clock at x1 whose time is the Unix time of the wall clock
  (live feeds, whose plots carry real times).

All clocks take ``pause()``, ``resume()``, ``set_speed(x)`` and ``seek(time_s)`` from any
thread; the runtime's loop calls :meth:`Clock.wait_until`, which returns early (False) when
the clock is interrupted (a seek, a stop) so the loop can look at what changed. A clock that
falls behind (the CPU cannot keep up) never sleeps: the loop runs every due event at once and
catches up; a seek forward makes every event up to the new time due at once (fast-forward).
"""

from __future__ import annotations

import math
import threading
import time

__all__ = ["Clock", "RealTimeClock", "ReplayClock", "VirtualClock"]


class Clock:
    """Common controls: pause/resume, speed, seek, interrupt. Thread-safe."""

    realtime = False

    def __init__(self, speed: float = 1.0) -> None:
        self._cond = threading.Condition()
        self._speed = _check_speed(speed)
        self._paused = False
        self._interrupts = 0  # bumped by interrupt(); a waiter returns False when it changes
        self._now = -math.inf

    # -- state seen by the runtime -------------------------------------------------------
    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self, time_s: float) -> None:
        """Set the clock to ``time_s`` (the start of a run)."""
        with self._cond:
            self._set(float(time_s))

    def now(self) -> float:
        with self._cond:
            return self._get()

    # -- controls ------------------------------------------------------------------------
    def pause(self) -> None:
        with self._cond:
            if not self._paused:
                self._now = self._get()
                self._paused = True
                self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            if self._paused:
                self._paused = False
                self._set(self._now)
                self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        with self._cond:
            now = self._get()
            self._speed = _check_speed(speed)
            self._set(now)
            self._cond.notify_all()

    def seek(self, time_s: float) -> None:
        """Move the clock to ``time_s`` (the runtime decides how to get its state there)."""
        with self._cond:
            self._set(float(time_s))
            self._interrupts += 1
            self._cond.notify_all()

    def interrupt(self) -> None:
        """Wake a waiting loop (it returns False from :meth:`wait_until`)."""
        with self._cond:
            self._interrupts += 1
            self._cond.notify_all()

    def wait_until(self, time_s: float) -> bool:
        """Block until the clock reaches ``time_s`` (and is not paused): True; False if
        interrupted meanwhile (seek, stop)."""
        with self._cond:
            mark = self._interrupts
            while True:
                if self._interrupts != mark:
                    return False
                if not self._paused:
                    now = self._get()
                    if now >= time_s:
                        return True
                    if not self.realtime:  # virtual: time jumps to the event
                        self._set(time_s)
                        return True
                    self._cond.wait(timeout=min((time_s - now) / self._speed, 0.5))
                else:
                    self._cond.wait(timeout=0.5)

    # -- time keeping (called with the lock held) ---------------------------------------
    def _get(self) -> float:
        return self._now

    def _set(self, time_s: float) -> None:
        self._now = time_s


class VirtualClock(Clock):
    """Time jumps to each event: as fast as the CPU allows, deterministic. ``speed`` is
    recorded but has no effect; pause holds the loop between two events."""


class ReplayClock(Clock):
    """Scenario time runs at ``speed`` x the wall clock.

    ``wall_anchor_s``: the Unix wall time at which the scenario's start time is reached; by
    default the moment :meth:`start` is called. Processes that share an anchor (the NATS
    nodes) see the same scenario time at the same wall time.
    """

    realtime = True

    def __init__(self, speed: float = 1.0, wall_anchor_s: float | None = None) -> None:
        super().__init__(speed)
        self._wall_anchor_s = wall_anchor_s
        self._anchor_wall = time.monotonic()
        self._anchor_time = -math.inf  # not started

    def start(self, time_s: float) -> None:
        with self._cond:
            self._set(float(time_s))
            if self._wall_anchor_s is not None:  # scenario start <-> that wall time
                self._anchor_wall = time.monotonic() - (time.time() - self._wall_anchor_s)

    def _get(self) -> float:
        if self._paused:
            return self._now
        return self._anchor_time + (time.monotonic() - self._anchor_wall) * self._speed

    def _set(self, time_s: float) -> None:
        self._now = time_s
        self._anchor_time = time_s
        self._anchor_wall = time.monotonic()


class RealTimeClock(ReplayClock):
    """The wall clock's Unix time, at x1 unless told otherwise (live feeds). A run started
    with ``start(t)`` starts at the wall clock's time, not ``t``."""

    def start(self, time_s: float) -> None:
        with self._cond:
            self._set(time.time())


def _check_speed(speed: float) -> float:
    speed = float(speed)
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"clock speed: expected a finite number > 0, got {speed}")
    return speed
