"""Shared pieces of the service tests: a real (short) coalition run to replay, and a uvicorn
server on a free loopback port in a thread."""

from __future__ import annotations

import functools
import socket
import threading
import time

import numpy as np
import uvicorn

from siap.pipeline import evaluation_times, tracker_config_for


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.lru_cache(maxsize=1)
def coalition_run(duration_s: float = 30.0):
    """(CoalitionResult, policy, SimulationResult) of the pacific scenario over ``duration_s``
    (pictures every 5 s)."""
    from siap.coalition import run_coalition
    from siap.scenario import load_scenario
    from siap.sharing.policy import load_policy
    from siap.simulation import simulate

    sc = load_scenario("pacific").model_copy(update={"duration_s": duration_s})
    sim = simulate(sc)
    policy = load_policy("pacific")
    times = evaluation_times(sim.truth, 5.0)
    coal = run_coalition(
        sim.plots, policy, times,
        origin=(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m),
        sensor_ids=[s.id for s in sim.sensors], tracker_config=tracker_config_for(sc), centralised=False,
    )
    return coal, policy, sim


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws_per_message_deflate=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def wait_for(predicate, timeout_s: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value (returned); AssertionError on timeout.
    (A bound on waiting for an event, not a speed assertion.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def restricted_rows(rows: np.ndarray, label: str, every: int = 5) -> np.ndarray:
    """A copy of ``rows`` with every ``every``-th track relabelled ``label``."""
    out = rows.copy()
    ids = np.unique(out["track_id"])[::every]
    out["label"][np.isin(out["track_id"], ids)] = label
    return out
