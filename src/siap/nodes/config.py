"""Node configuration files (YAML, validated by pydantic like scenarios).

One file per node process (``siap node ROLE --config FILE``)::

    role: partner              # gateway | partner | cop
    partner: JPN
    run: run42                 # subjects siap.run.run42.*
    scenario: pacific          # built-in name or file: sensors, origin, span (a partner node
    policy: pacific            #   does not simulate it; a gateway simulates its sensors only)
    key: keys/JPN-node.pem     # this node's private key (gateway and partner nodes)
    trust: keys/trust.yaml     # public keys of every node
    nats: {url: "tls://127.0.0.1:4222", user: JPN, password: "...", ca_file: tls/ca.pem}
    clock: {speed: 1.0, wall_start_s: 1764633600.0}
    update_period_s: 5.0       # partner node
    batch_s: 1.0               # gateway: seconds of plots per envelope
    state_dir: state/JPN       # snapshots (a restarted node resumes from them)
    duration_s: 600            # optional: stop this many scenario seconds after the start
    consumer: node-JPN         # optional: durable consumer prefix (default ROLE-PARTNER)
    link_budget_bytes_per_s: {USA: 20000}   # optional: releases over a budget are thinned
    cop: {port: 8080, service_config: service.yaml}   # cop node

A bad file raises :class:`siap.errors.ConfigError` with one line naming file, field and what was
expected (the CLI exits 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from siap.errors import ConfigError

__all__ = ["ClockSettings", "CopSettings", "NatsSettings", "NodeConfig", "load_node_config"]

ROLES = ("gateway", "partner", "cop")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NatsSettings(_Model):
    url: str = Field(pattern=r"^(nats|tls)://127\.0\.0\.1:\d{1,5}$", description="the partner site's server (loopback only)")
    user: str | None = Field(None, description="the partner account's user")
    password: str | None = None
    ca_file: Path | None = Field(None, description="CA that signed the server's TLS certificate")
    stream: str = Field("SIAP", pattern=r"^[A-Za-z0-9_-]{1,32}$")


class ClockSettings(_Model):
    speed: float = Field(1.0, gt=0, le=10_000, description="scenario seconds per wall second")
    wall_start_s: float | None = Field(None, gt=0, description="Unix wall time at which the scenario starts (shared)")


class CopSettings(_Model):
    host: Literal["127.0.0.1"] = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    service_config: Path = Field(description="the service configuration (tokens)")


class NodeConfig(_Model):
    role: Literal["gateway", "partner", "cop"]
    partner: str = Field(pattern=r"^[A-Z]{2,8}$")
    run: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    scenario: str
    policy: str
    nats: NatsSettings
    trust: Path
    key: Path | None = None
    clock: ClockSettings = ClockSettings()
    update_period_s: float = Field(5.0, gt=0, le=3600)
    batch_s: float = Field(1.0, gt=0, le=60)
    state_dir: Path | None = None
    duration_s: float | None = Field(None, gt=0, description="run only this many scenario seconds from its start")
    consumer: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$",
                                 description="durable consumer prefix (default ROLE-PARTNER)")
    link_budget_bytes_per_s: float | dict[str, float] | None = Field(
        None, description="partner node: bandwidth budget of its releases, per recipient or one for all (bytes/s)")
    cop: CopSettings | None = None
    # where the file came from (relative paths resolve against it); not part of the file
    source_path: Path | None = Field(None, exclude=True)

    @field_validator("scenario", "policy")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a built-in name or a file path")
        return v

    @property
    def durable_prefix(self) -> str:
        return self.consumer or f"{self.role}-{self.partner}"

    def end_s(self, scenario) -> float:
        """The run's end: the scenario's, or ``duration_s`` after its start."""
        end = scenario.end_time_s
        return end if self.duration_s is None else min(end, scenario.start_time_s + self.duration_s)

    @field_validator("link_budget_bytes_per_s")
    @classmethod
    def _budget(cls, v):
        values = v.values() if isinstance(v, dict) else [] if v is None else [v]
        if any(not (x > 0) for x in values):
            raise ValueError("bytes per second > 0")
        return v

    def resolve(self, path: Path | None) -> Path | None:
        if path is None or path.is_absolute() or self.source_path is None:
            return path
        return self.source_path.parent / path

    def ref(self, name: str) -> str:
        """A scenario/policy reference: a path relative to this file if such a file exists,
        else as written (a built-in name)."""
        p = self.resolve(Path(name))
        return str(p) if p is not None and p.exists() else name


def load_node_config(path: str | Path) -> NodeConfig:
    """Read and validate a node configuration; ConfigError (one line) if anything is wrong."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: (file): expected a readable node configuration (got {e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise ConfigError(f"{p}: {where}: expected valid YAML (got {getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: (top level): expected a mapping (got {type(raw).__name__})")
    try:
        cfg = NodeConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{p}: {loc}: {err['msg']} (got {err.get('input')!r:.60})") from None
    cfg.source_path = p
    if cfg.role in ("gateway", "partner") and cfg.key is None:
        raise ConfigError(f"{p}: key: a {cfg.role} node needs its private key file")
    if cfg.role == "cop" and cfg.cop is None:
        raise ConfigError(f"{p}: cop: a cop node needs its cop settings (port, service_config)")
    return cfg
