"""The ``siap`` command.

Every user error (bad scenario, missing or malformed input file) prints one line on stderr that
says what and where, and exits non-zero (2 for bad input) without a traceback.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from siap.errors import InputError, SiapError

app = typer.Typer(
    name="siap",
    help="Single integrated air picture: simulate, track, evaluate and share.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


class _Bars:
    """Rich progress bars keyed by stage name, fed by the pipeline's progress(stage, fraction)."""

    def __init__(self, progress: Progress):
        self._progress = progress
        self._tasks: dict[str, int] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=1.0)
        self._progress.update(self._tasks[stage], completed=min(max(fraction, 0.0), 1.0))


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


MAX_OUTPUT_STEPS = 1_000_000  # pictures a run may be asked to write (span / interval)


def _read_batch(path: Path, kind: str) -> tuple[np.ndarray, dict[str, str]]:
    from siap import records

    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: expected a siap {kind} Parquet file, got a directory")
    try:
        batch, meta = records.read_parquet(path, records.dtype_by_name(kind))
    except (ValueError, TypeError, OSError) as exc:  # pyarrow: ArrowInvalid (ValueError), ArrowTypeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a siap {kind} Parquet file ({first})") from None
    return batch, meta


def _existing_file(path: Path, what: str) -> None:
    """InputError unless ``path`` is an existing regular file (not a directory)."""
    if not path.exists():
        raise InputError(f"{path}: {what}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: {what}: expected a file, got a directory")


def _input_file(path: Path, what: str, expect: str) -> None:
    """InputError unless ``path`` is an existing, non-empty regular file (``expect``: what it
    should hold, for the message)."""
    _existing_file(path, what)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: {what}: expected {expect}, got an empty file")


def _seed(seed: int | None) -> None:
    if seed is not None and not 0 <= seed < 2**63:
        raise typer.BadParameter(f"expected 0 <= seed < 2**63 (got {seed})", param_hint="--seed")


def _positive(value: float, option: str, at_most: float | None = None) -> float:
    """``value`` if it is a finite number > 0 (and <= ``at_most``); else a one-line usage error."""
    if not math.isfinite(value) or value <= 0 or (at_most is not None and value > at_most):
        bound = f" and at most {at_most:g}" if at_most is not None else ""
        raise typer.BadParameter(f"expected a finite number > 0{bound} (got {value})", param_hint=option)
    return value


def _output_path(path: Path, option: str, folder: bool = False) -> Path:
    """Check before any work is done that ``path`` can be written: a file path that is not a
    folder (or, ``folder``, a folder that is not a file), under folders that are folders."""
    if path.exists() and path.is_dir() != folder:
        got, want = ("a folder", "a file") if not folder else ("a file", "a folder")
        raise InputError(f"{path}: {option}: expected {want} to write, got {got}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{parent}: {option}: expected a folder to write {path.name} in, got a file")
            break
    return path


def _step_count(span_s: float, step_s: float, option: str) -> None:
    if span_s / step_s > MAX_OUTPUT_STEPS:
        raise typer.BadParameter(
            f"at most {MAX_OUTPUT_STEPS} steps over {span_s:g} s (got {span_s / step_s:.3g}); use a larger step",
            param_hint=option,
        )


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help="built-in scenario name or YAML file")] = "pacific",
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out/demo"),
    mode: Annotated[str, typer.Option(help="coalition (partner nodes, signed sharing) or single (one tracker)")] = "coalition",
    policy: Annotated[str | None, typer.Option(help="releasability policy: built-in name or YAML file")] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration_s: Annotated[float | None, typer.Option(help="override the scenario's duration (s)")] = None,
    eval_step_s: Annotated[float, typer.Option(help="evaluate the picture every this many seconds")] = 5.0,
    registration: Annotated[bool, typer.Option(help="estimate and remove radar biases online")] = True,
    nats_url: Annotated[str | None, typer.Option(help="carry partner messages over NATS JetStream at this URL")] = None,
    serve: Annotated[
        bool | None,
        typer.Option("--serve/--no-serve", help="then serve the live picture (default: only when stdout is a terminal)"),
    ] = None,
    port: Annotated[int, typer.Option(help="port of the live picture (with --serve)")] = 8600,
) -> None:
    """Run the main job: simulate, track (coalition mode by default), evaluate, write the report;
    then (coalition mode, on a terminal or with --serve) serve the live picture: the same
    simulation played into the live runtime at real time."""
    result = _run_main_job(scenario, out_dir, mode, policy, seed, duration_s, eval_step_s, registration, nats_url)
    if serve is None:
        serve = sys.stdout.isatty()
    if serve and result.mode == "coalition":
        if not 0 < port < 65536:
            raise InputError(f"--port {port}: expected a port 1..65535")
        sc = _scenario(scenario, seed, duration_s)
        live = _scenario_runtime(sc, policy, 1.0, 1.0, simulation=result.simulation)
        _serve(live, None, "127.0.0.1", port)


