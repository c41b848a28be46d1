"""A local coalition network for tests: keys, TLS certificates, one NATS server per partner
site (JetStream cluster, one account per partner) written by ``siap.nodes.up.write_network``,
servers and node processes started and stopped by PID (loopback only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from siap.nodes.network import inbound_subjects, nats_server_binary, site_tag, wait_for_port
from siap.nodes.up import node_argv, write_network

SRC = str(Path(__file__).resolve().parents[1] / "src")


class LocalNetwork:
    def __init__(self, root: Path, scenario: str = "pacific", policy: str = "pacific", **kwargs) -> None:
        kwargs.setdefault("speed", 1000.0)
        kwargs.setdefault("start_delay_s", 0.0)
        self.root = root
        self.net = write_network(scenario, policy, root, cop=False, **kwargs)
        self.servers: dict[str, subprocess.Popen] = {}
        self.nodes: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}

    # -- servers
    def start_server(self, partner: str) -> None:
        site = self.site(partner)
        log = open(self.root / f"nats-{partner}.log", "ab")
        self.servers[partner] = subprocess.Popen([nats_server_binary(), "-c", str(self.net.server_configs[partner])],
                                                 stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(site.port, proc=self.servers[partner])

    def start_servers(self) -> LocalNetwork:
        for s in self.net.sites:
            self.start_server(s.partner)
        return self

    def kill_server(self, partner: str) -> None:
        proc = self.servers.pop(partner)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def site(self, partner: str):
        return next(s for s in self.net.sites if s.partner == partner)

    # -- clients
    def bus(self, partner: str, site: str | None = None, **kwargs):
        """A NatsBus with ``partner``'s credentials, connected to ``site``'s server (default
        the partner's own)."""
        from siap.transport import NatsBus

        url = self.site(site or partner).url
        kwargs.setdefault("durable_prefix", f"test-{partner}")
        kwargs.setdefault("deliver_new", False)
        kwargs.setdefault("unreachable_timeout_s", 30.0)
        kwargs.setdefault("subjects", inbound_subjects(partner))
        kwargs.setdefault("placement_tags", [site_tag(partner)])
        return NatsBus(url, user=partner, password=self.net.passwords[partner], tls_ca_file=str(self.net.ca_file),
                       **kwargs)

    # -- nodes
    def config(self, name: str, **changes) -> Path:
        """The node configuration ``name`` (``partner-JPN``), with ``changes`` written to a copy."""
        path = self.net.node_configs[name]
        if not changes:
            return path
        cfg = yaml.safe_load(path.read_text())
        cfg.update(changes)
        tag = changes.get("consumer", "x")
        new = path.with_name(f"{name}-{tag}.yaml")
        new.write_text(yaml.safe_dump(cfg))
        return new

    def start(self, key: str, config: Path) -> subprocess.Popen:
        role = yaml.safe_load(config.read_text())["role"]
        log = open(self.root / f"{key}.log", "ab")
        self.nodes[key] = subprocess.Popen(node_argv(config, role), stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self.nodes[key]

    def wait(self, key: str, timeout_s: float = 240.0) -> int:
        try:
            rc = self.nodes[key].wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"node {key} did not finish in {timeout_s:g} s: {self.log_tail(key)}")
        if rc != 0:
            pytest.fail(f"node {key} exited with {rc}: {self.log_tail(key)}")
        return rc

    def log_tail(self, key: str) -> str:
        return (self.root / f"{key}.log").read_text()[-1500:]

    def close(self) -> None:
        for proc in [*self.nodes.values(), *self.servers.values()]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def summary(state_dir: Path) -> dict:
    return json.loads((state_dir / "summary.json").read_text())


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)


PY = sys.executable


class TcpProxy:
    """A loopback TCP forwarder that a test can cut (every connection closed, new ones refused)
    and restore: a network link between a site's nodes and its server."""

    def __init__(self, upstream_port: int) -> None:
        import socket
        import threading

        self.upstream = upstream_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.cut_now = False
        self.conns: list = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.cut_now:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        import socket

        self.cut_now = True
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.cut_now = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.sock.close()
