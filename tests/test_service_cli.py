"""`siap serve`: a recording or a scenario served on a loopback port (tokens from a config
file or generated and printed), and its user errors as one line with exit code 2."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_support import coalition_run, free_port, wait_for

from siap.service import ServiceConfig, save_recording

DATA = Path(__file__).parent / "data"


def serve(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "siap.cli", "serve", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def test_serve_a_recording_with_a_config_file(tmp_path):
    coal, policy, sim = coalition_run()
    folder = save_recording(tmp_path / "rec", coal.coalition, "pacific", sensors=sim.sensors, truth=sim.truth, times=coal.times)
    cfg = ServiceConfig.generate(policy.partners, audit_log=tmp_path / "audit.jsonl")
    cfg_path = cfg.to_yaml(tmp_path / "service.yaml")
    port = free_port()
    proc = serve(str(folder), "--port", str(port), "--config", str(cfg_path), "--speed", "2", cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ready(url) or proc.poll() is not None, timeout_s=120, what="siap serve to be ready")
        assert proc.poll() is None
        jpn = {"Authorization": f"Bearer {cfg.tokens['JPN']}"}
        # the first picture (the run's start) is empty; the replay at x2 brings tracks
        wait_for(lambda: httpx.get(url + "/api/v1/partners/JPN/tracks", headers=jpn).json()["tracks"], what="tracks")
        assert httpx.get(url + "/api/v1/clock", headers={"Authorization": f"Bearer {cfg.tokens['JPN']}"}).json()["speed"] == 2
        assert httpx.get(url + "/api/v1/partners/AUS/tracks", headers={"Authorization": f"Bearer {cfg.tokens['JPN']}"}).status_code == 403
        assert "vendor/maplibre-gl.js" in httpx.get(url + "/").text
        assert httpx.get(url + "/static/vendor/world-atlas/land-50m.json").status_code == 200
    finally:
        out, err = stop(proc)
    assert "tokens generated" not in out  # the file's tokens are used
    assert f"admin http://127.0.0.1:{port}/#token={cfg.admin_tokens[0]}" in out
    assert "refuse" in (tmp_path / "audit.jsonl").read_text()


@pytest.mark.slow
def test_serve_a_scenario_prints_generated_tokens(tmp_path):
    port = free_port()
    proc = serve(
        str(DATA / "coalition_small.yaml"), "--policy", str(DATA / "coalition_small_policy.yaml"),
        "--duration-s", "20", "--port", str(port), cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ready(url) or proc.poll() is not None, timeout_s=300, what="siap serve to be ready")
        assert proc.poll() is None
        # the live runtime behind it takes the exercise clock's controls
        head = []
        for line in proc.stdout:  # the token lines come before "serving"
            head.append(line)
            if line.strip().startswith("admin"):
                break
        token = head[-1].split("#token=")[1].strip()
        admin = {"Authorization": f"Bearer {token}"}
        clock = httpx.post(url + "/api/v1/clock/pause", headers=admin).json()
        assert clock["paused"] and clock["speed"] == 1.0 and clock["end_s"] - clock["start_s"] == 20
        assert httpx.post(url + "/api/v1/clock/speed", headers=admin, json={"speed": 0}).status_code == 422
        assert httpx.post(url + "/api/v1/clock/speed", headers=admin, json={"speed": 3}).json()["speed"] == 3
        target = clock["start_s"] + 5
        assert httpx.post(url + "/api/v1/clock/seek", headers=admin, json={"time_s": target}).status_code == 200
        wait_for(lambda: httpx.get(url + "/api/v1/partners/JPN/tracks", headers=admin).json()["time_s"] == target,
                 timeout_s=60, what="the picture at the seek time")
        assert httpx.post(url + "/api/v1/clock/resume", headers=admin).json()["paused"] is False
        wait_for(lambda: httpx.get(url + "/api/v1/partners/JPN/tracks", headers=admin).json()["time_s"] > target,
                 what="the runtime moving on")
    finally:
        out, err = stop(proc)
    assert "tokens generated for this run only" in "".join(head)
    assert len(token) >= 16


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nosuch"], "nosuch: (file): an existing scenario file or a built-in name"),
        (["pacific", "--config", "missing.yaml"], "missing.yaml: --config: no such file"),
        (["pacific", "--policy", "nosuchpolicy"], "nosuchpolicy: (policy)"),
    ],
)
def test_serve_user_errors_are_one_line(tmp_path, args, needle):
    proc = subprocess.run([sys.executable, "-m", "siap.cli", "serve", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_serve_bad_recording_is_one_line(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "manifest.json").write_text("{")
    proc = subprocess.run([sys.executable, "-m", "siap.cli", "serve", "rec"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "manifest.json: expected JSON" in proc.stderr