@app.command()
def coalition(
    scenario: Annotated[str, typer.Argument(help="built-in scenario name or YAML file")],
    policy: Annotated[str, typer.Option(help="releasability policy: built-in name or YAML file")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")] = Path("out/coalition"),
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration_s: Annotated[float | None, typer.Option(help="override the scenario's duration (s)")] = None,
    eval_step_s: Annotated[float, typer.Option(help="evaluate the pictures every this many seconds")] = 5.0,
    registration: Annotated[bool, typer.Option(help="estimate and remove radar biases online")] = True,
    nats_url: Annotated[str | None, typer.Option(help="carry partner messages over NATS JetStream at this URL")] = None,
) -> None:
    """Run a scenario as a coalition under a policy: per-partner pictures, commonality, audit."""
    _run_main_job(scenario, out_dir, "coalition", policy, seed, duration_s, eval_step_s, registration, nats_url)


def _run_main_job(scenario, out_dir, mode, policy, seed, duration_s, eval_step_s, registration, nats_url=None) -> None:
    from siap.pipeline import run_demo
    from siap.scenario import load_scenario
    from siap.scenario.loader import check_scenario

    _output_path(out_dir, "--out", folder=True)
    if mode not in ("coalition", "single"):
        raise typer.BadParameter("expected coalition or single", param_hint="--mode")
    _positive(eval_step_s, "--eval-step-s")
    if seed is not None and not 0 <= seed < 2**63:
        raise typer.BadParameter(f"expected 0 <= seed < 2**63 (got {seed})", param_hint="--seed")
    sc = load_scenario(scenario, seed=seed)
    if duration_s is not None:
        _positive(duration_s, "--duration-s", at_most=86400.0)
        sc = sc.model_copy(update={"duration_s": float(duration_s)})
        check_scenario(sc, f"{scenario} (with --duration-s {duration_s:g})")
    _step_count(sc.duration_s, eval_step_s, "--eval-step-s")
    pol = None
    if mode == "coalition" and policy is not None:
        from siap.sharing.policy import load_policy

        pol = load_policy(policy)
        pol.check_scenario_sensors({s.id: s.partner for s in sc.sensors}, str(policy))
    with _progress() as progress:
        result = run_demo(
            sc,
            out_dir,
            mode=mode,
            policy=pol,
            eval_step_s=eval_step_s,
            registration=registration,
            nats_url=nats_url,
            progress=_Bars(progress),
        )
    _print_summary(result.summary())
    out.print(f"report:  {out_dir / 'report.html'}")
    out.print(f"metrics: {out_dir / 'metrics.json'}")
    return result


def _print_summary(summary: dict) -> None:
    head = Table(title=f"siap {summary['mode']} run: {summary['scenario']}")
    head.add_column("quantity")
    head.add_column("value", justify="right")
    for key in ("partners", "sensors", "truth_objects", "observable_truth_objects", "plots", "false_alarm_plots"):
        head.add_row(key, str(summary[key]))
    for key, value in summary["timings_s"].items():
        head.add_row(f"time {key} (s)", f"{value:.2f}")
    out.print(head)
    if summary["mode"] == "single":
        table = Table(title="picture quality against truth")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in summary["metrics"]["network"].items():
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        out.print(table)
        return
    table = Table(title="per partner: own sensors | coalition | centralised (more in the report)")
    columns = (
        ("compl.", "siap_completeness", 1.0, ".3f"),
        ("GOSPA km", "gospa_mean_m", 1000.0, ".1f"),
    )
    table.add_column("partner")
    for title, *_ in columns:
        for kind in ("own", "coal.", "cent."):
            table.add_column(f"{title}\n{kind}", justify="right", no_wrap=True)
    table.add_column("audit")
    for partner, row in summary["partner_table"].items():
        cells = []
        for _title, key, scale, fmt in columns:
            for kind in ("own", "coalition", "centralised"):
                v = row.get(kind, {}).get(key)
                cells.append(format(v / scale, fmt) if isinstance(v, float) else "-")
        audit = summary["audit"].get(partner, {})
        table.add_row(partner, *cells, ("ok" if audit.get("ok") else "FAILED") if audit else "-")
    out.print(table)
    for pair, value in summary["commonality"].items():
        out.print(f"commonality {pair}: {value['commonality']:.3f} over {value['common']} common (object, time) pairs")
    rejected = {p: r for p, r in summary["rejected"].items() if r}
    out.print(f"messages: {summary['messages']}; rejected: {rejected or 'none'}")


# --- live picture: siap serve, siap replay, and their inputs and outputs ----------------------
# (the runtime on a replay clock; sinks through Runtime.add_sink; docs/service.md, formats.md)

Cat062Opt = Annotated[
    list[str] | None,
    typer.Option("--cat062", help="PARTNER=FILE or PARTNER=udp://HOST:PORT: that partner's picture as CAT062/CAT065 (repeat per partner)"),
]
CotOpt = Annotated[
    list[str] | None,
    typer.Option("--cot", help="PARTNER=udp://HOST:PORT or PARTNER=tcp://HOST:PORT: that partner's picture as Cursor-on-Target (repeat)"),
]
RecordOpt = Annotated[Path | None, typer.Option("--record", help="record plots and every picture to this folder (Parquet)")]
SacOpt = Annotated[int, typer.Option("--sac", min=0, max=255, help="CAT062 system area code (SIC: the partner's place in the policy, from 1)")]


@app.command()
def serve(
    source: Annotated[str, typer.Argument(help="built-in scenario name, scenario YAML, a siap recording (folder or .parquet), or a picture recording of siap demo")],
    policy: Annotated[str | None, typer.Option(help="releasability policy: built-in name or YAML file")] = None,
    speed: Annotated[float, typer.Option(help="picture seconds per wall second (1: real time)")] = 1.0,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8600,
    config: Annotated[Path | None, typer.Option(help="service configuration YAML (tokens; default: random tokens, printed)")] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration_s: Annotated[float | None, typer.Option(help="override the scenario's duration (s)")] = None,
    update_s: Annotated[float, typer.Option(help="partner update period (s)")] = 1.0,
    cat062: Cat062Opt = None,
    cot: CotOpt = None,
    record: RecordOpt = None,
    sac: SacOpt = 0,
) -> None:
    """Serve a live per-partner air picture (HTTP/WebSocket API and the web COP): a scenario
    or a recording runs in the live runtime at --speed x real time."""
    _check_live_options(speed, port, update_s)
    _seed(seed)
    cfg = _service_config(config)
    live = _live_source_for(source, policy, speed, seed, duration_s, update_s)
    with _Outputs(live, cat062, cot, record, sac) as outputs:
        _serve(live, cfg, host, port)
    outputs.report()


@app.command()
def replay(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="siap recording (folder or plots .parquet), ASTERIX file or pcap, or Mode S file (.bin Beast, .avr, .jsonl[.gz])")],
    policy: Annotated[str | None, typer.Option(help="releasability policy: built-in name or YAML file (default: a recording's own)")] = None,
    speed: Annotated[float, typer.Option(help="picture seconds per wall second (1: real time)")] = 1.0,
    update_s: Annotated[float, typer.Option(help="partner update period (s)")] = 1.0,
    sites: Annotated[Path | None, typer.Option(help="ASTERIX: sites YAML (SAC/SIC -> sensor id, partner, position)")] = None,
    date: Annotated[str | None, typer.Option(help="ASTERIX raw file: UTC date of its first record, YYYY-MM-DD")] = None,
    receiver: Annotated[str, typer.Option(help="Mode S: receiver position LAT,LON[,ALT] (deg, deg, m)")] = "",
    receiver_id: Annotated[str, typer.Option(help="Mode S: sensor id of the receiver (declared in the policy)")] = "adsb-1",
    partner: Annotated[str, typer.Option(help="Mode S: the receiver's partner (ISO 3166 alpha-3)")] = "",
    start_time: Annotated[str | None, typer.Option(help="Mode S: Unix time or ISO 8601 of the first 12 MHz timestamp (default: the file's modification time)")] = None,
    serve_cop: Annotated[bool, typer.Option("--serve/--no-serve", help="serve the COP while replaying (runs until Ctrl-C)")] = False,
    host: Annotated[str, typer.Option(help="with --serve: address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="with --serve: port to listen on")] = 8600,
    config: Annotated[Path | None, typer.Option(help="with --serve: service configuration YAML")] = None,
    cat062: Cat062Opt = None,
    cot: CotOpt = None,
    record: RecordOpt = None,
    sac: SacOpt = 0,
) -> None:
    """Play a recording into the live runtime at real time or x--speed: partner nodes under
    the policy track, share and fuse it; the pictures go to the COP, CAT062, CoT, a recording."""
    _check_live_options(speed, port, update_s)
    cfg = _service_config(config) if serve_cop else None
    rc = None
    if receiver:
        from siap.formats import modes

        lat, lon, alt = _parse_receiver(receiver)
        if len(partner) > 3 or len(receiver_id) > 16:
            raise InputError("--partner: at most 3 letters; --receiver-id: at most 16 characters")
        rc = modes.ReceiverConfig(receiver_id=receiver_id, partner=partner, lat_deg=lat, lon_deg=lon, alt_m=alt)
    rt, opened = _replay_runtime(input_path, policy, speed, update_s, sites=_asterix_sites(sites) if sites else None,
                                 receiver=rc, date=date, start_time_s=_parse_time(start_time), hold_at_end=serve_cop)
    out.print(f"{input_path}: {opened.n_plots} plots of {', '.join(opened.sensor_ids)} over "
              f"{opened.last_s - opened.first_s:.1f} s; replaying at x{speed:g} under policy {rt.policy.name}", soft_wrap=True)
    with _Outputs(rt, cat062, cot, record, sac) as outputs:
        if serve_cop:
            _serve(rt, cfg, host, port)
        else:
            try:
                rt.run()
            finally:
                rt.close()
    res = rt.result
    if res is not None:
        out.print(f"updates {sum(res.updates.values())}, plots released {res.plots.get('released', 0)}, "
                  f"dropped {sum(v for k, v in res.plots.items() if k.startswith('dropped'))}, "
                  f"messages {res.messages['published']}, rejected {sum(sum(r.values()) for r in res.rejected.values())}")
    outputs.report()


def _check_live_options(speed: float, port: int, update_s: float) -> None:
    _positive(speed, "--speed", at_most=10_000.0)
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: expected a port 1..65535")
    _positive(update_s, "--update-s", at_most=3600.0)


def _service_config(config: Path | None):
    if config is None:
        return None
    from siap.service.config import load_service_config

    _existing_file(config, "--config")
    return load_service_config(config)


def _load_policy_or_default(policy: str | None, scenario_name: str | None, what: str):
    from siap.pipeline import default_policy_name
    from siap.sharing.policy import load_policy

    name = policy or (default_policy_name(scenario_name) if scenario_name else None)
    if name is None:
        raise InputError(f"{what}: no built-in policy for it; pass --policy FILE")
    return load_policy(name)


def _replay_runtime(path: Path, policy: str | None, speed: float, update_s: float, *, sites=None, receiver=None,
                    date=None, start_time_s=None, hold_at_end: bool = True):
    """The runtime replaying a recording (plots Parquet, ASTERIX, Mode S) on a replay clock:
    (runtime, the opened input)."""
    import math

    from siap.pipeline import tracker_config_for
    from siap.runtime import ReplayClock, Runtime, open_replay_input
    from siap.tracking import TrackerConfig

    opened = open_replay_input(path, sites=sites, receiver=receiver, date=date, start_time_s=start_time_s)
    scenario_name = opened.metadata.get("scenario")
    pol = _load_policy_or_default(policy or opened.metadata.get("policy"), scenario_name, str(path))
    undeclared = [s for s in opened.sensor_ids if pol.owner_or_none(s) is None]
    if undeclared:
        raise InputError(f"{path}: sensor {undeclared[0]!r} is not declared in policy {pol.name} "
                         f"(declared: {', '.join(pol.sensors)})")
    meta = opened.metadata
    if scenario_name:
        from siap.scenario import load_scenario

        try:
            cfg = tracker_config_for(load_scenario(scenario_name))
        except Exception:  # noqa: BLE001 - a recording of a scenario file no longer here
            cfg = None
    else:
        cfg = None
    if cfg is None:
        if "origin_lat_deg" in meta:
            lat, lon = float(meta["origin_lat_deg"]), float(meta["origin_lon_deg"])
        elif opened.sensors:
            lat = float(np.mean([s.lat_deg for s in opened.sensors]))
            lon = float(np.mean([s.lon_deg for s in opened.sensors]))
        else:
            raise InputError(f"{path}: no origin known for the trackers (no sites with positions, no recording metadata)")
        cfg = TrackerConfig(origin_lat_deg=lat, origin_lon_deg=lon)
    start = math.floor(opened.first_s)
    end = opened.last_s + update_s
    rt = Runtime(pol, [opened.source], sensor_ids=list(pol.sensors), tracker_config=cfg,
                 clock=ReplayClock(speed=speed), update_period_s=update_s, start_s=start, end_s=end,
                 sensors=opened.sensors, truth=opened.truth, hold_at_end=hold_at_end, own_pictures=False)
    return rt, opened


def _live_source_for(source: str, policy: str | None, speed: float, seed: int | None = None,
                     duration_s: float | None = None, update_s: float = 1.0):
    """What ``siap serve`` runs: a picture recording folder of ``siap demo`` (manifest.json)
    is replayed picture by picture; a siap recording (recording.json or .parquet plots) is
    played into the live runtime; a scenario is simulated and its plots released into the
    live runtime (:class:`siap.runtime.Runtime` on a :class:`~siap.runtime.ReplayClock` at
    ``speed``; at the end it holds the last picture, and the COP can seek back)."""
    from siap.service.live import load_recording

    path = Path(source)
    if path.is_dir() and (path / "manifest.json").exists() and not (path / "recording.json").exists():
        return load_recording(path, policy, speed=speed)
    if path.is_dir() or path.suffix == ".parquet":
        rt, _ = _replay_runtime(path, policy, speed, update_s)
        return rt
    return _scenario_runtime(_scenario(source, seed, duration_s), policy, speed, update_s)


def _scenario(source: str, seed: int | None, duration_s: float | None):
    from siap.scenario import load_scenario

    sc = load_scenario(source, seed=seed)
    if duration_s is not None:
        _positive(duration_s, "--duration-s", at_most=86400.0)
        sc = sc.model_copy(update={"duration_s": float(duration_s)})
    return sc


def _scenario_runtime(sc, policy: str | None, speed: float, update_s: float, simulation=None):
    """The live runtime over a scenario on a replay clock at ``speed`` (simulated first unless
    ``simulation`` is given), holding its last picture at the end."""
    from siap.runtime import ReplayClock, Runtime

    _step_count(sc.duration_s, update_s, "--update-s")
    pol = _load_policy_or_default(policy, sc.name, f"scenario {sc.name}")
    if simulation is None:
        from siap.simulation import simulate

        with _progress() as progress:
            simulation = simulate(sc, progress=_Bars(progress))
    return Runtime.from_scenario(sc, pol, clock=ReplayClock(speed=speed), update_period_s=update_s,
                                 simulation=simulation, hold_at_end=True, own_pictures=False)


class _Outputs:
    """The optional outputs of a live run, attached to its runtime as sinks: CAT062 per
    partner (file or UDP), CoT per partner (UDP or TCP), a recording. Closed on exit."""

    def __init__(self, live, cat062: list[str] | None, cot: list[str] | None, record: Path | None, sac: int) -> None:
        self.closers: list = []
        self.lines: list[str] = []
        self.recorder = None
        if (cat062 or cot or record) and not hasattr(live, "clock"):
            raise InputError("--cat062/--cot/--record: need a live run (a scenario or a plots recording), "
                             "not a picture recording of siap demo")
        partners = list(live.partners) if (cat062 or cot) else []
        try:
            for spec in cat062 or []:
                self._cat062(live, spec, partners, sac)
            for spec in cot or []:
                self._cot(live, spec, partners)
            if record is not None:
                self._record(live, record)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _split(spec: str, option: str, partners: list[str]) -> tuple[str, str]:
        who, sep, dest = spec.partition("=")
        if not sep or not dest:
            raise InputError(f"{option} {spec!r}: expected PARTNER=DESTINATION")
        if who not in partners:
            raise InputError(f"{option} {spec!r}: no partner {who!r} (partners: {', '.join(partners)})")
        return who, dest

    @staticmethod
    def _address(spec: str, option: str, dest: str) -> tuple[str, str, int]:
        scheme, sep, rest = dest.partition("://")
        host, _, port_text = rest.rpartition(":")
        try:
            port = int(port_text)
        except ValueError:
            port = 0
        if not sep or not host or not 0 < port < 65536:
            raise InputError(f"{option} {spec!r}: expected SCHEME://HOST:PORT (port 1..65535)")
        return scheme, host, port

    def _cat062(self, live, spec: str, partners: list[str], sac: int) -> None:
        from siap.formats.asterix import Cat062Sink
        from siap.runtime import OnePartner

        who, dest = self._split(spec, "--cat062", partners)
        sic = partners.index(who) + 1
        if "://" in dest:
            scheme, host, port = self._address(spec, "--cat062", dest)
            if scheme != "udp":
                raise InputError(f"--cat062 {spec!r}: expected udp://HOST:PORT or a file path")
            sink = Cat062Sink(who, sac=sac, sic=sic, udp=(host, port))
        else:
            try:
                sink = Cat062Sink(who, sac=sac, sic=sic, path=dest)
            except OSError as exc:
                raise InputError(f"--cat062 {spec!r}: cannot write {dest} ({exc.strerror or exc})") from None
        # on the loop thread, not queued: encoding is compiled (100,000 tracks/s) and a file
        # write or a UDP datagram does not block, so every picture goes out, none is dropped
        live.add_sink(OnePartner(sink, who))
        self.closers.append(sink.close)
        self.lines.append(f"CAT062 {who} (SAC/SIC {sac}/{sic}) -> {dest}")

    def _cot(self, live, spec: str, partners: list[str]) -> None:
        from siap.formats.cot import CotTcpSink, CotUdpSink
        from siap.runtime import OnePartner

        who, dest = self._split(spec, "--cot", partners)
        scheme, host, port = self._address(spec, "--cot", dest)
        if scheme not in ("udp", "tcp"):
            raise InputError(f"--cot {spec!r}: expected udp://HOST:PORT or tcp://HOST:PORT")
        sink = (CotUdpSink if scheme == "udp" else CotTcpSink)(host, port)
        self.closers.append(sink.close)
        live.add_sink(OnePartner(sink, who))  # the CoT sinks send on their own thread
        self.lines.append(f"CoT {who} -> {dest}")

    def _record(self, live, folder: Path) -> None:
        from siap.formats.recording import Recorder

        tc = live.tracker_config
        meta = {"policy": live.policy.name, "origin_lat_deg": repr(float(tc.origin_lat_deg)),
                "origin_lon_deg": repr(float(tc.origin_lon_deg))}
        try:
            self.recorder = Recorder(folder, metadata=meta)
        except OSError as exc:
            raise InputError(f"--record {folder}: cannot write ({exc.strerror or exc})") from None
        live.sources = [_PlotTap(s, self.recorder.on_plots) for s in live.sources]
        if live.truth is not None:
            self.recorder.on_truth(live.truth)
        live.own_pictures = True  # a recording keeps the own pictures too (docs/formats.md)
        live.add_sink(self.recorder)
        self.closers.append(self.recorder.close)
        self.lines.append(f"recording -> {folder}")

    def __enter__(self) -> _Outputs:
        for line in self.lines:
            out.print(line, soft_wrap=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - closing the others matters more
                console.print(f"siap: warning: closing an output failed: {exc}", markup=False)
        self.closers = []

    def report(self) -> None:
        if self.recorder is not None and self.recorder.closed:
            m = self.recorder.close()
            out.print(f"recorded {m['rows'].get('plots', 0)} plots, {m['pictures']} pictures -> {self.recorder.dir}")


class _PlotTap:
    """A source that hands every batch it yields to ``tap`` too (the recorder's plot stream);
    restartable when its source is."""

    def __init__(self, source, tap) -> None:
        self.source = source
        self.tap = tap

    def __iter__(self):
        for batch in self.source:
            if len(batch):
                self.tap(batch)
            yield batch


def _serve(live, cfg, host: str, port: int) -> None:
    """Run the service over ``live`` until interrupted; print the COP's address per role."""
    import uvicorn

    from siap.service import ServiceConfig, create_app

    if cfg is None:
        cfg = ServiceConfig.generate(live.partners)
        out.print("tokens generated for this run only (pass --config FILE to set your own):")
    base = f"http://{host}:{port}/"
    for partner, token in cfg.tokens.items():
        out.print(f"  {partner:5s} {base}#token={token}", soft_wrap=True)
    for token in cfg.admin_tokens:
        out.print(f"  admin {base}#token={token}", soft_wrap=True)
    out.print(f"serving the live picture at {base} (Ctrl-C to stop)")
    # per-message deflate off: compressing each ~1 MB frame once per client costs 4x the CPU
    # (bench/bench_service.py measures both)
    uvicorn.run(create_app(live, cfg), host=host, port=port, log_level="warning", ws_per_message_deflate=False)


# --- end of live picture commands --------------------------------------------------------------


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="built-in scenario name or YAML file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="plots Parquet file to write")] = Path("plots.parquet"),
    truth_output: Annotated[
        Path | None, typer.Option("--truth", help="truth Parquet file (default: <output stem>.truth.parquet)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
) -> None:
    """Simulate a scenario's sensors: write its plots and its truth as Parquet."""
    from siap import records
    from siap.scenario import load_scenario
    from siap.simulation import simulate as run_simulation

    if seed is not None and not 0 <= seed < 2**63:
        raise typer.BadParameter(f"expected 0 <= seed < 2**63 (got {seed})", param_hint="--seed")
    _output_path(output, "--output")
    truth_path = truth_output or output.with_name(output.name.removesuffix(".parquet") + ".truth.parquet")
    _output_path(truth_path, "--truth")
    sc = load_scenario(scenario, seed=seed)
    with _progress() as progress:
        result = run_simulation(sc, progress=_Bars(progress))
    meta = _frame_metadata(sc)
    records.write_parquet(result.plots, output, metadata=meta)
    records.write_parquet(result.truth, truth_path, metadata=meta)
    out.print(f"{len(result.plots)} plots -> {output}")
    out.print(f"{len(result.truth)} truth states -> {truth_path}")


def _frame_metadata(sc) -> dict[str, str]:
    return {
        "scenario": sc.name,
        "seed": str(sc.seed),
        "origin_lat_deg": repr(float(sc.origin.lat_deg)),
        "origin_lon_deg": repr(float(sc.origin.lon_deg)),
        "origin_alt_m": repr(float(sc.origin.alt_m)),
    }


@app.command("track")
def track_cmd(
    plots_path: Annotated[Path, typer.Argument(help="plots Parquet file (from siap simulate)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="tracks Parquet file to write")] = Path("tracks.parquet"),
    config: Annotated[Path | None, typer.Option(help="tracker configuration YAML")] = None,
    output_interval_s: Annotated[float, typer.Option(help="write the picture every this many seconds")] = 5.0,
    registration: Annotated[bool, typer.Option(help="estimate and remove radar biases online")] = True,
) -> None:
    """Track a plots file; write the picture (track snapshots) every output interval."""
    _positive(output_interval_s, "--output-interval-s")
    _output_path(output, "--output")
    plots, meta = _read_batch(plots_path, "plots")

    from siap import records
    from siap.tracking import TrackerConfig, track_with_stats

    if config is not None:
        if config.is_dir():
            raise InputError(f"{config}: --config: expected a tracker configuration YAML file, got a directory")
        cfg = TrackerConfig.from_yaml(config)
    else:
        from pydantic import ValidationError

        origin = _origin_from(plots, meta, plots_path)
        try:
            cfg = TrackerConfig(**origin)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(x) for x in err["loc"])
            raise InputError(
                f"{plots_path}: metadata {field}: {err['msg'].lower()} (got {err.get('input')!r}); pass --config with the origin"
            ) from None
    finite = plots["time_s"][np.isfinite(plots["time_s"])]
    if len(finite):
        t0, t1 = float(finite.min()), float(finite.max())
        _step_count(t1 - t0, output_interval_s, "--output-interval-s")
        times = np.arange(np.ceil(t0 / output_interval_s) * output_interval_s, t1 + 1e-9, output_interval_s)
    else:
        times = np.zeros(0)
    from siap.tracking.registration import SensorRegistration

    reg = SensorRegistration() if registration else None
    with _progress() as progress:
        bars = _Bars(progress)
        tracks, stats = track_with_stats(plots, cfg, times, registration=reg, progress=lambda f: bars("track", f))
    records.write_parquet(tracks, output, metadata={k: v for k, v in meta.items() if k.startswith("origin") or k in ("scenario", "seed")})
    if reg is not None:
        from siap.tracking.registration import estimates_table

        for sid, e in estimates_table(reg).items():
            if e["converged"]:
                out.print(
                    f"bias {sid}: range {e['range_m']:.1f} +/- {e['range_sd_m']:.1f} m, azimuth "
                    f"{e['azimuth_deg']:.3f} +/- {e['azimuth_sd_deg']:.3f} deg, clock {e['time_s']:.2f} s"
                )
    rejected = {k: v for k, v in stats.items() if k.startswith("rejected") and v}
    out.print(f"{len(plots)} plots -> {len(np.unique(tracks['track_id']))} tracks, {len(tracks)} states -> {output}")
    if rejected:
        out.print("rejected plots: " + ", ".join(f"{k.removeprefix('rejected_')}={v}" for k, v in rejected.items()))


def _origin_from(plots: np.ndarray, meta: dict[str, str], path: Path) -> dict[str, float]:
    keys = ("origin_lat_deg", "origin_lon_deg", "origin_alt_m")
    if all(k in meta for k in keys):
        try:
            return {k: float(meta[k]) for k in keys}
        except ValueError:
            raise InputError(f"{path}: metadata origin_*: expected numbers") from None
    lat, lon = plots["sensor_lat_deg"], plots["sensor_lon_deg"]
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    if not usable.any():
        raise InputError(
            f"{path}: sensor_lat_deg/sensor_lon_deg: no plot with a usable sensor position and no origin metadata; "
            "pass --config with the origin"
        )
    return {
        "origin_lat_deg": float(lat[usable].mean()),
        "origin_lon_deg": float(lon[usable].mean()),
        "origin_alt_m": 0.0,
    }


@app.command("evaluate")
def evaluate_cmd(
    truth: Annotated[Path, typer.Option(help="truth Parquet file")],
    tracks: Annotated[Path, typer.Option(help="tracks Parquet file")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write the summary here as JSON")] = None,
) -> None:
    """Score a track picture against truth: GOSPA, OSPA and SIAP metrics."""
    if json_out is not None:
        _output_path(json_out, "--json")
    truth_batch, _ = _read_batch(truth, "truth")
    track_batch, _ = _read_batch(tracks, "tracks")

    from siap.evaluation import evaluate

    times = np.unique(track_batch["time_s"])
    truth_batch = truth_batch[np.isin(np.round(truth_batch["time_s"], 3), np.round(times, 3))]
    result = evaluate(truth_batch, track_batch)
    summary = result.summary()
    table = Table(title="picture quality against truth")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2))


audit_app = typer.Typer(help="Audit logs: verify their hash chain and signatures.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    log: Annotated[Path, typer.Argument(help="audit log (JSON Lines) to verify")],
    trust: Annotated[Path, typer.Option(help="YOUR pinned trust store (YAML or folder): never take the one shipped beside the log")],
    node: Annotated[str, typer.Option(help="node id whose log this must be (e.g. JPN-node)")],
    run: Annotated[str, typer.Option(help="run id the log must belong to (the run's summary names it)")],
    head: Annotated[list[Path] | None, typer.Option(help="a signed head of this log kept outside it (JSON); repeatable")] = None,
    anchor: Annotated[
        list[Path] | None, typer.Option(help="another node's log of the same run that recorded this log's head; repeatable")
    ] = None,
) -> None:
    """Check an audit log: hash chain, order, every signature with your pinned keys, its node and
    run, and the heads anchored outside it (given heads, peers' logs)."""
    from siap.sharing.audit import read_head, verify_audit_log
    from siap.sharing.signing import TrustStore

    _existing_file(log, "LOG")
    if not trust.exists():
        raise InputError(f"{trust}: --trust: no such trust store")
    store = TrustStore.load(trust)
    heads = []
    for h in head or []:
        _existing_file(h, "--head")
        try:
            heads.append(read_head(h))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    for a in anchor or []:
        _existing_file(a, "--anchor")
    result = verify_audit_log(log, store, node=node, run_id=run, heads=heads, anchors=anchor or [])
    if result.ok:
        out.print(f"{log}: ok, {result.reason}")
        return
    console.print(f"siap: audit: {log}: FAILED at seq {result.first_bad_seq}: {result.reason}", markup=False, highlight=False)
    raise typer.Exit(1)


# --- formats: recording and Mode S (siap record, siap modes decode) -------------------------


@app.command("record")
def record_cmd(
    scenario: Annotated[str, typer.Argument(help="built-in scenario name or YAML file")],
    out_dir: Annotated[Path, typer.Option("-o", "--output", help="recording folder to write")] = Path("rec"),
    policy: Annotated[str | None, typer.Option(help="releasability policy: built-in name or YAML file (default: the scenario's)")] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    duration_s: Annotated[float | None, typer.Option(help="override the scenario's duration (s)")] = None,
    step_s: Annotated[float, typer.Option(help="record every partner's pictures every this many seconds")] = 5.0,
    centralised: Annotated[bool, typer.Option(help="also record each partner's centralised picture")] = False,
) -> None:
    """Simulate a scenario, run it as a coalition and record plots, truth and every partner's
    pictures (coalition and own) as Parquet (docs/formats.md, Recording)."""
    from siap.coalition import run_coalition
    from siap.errors import RunStopped
    from siap.formats.recording import Recorder
    from siap.picture import Picture
    from siap.pipeline import default_policy_name, evaluation_times, tracker_config_for
    from siap.scenario import load_scenario
    from siap.sharing.policy import load_policy
    from siap.simulation import simulate as run_simulation

    _positive(step_s, "--step-s")
    _seed(seed)
    _output_path(out_dir, "--output", folder=True)
    sc = load_scenario(scenario, seed=seed)
    if duration_s is not None:
        _positive(duration_s, "--duration-s", at_most=86400.0)
        sc = sc.model_copy(update={"duration_s": float(duration_s)})
    _step_count(sc.duration_s, step_s, "--step-s")
    policy = policy or default_policy_name(sc.name)
    if policy is None:
        raise InputError(f"scenario {sc.name}: no built-in policy of that name; pass --policy FILE")
    pol = load_policy(policy)
    with _progress() as progress:
        bars = _Bars(progress)
        sim = run_simulation(sc, progress=bars)
        times = evaluation_times(sim.truth, step_s)
        # plots and truth first, then every picture written as it is made (none held in memory):
        # a run stopped early leaves a readable recording of what it had. With --centralised
        # (computed after the run) the pictures are held and written in time order at the end.
        rec = Recorder(out_dir, metadata={**_frame_metadata(sc), "policy": pol.name})
        for lo in range(0, len(sim.plots), 65_536):
            rec.on_plots(sim.plots[lo : lo + 65_536])
        rec.on_truth(sim.truth)
        try:
            result = run_coalition(
                sim.plots, pol, times,
                origin=(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m),
                sensor_ids=[s.id for s in sim.sensors],
                tracker_config=tracker_config_for(sc),
                centralised=centralised,
                progress=bars,
                sinks=() if centralised else (rec,),
                keep_pictures=centralised,
            )
        except RunStopped as stop:
            manifest = rec.close()
            raise RunStopped(
                f"record stopped by {stop.describe_cause()}; kept: a readable recording of {manifest['pictures']} "
                f"pictures in {out_dir} (recording.json); to resume, run the same command again", stop.cause,
            ) from None
    if centralised:
        kinds = {"coalition": result.coalition, "own": result.own, "centralised": result.centralised}
        for t in result.times:
            for kind, pictures in kinds.items():
                for partner, tracks in pictures.items():
                    rec.on_picture(Picture(partner, float(t), tracks[tracks["time_s"] == t], kind))
    manifest = rec.close()
    out.print(
        f"{manifest['rows']['plots']} plots, {manifest['rows']['truth']} truth states, "
        f"{manifest['pictures']} pictures ({manifest['rows'].get('tracks', 0)} track rows) -> {out_dir}"
    )


modes_app = typer.Typer(help="Mode S / ADS-B input: decode Beast, AVR and JSON-lines files.", no_args_is_help=True)
app.add_typer(modes_app, name="modes")


def _parse_receiver(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not (-90 <= values[0] <= 90 and -180 <= values[1] <= 180):
        raise InputError(f"--receiver {text!r}: expected LAT,LON[,ALT] (deg, deg, m)")
    if len(values) == 3 and not -500.0 <= values[2] <= 20_000.0:  # NaN fails too
        raise InputError(f"--receiver {text!r}: ALT: expected a height of -500..20000 m")
    return values[0], values[1], values[2] if len(values) == 3 else 0.0


def _parse_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not 0.0 <= value < 2.0**32:  # NaN and infinity fail too
            raise InputError(f"--start-time {text!r}: expected Unix seconds from 0 to 2**32 (year 2106)")
        return value
    from datetime import UTC, datetime

    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--start-time {text!r}: expected Unix seconds or an ISO 8601 time") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


@modes_app.command("decode")
def modes_decode(
    path: Annotated[Path, typer.Argument(help="Mode S file: .bin (Beast), .avr, .jsonl[.gz]")],
    output: Annotated[Path, typer.Option("-o", "--output", help="plots Parquet file to write")] = Path("plots.parquet"),
    receiver: Annotated[str, typer.Option(help="receiver position LAT,LON[,ALT] (deg, deg, m)")] = "",
    receiver_id: Annotated[str, typer.Option(help="sensor id of the plots")] = "adsb-1",
    partner: Annotated[str, typer.Option(help="owning partner (ISO 3166 alpha-3)")] = "",
    start_time: Annotated[str | None, typer.Option(help="Unix time or ISO 8601 of the first 12 MHz timestamp (Beast, AVR @); default: the file's modification time")] = None,
) -> None:
    """Decode a Mode S file into ADS-B plots; print the counts and one line per dropped frame
    (the first few of each reason)."""
    import logging

    from siap import records
    from siap.formats import modes

    if not receiver:
        raise InputError("--receiver: required, LAT,LON[,ALT] (deg, deg, m)")
    lat, lon, alt = _parse_receiver(receiver)
    if len(partner) > 3 or len(receiver_id) > 16:
        raise InputError("--partner: at most 3 letters; --receiver-id: at most 16 characters")
    _input_file(path, "PATH", "Mode S frames")
    _output_path(output, "--output")
    try:
        modes.file_kind(path)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    rc = modes.ReceiverConfig(receiver_id=receiver_id, partner=partner, lat_deg=lat, lon_deg=lon, alt_m=alt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("siap: %(message)s"))
    mlog = logging.getLogger("siap.formats.modes")
    mlog.addHandler(handler)
    try:
        try:
            plots, _, counts = modes.decode_file(path, rc, start_time_s=_parse_time(start_time))
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
    finally:
        mlog.removeHandler(handler)
    records.write_parquet(
        plots, output,
        metadata={"origin_lat_deg": repr(lat), "origin_lon_deg": repr(lon), "origin_alt_m": repr(alt), "source": str(path)},
    )
    main_keys = ("frames", "squitters", "decoded", "positions", "plots", "velocities")
    out.print(", ".join(f"{k} {counts.get(k, 0)}" for k in main_keys), soft_wrap=True)
    dropped = {k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_")}
    skipped = {k.removeprefix("skipped_"): v for k, v in counts.items() if k.startswith("skipped_")}
    out.print("dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "none"))
    if skipped:
        out.print("skipped (valid, nothing for a plot): " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    out.print(f"{len(plots)} plots -> {output}")


# --- end of formats commands -------------------------------------------------------------------
# ---- ASTERIX (siap.formats.asterix) --------------------------------------------------------

asterix_app = typer.Typer(help="ASTERIX: decode CAT048/034/021 feeds into plots; write plots and tracks as ASTERIX.", no_args_is_help=True)
app.add_typer(asterix_app, name="asterix")


def _asterix_sites(sites: Path | None):
    from siap.formats.asterix import Sites, load_sites

    if sites is None:
        return Sites()
    _existing_file(sites, "--sites")
    return load_sites(sites)


@asterix_app.command("decode")
def asterix_decode(
    input_path: Annotated[Path, typer.Argument(metavar="FILE", help="raw ASTERIX (.ast, .raw), pcap or pcapng capture")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="plots Parquet file to write (needs --sites)")] = None,
    sites: Annotated[Path | None, typer.Option(help="sites YAML: SAC/SIC -> sensor id, partner, position, noise")] = None,
    date: Annotated[str | None, typer.Option(help="UTC date of a raw file's first record, YYYY-MM-DD (captures carry their own)")] = None,
) -> None:
    """Decode an ASTERIX file into plots; print records per category, drops and unknown SAC/SIC."""
    from siap import records
    from siap.formats.asterix import AsterixFileSource, drop_summary

    if output is not None and sites is None:
        raise typer.BadParameter("writing plots needs --sites (SAC/SIC -> sensor)", param_hint="--output")
    _input_file(input_path, "FILE", "ASTERIX data blocks or a capture")
    if output is not None:
        _output_path(output, "--output")
    src = AsterixFileSource(input_path, _asterix_sites(sites), date=date)
    plots = src.read_all()
    out.print(f"{input_path}: {drop_summary(src.stats)}", soft_wrap=True)
    if src.stats.skipped_packets:
        out.print("skipped capture packets: " + ", ".join(f"{k} {v}" for k, v in src.stats.skipped_packets.items()))
    if output is not None:
        records.write_parquet(plots, output, metadata={"source": str(input_path), "format": "asterix"})
        out.print(f"{len(plots)} plots -> {output}")


@asterix_app.command("listen")
def asterix_listen(
    port: Annotated[int, typer.Option(min=1, max=65535, help="UDP port to listen on")],
    sites: Annotated[Path, typer.Option(help="sites YAML: SAC/SIC -> sensor id, partner, position, noise")],
    output: Annotated[Path, typer.Option("-o", "--output", help="plots Parquet file to write")] = Path("plots.parquet"),
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    group: Annotated[str | None, typer.Option(help="IPv4 multicast group to join")] = None,
    interface: Annotated[str, typer.Option(help="interface address for the multicast group")] = "127.0.0.1",
    date: Annotated[str | None, typer.Option(help="UTC date of the feed (a replayed old feed); default: the receive time")] = None,
    idle_timeout_s: Annotated[float, typer.Option(help="stop after this many seconds without a datagram")] = 10.0,
) -> None:
    """Record a live ASTERIX feed (UDP, unicast or multicast) as plots until it goes quiet."""
    from siap import records
    from siap.formats.asterix import AsterixUdpSource, drop_summary

    _positive(idle_timeout_s, "--idle-timeout-s", at_most=86400.0)
    _output_path(output, "--output")
    site_cfg = _asterix_sites(sites)
    try:
        src = AsterixUdpSource(site_cfg, port, host=host, group=group, interface=interface,
                               date=date, idle_timeout_s=idle_timeout_s)  # fmt: skip
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on {group or host}:{port} ({exc.strerror or exc})") from None
    batches = list(src)
    plots = records.concatenate(batches) if batches else records.empty_plots(0)
    records.write_parquet(plots, output, metadata={"source": f"udp://{group or host}:{port}", "format": "asterix"})
    out.print(f"udp {group or host}:{port}: {drop_summary(src.stats)}", soft_wrap=True)
    out.print(f"{len(plots)} plots -> {output}")


@asterix_app.command("encode")
def asterix_encode(
    plots_path: Annotated[Path, typer.Argument(help="plots Parquet file (e.g. from siap simulate)")],
    sites: Annotated[Path, typer.Option(help="sites YAML giving each sensor its SAC/SIC")],
    output: Annotated[Path, typer.Option("-o", "--output", help="raw ASTERIX file to write")] = Path("plots.ast"),
) -> None:
    """Write 2D radar plots as CAT048 and ADS-B plots as CAT021 (other plots are counted and left out)."""
    from siap.formats.asterix import encode_cat021, encode_cat048, plots_to_cat021, plots_to_cat048
    from siap.records import MeasurementKind

    _output_path(output, "--output")
    plots, _ = _read_batch(plots_path, "plots")
    site_cfg = _asterix_sites(sites)
    r2 = plots[plots["kind"] == MeasurementKind.RADAR_2D]
    ad = plots[plots["kind"] == MeasurementKind.ADSB]
    try:
        blocks = encode_cat048(plots_to_cat048(r2, site_cfg)) + encode_cat021(plots_to_cat021(ad, site_cfg))
    except ValueError as exc:
        raise InputError(f"{sites}: {exc}") from None
    output.write_bytes(b"".join(blocks))
    skipped = len(plots) - len(r2) - len(ad)
    out.print(f"{len(r2)} CAT048 + {len(ad)} CAT021 records -> {output}" + (f" ({skipped} 3D radar plots left out)" if skipped else ""))


@asterix_app.command("tracks")
def asterix_tracks(
    tracks_path: Annotated[Path, typer.Argument(help="tracks Parquet file (from siap track)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="raw ASTERIX file to write")] = Path("tracks.ast"),
    sac: Annotated[int, typer.Option(min=0, max=255, help="SDPS system area code")] = 0,
    sic: Annotated[int, typer.Option(min=0, max=255, help="SDPS system identification code")] = 1,
) -> None:
    """Write a tracks file as CAT062 (one batch per snapshot time) with CAT065 status and end-of-batch messages."""
    from siap.formats.asterix import Cat062Writer

    _output_path(output, "--output")
    tracks, _ = _read_batch(tracks_path, "tracks")
    with open(output, "wb") as f:
        writer = Cat062Writer(f.write, sac=sac, sic=sic)
        for t in np.unique(tracks["time_s"]):
            writer.write_tracks(tracks[tracks["time_s"] == t], float(t))
    out.print(f"{writer.tracks_sent} CAT062 records in {writer.batch} batches, {writer.blocks_sent} data blocks -> {output}")


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from siap.scenario import builtin_names

    for name in builtin_names():
        out.print(name)


# --- distributed coalition: node roles, up, down (siap.nodes; docs/transport.md) -------------
@app.command("node")
def node_cmd(
    role: Annotated[str, typer.Argument(help="gateway | partner | cop")],
    config: Annotated[Path, typer.Option("--config", help="node configuration file (YAML)")],
) -> None:
    """Run one node of a distributed coalition (until its run ends, or SIGTERM)."""
    import logging

    from siap.errors import ConfigError
    from siap.nodes import load_node_config
    from siap.nodes.roles import run_cop, run_gateway, run_partner

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_node_config(config)
    if role != cfg.role:
        raise ConfigError(f"{config}: role: the file is a {cfg.role} node's configuration, not a {role} node's")
    if role == "cop":
        run_cop(cfg)
        return
    summary = (run_gateway if role == "gateway" else run_partner)(cfg)
    out.print(json.dumps(summary), markup=False, highlight=False, soft_wrap=True)


@app.command("up")
def up_cmd(
    scenario: Annotated[str, typer.Argument(help="built-in scenario name or YAML file")],
    policy: Annotated[str | None, typer.Option("--policy", help="policy name or file (default: the scenario's)")] = None,
    run_dir: Annotated[Path, typer.Option("--dir", help="where keys, configs, logs and state go")] = Path("run"),
    speed: Annotated[float, typer.Option("--speed", min=0.001, max=10_000, help="replay speed, x real time")] = 1.0,
    restart: Annotated[str | None, typer.Option("--restart", help="start again one stopped node of the network in --dir (e.g. partner-JPN)")] = None,
) -> None:
    """Start a local coalition network: a NATS server per partner site (a JetStream cluster, an
    account per partner, TLS) and every node (gateway, partner, COP per partner), detached.
    With --restart NAME, start again one node of a running network (it resumes from its snapshot)."""
    from siap.errors import ConfigError
    from siap.nodes.up import restart as restart_node
    from siap.nodes.up import up
    from siap.pipeline import default_policy_name

    if restart is not None:
        rec = restart_node(run_dir, restart)
        out.print(f"{rec.name}: restarted, PID {rec.pid}", markup=False, highlight=False)
        return
    if policy is None:
        policy = default_policy_name(Path(scenario).stem if Path(scenario).exists() else scenario)
        if policy is None:
            raise ConfigError(f"{scenario}: (scenario): no built-in policy of that name; pass --policy FILE")
    net = up(scenario, policy, run_dir, speed=speed)
    out.print(f"network up in {net.dir} (run {net.run}); stop it with: siap down --dir {run_dir}")
    for p in net.partners:
        site = next(s for s in net.sites if s.partner == p)
        cop = f"COP http://127.0.0.1:{net.cop_ports[p]}/  token {net.tokens[p]}" if p in net.cop_ports else ""
        out.print(f"  {p}: NATS {site.url}  {cop}", markup=False, highlight=False)


@app.command("down")
def down_cmd(
    run_dir: Annotated[Path, typer.Option("--dir", help="the directory given to 'siap up'")] = Path("run"),
) -> None:
    """Stop exactly the processes 'siap up' started in --dir (nodes, then servers)."""
    from siap.nodes.up import down

    for name, outcome in down(run_dir):
        out.print(f"{name}: {outcome}", markup=False, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and an exit code.

    Usage errors (a missing or malformed option, an unknown command) and siap's own errors are
    printed as one line on stderr, exit 2 (or the error's code), never a traceback.
    """
    import os
    import signal
    import threading

    from siap.errors import Terminated

    usage_error = typer.BadParameter.__mro__[1]  # click's UsageError (typer vendors click)
    no_args = getattr(sys.modules[usage_error.__module__], "NoArgsIsHelpError", ())

    def on_sigterm(signum, frame):  # SIGTERM ends a run like Ctrl-C: it keeps what it has
        raise Terminated()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        code = app(args=argv, standalone_mode=False)
    except no_args as exc:
        out.print(exc.format_message(), markup=False, highlight=False)
        sys.exit(2)
    except usage_error as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "siap"
        message = " ".join(exc.format_message().split())
        console.print(f"siap: error: {where}: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except SiapError as exc:
        console.print(f"siap: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # an output path that is a file where a folder is needed, a full disk, ...
        where = exc.filename if exc.filename is not None else "(file)"
        console.print(f"siap: error: {where}: {exc.strerror or exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except Terminated:
        console.print("siap: terminated (SIGTERM) before a run had anything to keep")
        sys.exit(143)
    except (KeyboardInterrupt, typer.Abort):
        console.print("siap: interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user error: one line (SIAP_TRACEBACK=1 shows where)
        if os.environ.get("SIAP_TRACEBACK"):
            raise
        text = " ".join(str(exc).split())[:300]
        console.print(f"siap: internal error: {type(exc).__name__}: {text} (set SIAP_TRACEBACK=1 to see where)",
                      markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
