"""Load and validate scenario files; turn every problem into a one-line ConfigError.

Message format: ``<file>: <field.path>: <what was expected> (got <value>)``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from siap.errors import ConfigError
from siap.scenario.models import Scenario, TrajectoryFileTarget

__all__ = ["load_scenario", "builtin_names", "builtin_path", "DEFAULT_SCENARIO"]

DEFAULT_SCENARIO = "pacific"

_TAGS = {
    "ground_radar",
    "airborne_radar",
    "adsb_receiver",
    "route",
    "racetrack",
    "orbit",
    "traffic",
    "trajectory_file",
}


def _builtin_dir() -> Path:
    return Path(str(resources.files("siap.scenario").joinpath("builtin")))


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with siap (``pacific`` is the default)."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def builtin_path(name: str) -> Path:
    return _builtin_dir() / f"{name}.yaml"


def _short(value, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in _TAGS or str(item).startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _expected(err: dict) -> str:
    kind = err.get("type", "")
    msg = err.get("msg", "")
    if kind == "extra_forbidden":
        return "no such field (unknown field, check its spelling and unit suffix)"
    if kind == "missing":
        return "a value for this required field"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"type to be one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return "a 'type' field"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:]


def _format_validation(file: str, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    got = err.get("input")
    where = _loc(tuple(err.get("loc", ())))
    if err.get("type") == "missing":
        return f"{file}: {where}: {_expected(err)} (got nothing)"
    if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        where = where + ".type" if where != "(top level)" else "type"
        got = err.get("ctx", {}).get("tag", "nothing")
    return f"{file}: {where}: {_expected(err)} (got {_short(got)})"


def load_scenario(name_or_path: str | Path = DEFAULT_SCENARIO, *, seed: int | None = None) -> Scenario:
    """Load a built-in scenario by name (see :func:`builtin_names`) or a YAML file by path.

    ``seed`` overrides the file's seed. Raises :class:`siap.errors.ConfigError` with one line
    ``<file>: <field>: <expected> (got <value>)`` for any problem with the file.
    """
    text_name = str(name_or_path)
    if isinstance(name_or_path, str) and text_name in builtin_names():
        path = builtin_path(text_name)
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise ConfigError(
                f"{path}: (file): an existing scenario file or a built-in name ({', '.join(builtin_names())}) (got {text_name})"
            )
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(syntax)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}: {where}: valid YAML (got a syntax error: {_short(problem)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: (file): a readable UTF-8 text file (got {type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: (top level): a mapping of scenario fields (got {_short(raw)})")
    if seed is not None:
        raw["seed"] = int(seed)
    if "source_path" in raw:
        raise ConfigError(f"{file}: source_path: no such scenario field (it is set by the loader)")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(file, exc)) from None
    scenario.source_path = path.resolve()
    _cross_check(file, scenario)
    return scenario


def _cross_check(file: str, scenario: Scenario) -> None:
    partners = [p.id for p in scenario.partners]
    seen: set[str] = set()
    for i, p in enumerate(partners):
        if p in seen:
            raise ConfigError(f"{file}: partners[{i}].id: a partner declared once (got {p} twice)")
        seen.add(p)
    ids: set[str] = set()
    for i, s in enumerate(scenario.sensors):
        if s.partner not in seen:
            raise ConfigError(
                f"{file}: sensors[{i}].partner: one of the declared partners {', '.join(partners)} (got {s.partner})"
            )
        if s.id in ids:
            raise ConfigError(f"{file}: sensors[{i}].id: a unique sensor id (got {s.id} twice)")
        ids.add(s.id)
    for i, t in enumerate(scenario.targets):
        if isinstance(t, TrajectoryFileTarget):
            p = Path(t.path)
            full = p if p.is_absolute() else scenario.base_dir / p
            if not full.is_file():
                raise ConfigError(f"{file}: targets[{i}].path: an existing trajectory file (got {t.path})")
