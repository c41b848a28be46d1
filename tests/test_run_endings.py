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
        os.kill(os.getpid(), getattr(signal, how))
    return fuse(self, *a, **k)
partner.PartnerNode.fuse = stopping_fuse
from siap.cli import main
main(sys.argv[1:])
"""


def _run(args: list[str], how: str, at: int = 7) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOW": how, "STOP_AT": str(at)}
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
