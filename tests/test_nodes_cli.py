"""`siap node` configuration errors (one line, exit 2) and `siap up` / `siap down` of a whole
local network: servers and every node started detached, the COP serving each partner's
picture, a killed node restarted into the running network, and nothing left after `down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from nodes_support import SRC, wait_for

from siap.nodes.network import is_running, load_records

ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def siap(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siap.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


GOOD = {
    "role": "partner", "partner": "JPN", "run": "r1", "scenario": "pacific", "policy": "pacific",
    "nats": {"url": "tls://127.0.0.1:4222", "user": "JPN", "password": "x", "ca_file": "ca.pem"},
    "trust": "trust.yaml", "key": "JPN.pem",
}


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"role": "fusion"}, "role", "'gateway', 'partner' or 'cop'"),
        ({"nats": {"url": "tls://10.0.0.1:4222"}}, "nats.url", "should match pattern"),
        ({"update_period_s": -1}, "update_period_s", "greater than 0"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        ({"key": None}, "key", "needs its private key"),
        ({"partner": "jpn"}, "partner", "should match pattern"),
    ],
)
def test_a_bad_node_config_is_one_line_naming_the_field_exit_2(tmp_path, change, field, expected):
    cfg = {**GOOD, **change}
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = siap("node", "partner", "--config", str(path))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert f"{path}: {field}" in lines[0] and expected in lines[0]
    assert "Traceback" not in r.stderr


def test_a_node_config_of_another_role_or_a_missing_file_is_refused(tmp_path):
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    r = siap("node", "gateway", "--config", str(path))
    assert r.returncode == 2 and "role: the file is a partner node's configuration" in r.stderr
    r = siap("node", "partner", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml: (file)" in r.stderr
    r = siap("down", "--dir", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "processes.json: (file)" in r.stderr


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_up_serves_every_partners_picture_a_killed_node_rejoins_and_down_leaves_nothing(tmp_path):
    run = tmp_path / "run"
    r = siap("up", "pacific", "--dir", str(run), "--speed", "5")
    assert r.returncode == 0, r.stderr
    assert "COP http://127.0.0.1:" in r.stdout
    try:
        info = json.loads((run / "processes.json").read_text())
        recs = load_records(run / "processes.json")
        assert sorted(r.name for r in recs) == sorted(
            [f"nats-{p}" for p in ("AUS", "JPN", "USA")]
            + [f"{role}-{p}" for role in ("gateway", "partner", "cop") for p in ("AUS", "JPN", "USA")])
        tokens = {p: yaml.safe_load((run / "config" / f"service-{p}.yaml").read_text())["tokens"][p] for p in info["cop"]}

        def picture(p: str) -> dict | None:
            try:
                return _get(info["cop"][p] + "api/v1/partners", tokens[p])["partners"][0]
            except OSError:
                return None

        for p in ("AUS", "JPN", "USA"):  # each COP shows its partner's live picture
            wait_for(lambda p=p: (picture(p) or {}).get("tracks", 0) > 0, 150, f"{p}'s COP picture with tracks", 1.0)
        # JPN's COP token does not reach another partner's view there
        with pytest.raises(urllib.error.HTTPError):
            _get(info["cop"]["JPN"] + "api/v1/partners/USA/tracks", tokens["JPN"])
        # kill JPN's partner node: the others go on; restarted, it resumes from its snapshot
        jpn = next(r for r in recs if r.name == "partner-JPN")
        usa_before = picture("USA")["time_s"]
        os.kill(jpn.pid, signal.SIGKILL)
        time.sleep(2.0)
        wait_for(lambda: picture("USA")["time_s"] > usa_before + 5.0, 60, "USA's picture moving on without JPN", 0.5)
        assert all(is_running(r) for r in load_records(run / "processes.json") if r.name != "partner-JPN")
        r = siap("up", "--dir", str(run), "--restart", "partner-JPN", "pacific")
        assert r.returncode == 0, r.stderr
        log = run / "logs" / "partner-JPN.log"
        wait_for(lambda: "restored from its snapshot" in log.read_text(), 60, "JPN restored", 0.5)
        jpn_t = picture("JPN")["time_s"]
        wait_for(lambda: picture("JPN")["time_s"] > jpn_t, 90, "JPN's picture moving again", 1.0)
    finally:
        r = siap("down", "--dir", str(run))
    assert r.returncode == 0, r.stderr
    recs = load_records(run / "processes.stopped.json")
    assert not any(is_running(r) for r in recs)
    # no process of ours is left at all (by command line naming this run's directory)
    left = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(run) in cmd:
                left.append(cmd)
    assert left == []
