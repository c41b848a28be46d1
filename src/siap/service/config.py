"""The service configuration: who may connect (a token per partner, admin tokens), the
per-client limits, the audit log and the identification rules. YAML, validated by pydantic::

    tokens:                      # partner -> its bearer token (>= 16 characters)
      JPN: "..."
      USA: "..."
    admin_tokens: ["..."]        # exercise control: may view every partner, pause/seek/speed
    history_points: 120          # positions kept per track (trails, /history)
    send_timeout_s: 30           # a client that takes longer to accept one frame is dropped
    audit_log: out/service/audit-service.jsonl
    identification:              # ordered rules, first match wins (siap.service.tracks)
      - {name: tanker callsigns, affiliation: friend, callsign_prefix: [RCH]}

No token is built in: :meth:`ServiceConfig.generate` makes random ones (the demo prints them).
A bad file raises :class:`siap.errors.ConfigError` with one line naming the file and field.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from siap.errors import ConfigError
from siap.service.tracks import DEFAULT_RULES, Affiliation, IdentityRule

__all__ = ["ServiceConfig", "load_service_config"]

MIN_TOKEN_CHARS = 16


def _check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{where}: a token of at least {MIN_TOKEN_CHARS} characters (got {len(token)})")
    return token


class ServiceConfig(BaseModel):
    """Typed configuration of the live service (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens: dict[str, str] = Field(description="partner code -> bearer token of that partner")
    admin_tokens: tuple[str, ...] = Field((), description="bearer tokens of the exercise-control (admin) role")
    history_points: int = Field(120, ge=2, le=10_000, description="positions kept per track")
    send_timeout_s: float = Field(30.0, gt=0, description="drop a client that takes longer to accept a frame (s)")
    control_queue: int = Field(16, ge=1, le=1000, description="replies (pong, errors) queued per client; more are dropped")
    audit_log: Path = Field(Path("out/service/audit-service.jsonl"), description="audit log of refusals and control actions")
    operator: str | None = Field(None, description="partner code of the nation operating the service (signs its audit log; default: the first partner)")
    identification: tuple[IdentityRule, ...] = Field(DEFAULT_RULES, description="affiliation rules, first match wins")
    default_affiliation: Affiliation = "unknown"

    @field_validator("tokens")
    @classmethod
    def _v_tokens(cls, v: dict[str, str]) -> dict[str, str]:
        for partner, token in v.items():
            _check_token(token, partner)
        return v

    @field_validator("admin_tokens")
    @classmethod
    def _v_admin(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, token in enumerate(v):
            _check_token(token, f"admin_tokens.{i}")
        return v

    @model_validator(mode="after")
    def _v_unique(self) -> ServiceConfig:
        all_tokens = list(self.tokens.values()) + list(self.admin_tokens)
        if len(set(all_tokens)) != len(all_tokens):
            raise ValueError("every token distinct (two roles share a token)")
        return self

    @classmethod
    def generate(cls, partners: Iterable[str], **overrides) -> ServiceConfig:
        """A configuration with fresh random tokens (``secrets.token_urlsafe``) for each partner
        and one admin: for demos and tests. Print them; never ship them."""
        return cls(
            tokens={p: secrets.token_urlsafe(24) for p in partners},
            admin_tokens=(secrets.token_urlsafe(24),),
            **overrides,
        )

    def to_yaml(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path


def load_service_config(path: str | Path) -> ServiceConfig:
    """Load and validate a service YAML file; ConfigError (one line) when it is bad."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{p}: (file): expected a readable service configuration (got {e.strerror})") from None
    except RecursionError:
        raise ConfigError(f"{p}: (top level): expected a YAML document of sensible depth (nested too deep)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: (file): expected UTF-8 YAML text (got binary data)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        raise ConfigError(f"{p}: {where}: expected valid YAML (got {getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: (top level): expected a mapping (got {type(raw).__name__})")
    try:
        return ServiceConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "no such field (unknown key)"
        elif err["type"] == "missing":
            msg = "a value (field is required)"
        raise ConfigError(f"{p}: {loc}: expected {msg}") from None
