"""The `siap` command: the pieces end to end, and user errors as one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parent / "data"
SCENARIO = DATA / "coalition_small.yaml"
POLICY = DATA / "coalition_small_policy.yaml"


def siap(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "siap.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_scenarios_lists_the_builtins():
    proc = siap("scenarios")
    assert proc.returncode == 0
    assert {"pacific", "paris-real"} <= set(proc.stdout.split())


def test_simulate_track_evaluate_chain(tmp_path):
    plots = tmp_path / "plots.parquet"
    proc = siap("simulate", str(SCENARIO), "-o", str(plots))
    assert proc.returncode == 0, proc.stderr
    truth = tmp_path / "plots.truth.parquet"
    assert plots.exists() and truth.exists()
    tracks = tmp_path / "tracks.parquet"
    proc = siap("track", str(plots), "-o", str(tracks), "--output-interval-s", "5")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "m.json"
    proc = siap("evaluate", "--truth", str(truth), "--tracks", str(tracks), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert 0.5 < summary["siap_completeness"] <= 1.0
    assert summary["n_steps"] > 10


def test_coalition_command_and_audit_verify(tmp_path):
    out = tmp_path / "coal"
    proc = siap("coalition", str(SCENARIO), "--policy", str(POLICY), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "coalition"
    for partner, row in metrics["partner_table"].items():
        assert row["coalition"]["siap_completeness"] >= row["own"]["siap_completeness"], partner
        # against what the partner may know (truth seen by sensors releasable to it): at least
        # as complete as against everything observable (its picture rests on those sensors)
        may_know = row["coalition"]["siap_completeness_vs_releasable"]
        assert row["coalition"]["siap_completeness"] - 0.01 <= may_know <= 1.0, partner
    assert all(a["ok"] for a in metrics["audit"].values())
    assert (out / "report.html").stat().st_size > 10_000
    audit = out / "audit"
    log = audit / "audit-JPN.jsonl"
    run = metrics["audit"]["JPN"]["run"]
    args = ["audit", "verify", str(log), "--trust", str(audit / "trust.yaml"), "--node", "JPN-node", "--run", run]
    anchors = ["--anchor", str(audit / "audit-USA.jsonl"), "--anchor", str(audit / "audit-AUS.jsonl")]
    proc = siap(*args, *anchors)
    assert proc.returncode == 0, proc.stderr
    assert "with signatures, anchored" in proc.stdout
    # no anchor: not accepted (a cut tail would go unseen); another node's log: refused
    assert siap(*args).returncode == 1
    proc = siap("audit", "verify", str(audit / "audit-USA.jsonl"), *args[3:], *anchors)
    assert proc.returncode == 1 and "another node" in proc.stderr
    # the trust store must be given explicitly
    _one_line_error(siap("audit", "verify", str(log), "--node", "JPN-node", "--run", run), "--trust")
    _one_line_error(siap(*args[:4], str(audit), *args[5:], *anchors), str(audit), "trust")
    lines = log.read_text().splitlines()
    lines.pop(1)  # remove an entry
    log.write_text("\n".join(lines) + "\n")
    proc = siap(*args, *anchors)
    assert proc.returncode == 1
    assert "FAILED at seq 1" in proc.stderr
    assert "Traceback" not in proc.stderr


def _broken_scenario(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(SCENARIO.read_text())
    mutate(doc)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["sensors"][0].update(colour="blue"), "colour"),
        (lambda d: d["sensors"][0].update(scan_period_s="fast"), "scan_period_s"),
        (lambda d: d["sensors"][0].update(scan_period_s=-5), "scan_period_s"),
        (lambda d: d["sensors"][0].update(partner="FRA"), "partner"),
        (lambda d: d.update(duration_s=[1, 2]), "duration_s"),
    ],
    ids=["unknown-field", "wrong-type", "negative-scan-period", "undeclared-partner", "wrong-type-top"],
)
def test_malformed_scenario_is_one_line_exit_2(tmp_path, mutate, field):
    path = _broken_scenario(tmp_path, mutate)
    _one_line_error(siap("simulate", str(path), "-o", str(tmp_path / "p.parquet")), "broken.yaml", field)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsensors: [\n  - id: a\n")
    _one_line_error(siap("simulate", str(path)), "bad.yaml")


def test_missing_inputs_are_one_line_exit_2(tmp_path):
    _one_line_error(siap("simulate", str(tmp_path / "nope.yaml")), "nope.yaml")
    _one_line_error(siap("track", str(tmp_path / "nope.parquet")), "nope.parquet")
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("hello")
    _one_line_error(siap("track", str(not_parquet)), "x.parquet")


def test_wrong_record_kind_names_the_missing_column(tmp_path):
    plots = tmp_path / "plots.parquet"
    assert siap("simulate", str(SCENARIO), "-o", str(plots)).returncode == 0
    # a plots file given where truth is expected
    _one_line_error(siap("evaluate", "--truth", str(plots), "--tracks", str(plots)), "plots.parquet", "column")


def test_bad_policy_is_one_line_exit_2(tmp_path):
    doc = yaml.safe_load(POLICY.read_text())
    doc["partners"]["JPN"]["sensors"]["JPN-R1"]["label"] = "SIAP//SORTOF SECRET"
    path = tmp_path / "pol.yaml"
    path.write_text(yaml.safe_dump(doc))
    _one_line_error(siap("coalition", str(SCENARIO), "--policy", str(path), "--out", str(tmp_path / "o")), "pol.yaml")


def test_coalition_over_nats_matches_the_in_process_run(tmp_path):
    from nats_support import NatsServer

    server = NatsServer(tmp_path / "store").start()
    try:
        proc = siap("coalition", str(SCENARIO), "--policy", str(POLICY), "--out", str(tmp_path / "n"),
                    "--nats-url", server.url)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    over_nats = json.loads((tmp_path / "n" / "metrics.json").read_text())
    assert siap("coalition", str(SCENARIO), "--policy", str(POLICY), "--out", str(tmp_path / "i")).returncode == 0
    in_process = json.loads((tmp_path / "i" / "metrics.json").read_text())
    assert over_nats["messages"] == in_process["messages"]
    assert over_nats["partner_table"] == in_process["partner_table"]
    assert over_nats["commonality"] == in_process["commonality"]


def test_unreachable_nats_is_one_line_error(tmp_path):
    from nats_support import free_port

    proc = siap("coalition", str(SCENARIO), "--policy", str(POLICY), "--out", str(tmp_path / "o"),
                "--nats-url", f"nats://127.0.0.1:{free_port()}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("siap: error")]) == 1


def test_traffic_with_no_feasible_route_is_one_line_exit_2(tmp_path):
    doc = yaml.safe_load((Path(__file__).parents[1] / "src/siap/scenario/builtin/pacific.yaml").read_text())
    traffic = next(t for t in doc["targets"] if t["type"] == "traffic")
    traffic["min_route_km"], traffic["max_route_km"] = 9000, 9500  # no such airport pair
    path = tmp_path / "noroute.yaml"
    path.write_text(yaml.safe_dump(doc))
    _one_line_error(siap("simulate", str(path), "-o", str(tmp_path / "p.parquet")), "noroute.yaml", "airport")
    traffic["min_route_km"], traffic["max_route_km"] = 900, 800
    path.write_text(yaml.safe_dump(doc))
    _one_line_error(siap("simulate", str(path), "-o", str(tmp_path / "p.parquet")), "min_route_km")


def test_loader_only_field_is_rejected(tmp_path):
    _one_line_error(siap("simulate", str(_broken_scenario(tmp_path, lambda d: d.update(source_path="/etc")))), "source_path")
