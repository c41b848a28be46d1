"""Runs that end badly keep what they have: a coalition run (``siap coalition``) or a recording
(``siap record``) stopped mid-way by SIGINT, SIGTERM or an error writes its pictures so far,
closes and anchors its audit logs (which verify), writes its counters, and says in one line
what it kept and how to resume; it exits non-zero (130, 143, 1) without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siap.formats.recording import read_manifest, read_pictures
from siap.sharing.audit import verify_coalition_audit
from siap.sharing.signing import TrustStore

DATA = Path(__file__).parent / "data"
SRC = Path(__file__).resolve().parents[1] / "src"

# Runs the CLI with a partner update that, on its STOP_AT-th call, sends the process a signal or
# raises: deterministic "mid-way", whatever the machine's speed.
WRAPPER = """
import os, signal, sys
from siap.runtime import partner
how, at = os.environ["HOW"], int(os.environ["STOP_AT"])
fuse, calls = partner.PartnerNode.fuse, [0]
def stopping_fuse(self, *a, **k):
    calls[0] += 1
    if calls[0] == at:
        if how == "error":
            raise RuntimeError("injected fault in the fuser")
        if how == "lose-server":
            os.kill(int(os.environ["NATS_PID"]), signal.SIGKILL)
            return fuse(self, *a, **k)
        os.kill(os.getpid(), getattr(signal, how))
    return fuse(self, *a, **k)
