"""Load and validate scenario files; turn every problem into a one-line ConfigError.

Message format: ``<file>: <field.path>: <what was expected> (got <value>)``.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from siap.errors import ConfigError
from siap.scenario.models import Scenario, TrajectoryFileTarget

__all__ = ["load_scenario", "check_scenario", "builtin_names", "builtin_path", "DEFAULT_SCENARIO"]

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
    except RecursionError:
        raise ConfigError(f"{file}: (top level): a YAML document of sensible depth (got one nested too deep)") from None
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
    except RecursionError:
        raise ConfigError(f"{file}: (top level): a scenario of sensible depth (got one nested too deep)") from None
    scenario.source_path = path.resolve()
    check_scenario(scenario, file)
    return scenario


# What one scenario may ask a run to do (bounded so a typo cannot exhaust memory or run for days).
MAX_TRUTH_STEPS = 200_000  # per target: duration_s / truth_step_s
MAX_FALSE_ALARMS = 20_000_000  # radar false-alarm plots over the run, all radars
MAX_SCANS = 2_000_000  # radar scans (or ADS-B report rounds) over the run, per sensor


def check_scenario(scenario: Scenario, file: str) -> None:
    """Cross-field checks and the work budget; ConfigError (one line) for the first problem.

    Run again after any override (``--duration-s``), which bypasses the model's validation.
    """
    if not (math.isfinite(scenario.duration_s) and 0 < scenario.duration_s <= 86400):
        raise ConfigError(f"{file}: duration_s: a duration in (0, 86400] s (got {scenario.duration_s})")
    _cross_check(file, scenario)
    steps = scenario.duration_s / scenario.truth_step_s
    if steps > MAX_TRUTH_STEPS:
        raise ConfigError(
            f"{file}: truth_step_s: at most {MAX_TRUTH_STEPS} truth steps over duration_s (got "
            f"{scenario.duration_s:g} s / {scenario.truth_step_s:g} s = {steps:.3g}); use a larger step or a shorter run"
        )
    total_fa = 0.0
    for i, s in enumerate(scenario.sensors):
        period = s.report_interval_s if s.type == "adsb_receiver" else s.scan_period_s
        scans = scenario.duration_s / period
        if scans > MAX_SCANS:
            field = "report_interval_s" if s.type == "adsb_receiver" else "scan_period_s"
            raise ConfigError(f"{file}: sensors[{i}].{field}: at most {MAX_SCANS} scans over the run (got {scans:.3g})")
        total_fa += scans * getattr(s, "false_alarms_per_scan", 0.0)
        if total_fa > MAX_FALSE_ALARMS:
            raise ConfigError(
                f"{file}: sensors[{i}].false_alarms_per_scan: at most {MAX_FALSE_ALARMS} false-alarm plots over the run, "
                f"all radars together (got {total_fa:.3g} by this sensor)"
            )


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