partner.PartnerNode.fuse = stopping_fuse
from siap.cli import main
main(sys.argv[1:])
"""


def _run(args: list[str], how: str, at: int = 7, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOW": how, "STOP_AT": str(at), **extra}
    env.pop("SIAP_TRACEBACK", None)
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env, timeout=600)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("siap:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(("how", "code", "words"), [
    ("SIGINT", 130, "SIGINT"), ("SIGTERM", 143, "SIGTERM"), ("error", 1, "injected fault in the fuser"),
])
def test_coalition_stopped_mid_way_keeps_pictures_audit_and_counters(tmp_path, how, code, words):
    out = tmp_path / "out"
    proc = _run(["coalition", str(DATA / "coalition_small.yaml"), "--policy", str(DATA / "coalition_small_policy.yaml"),
                 "--out", str(out), "--no-registration"], how)
    line = _one_line(proc)
    assert proc.returncode == code, proc.stderr
    assert words in line and "kept" in line and "resume" in line, line
    assert not (out / "report.html").exists()  # not a finished run's report
    partial = json.loads((out / "partial.json").read_text())
    assert partial["stop_s"] is not None and sum(partial["updates"].values()) >= 2
    assert partial["messages"]["published"] > 0
    # the pictures so far, readable, none past the stop
    pictures = list(read_pictures(out / "pictures"))
    assert pictures and max(p.time_s for p in pictures) <= partial["stop_s"]
    assert read_manifest(out / "pictures")["pictures"] >= len(pictures)  # (an empty picture has no rows)
    # the audit logs verify with the run's keys, each anchored in the others
    trust = TrustStore.load(out / "audit" / "trust.yaml")
    logs = {f"{p.name.removeprefix('audit-').removesuffix('.jsonl')}-node": p for p in (out / "audit").glob("audit-*.jsonl")}
    checks = verify_coalition_audit(logs, trust, partial["run"])
    assert len(checks) == 3 and all(v.ok for v in checks.values()), checks
    assert all(v["ok"] for v in partial["audit"].values())


@pytest.mark.slow
def test_record_stopped_by_sigterm_leaves_a_readable_recording(tmp_path):
    rec = tmp_path / "rec"
    proc = _run(["record", str(DATA / "coalition_small.yaml"), "--policy", str(DATA / "coalition_small_policy.yaml"),
                 "-o", str(rec)], "SIGTERM", at=10)
    line = _one_line(proc)
    assert proc.returncode == 143, proc.stderr
    assert "SIGTERM" in line and str(rec) in line, line
    manifest = read_manifest(rec)
    pictures = list(read_pictures(rec))
    assert manifest["rows"]["plots"] > 0 and manifest["rows"]["truth"] > 0
    assert 0 < len(pictures) <= manifest["pictures"]
    times = [p.time_s for p in pictures]
    assert times == sorted(times)


def test_run_coalition_stopped_by_an_error_gives_back_what_it_had(tmp_path, monkeypatch):
    """In process: the RunStopped carries the pictures and counters of the updates done, and the
    audit logs are closed, anchored and verify."""
    import numpy as np

    from siap import simulate
    from siap.coalition import run_coalition
    from siap.errors import RunStopped
    from siap.pipeline import evaluation_times, tracker_config_for
    from siap.runtime import partner
    from siap.scenario import load_scenario
    from siap.sharing.policy import load_policy

    sc = load_scenario(str(DATA / "coalition_small.yaml"))
    sim = simulate(sc)
    times = evaluation_times(sim.truth, 5.0)
    fuse, calls = partner.PartnerNode.fuse, [0]

    def failing_fuse(self, *a, **k):
        calls[0] += 1
        if calls[0] == 10:
            raise ValueError("injected")
        return fuse(self, *a, **k)

    monkeypatch.setattr(partner.PartnerNode, "fuse", failing_fuse)
    with pytest.raises(RunStopped) as stopped:
        run_coalition(sim.plots, load_policy(str(DATA / "coalition_small_policy.yaml")), times,
                      origin=(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m), tracker_config=tracker_config_for(sc),
                      audit_dir=tmp_path / "audit")
    err = stopped.value
    assert isinstance(err.cause, ValueError) and err.exit_code == 1 and "ValueError: injected" in err.describe_cause()
    coal = err.partial
    rt = coal.runtime
    assert np.isfinite(rt.stop_s) and sum(rt.updates.values()) >= 3
    kept_times = {float(t) for p in coal.partners for t in np.unique(coal.coalition[p]["time_s"])}
    assert kept_times and max(kept_times) <= rt.stop_s < times[-1]
    checks = verify_coalition_audit({f"{p}-node": path for p, path in coal.audit_paths.items()}, coal.trust, coal.run_id)
    assert all(v.ok for v in checks.values()), checks


def test_an_unexpected_error_is_one_line_without_traceback(monkeypatch, capsys):
    from siap import cli

    def broken() -> None:
        raise ZeroDivisionError("division by zero somewhere deep")

    monkeypatch.setattr(cli, "app", lambda args, standalone_mode: broken())
    monkeypatch.delenv("SIAP_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["scenarios"])
    err = capsys.readouterr().err
    assert ended.value.code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == ["siap: internal error: ZeroDivisionError: division by zero somewhere deep "
                                        "(set SIAP_TRACEBACK=1 to see where)"]


@pytest.mark.slow
def test_coalition_over_nats_that_loses_its_server_keeps_what_it_had(tmp_path):
    """The NATS server dies mid-run (SIGKILL): once the bus gives up (its unreachable timeout),
    the run stops with one line and keeps its pictures, audit logs and counters."""
    from nats_support import NatsServer

    server = NatsServer(tmp_path / "js").start()
    try:
        out = tmp_path / "out"
        proc = _run(["coalition", str(DATA / "coalition_small.yaml"), "--policy", str(DATA / "coalition_small_policy.yaml"),
                     "--out", str(out), "--no-registration", "--nats-url", server.url], "lose-server",
                    NATS_PID=str(server.proc.pid))
    finally:
        server.stop()
    line = _one_line(proc)
    assert proc.returncode == 1, proc.stderr
    assert "kept" in line and "partial.json" in line, line
    partial = json.loads((out / "partial.json").read_text())
    assert all(v["ok"] for v in partial["audit"].values()), partial["audit"]
    assert list(read_pictures(out / "pictures"))
