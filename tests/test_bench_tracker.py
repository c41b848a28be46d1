"""The side-by-side benchmark runs end to end (``--quick``) and its numbers make sense.

With the same CV model, noise, prior and gate, siap's single-CV tracker and Stone Soup's GNN
tracker are two independent implementations of the same Kalman filter; on identical inputs
their localisation errors must agree closely. Both must track: GOSPA well below the GOSPA of
reporting nothing (N c / 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

pytest.importorskip("stonesoup")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    import bench_tracker_stonesoup as b

    if not b.siap_available():
        pytest.skip("siap.tracking not importable")
    out = tmp_path_factory.mktemp("bench") / "r.json"
    res = b.main(["--quick", "--no-table", "--out", str(out),
                  "--trackers", "stonesoup-gnn", "siap"])
    res["_file"] = json.loads(out.read_text())
    return res


def test_result_file_has_the_declared_fields(result):
    f = result["_file"]
    for key in ("timestamp_utc", "machine", "command", "summary", "runs", "speed_ratios", "gospa"):
        assert key in f
    for key in ("platform", "cpu_model", "cpu_count", "python", "numpy", "stonesoup"):
        assert key in f["machine"]
    assert f["gospa"]["c_m"] == 500.0 and f["gospa"]["p"] == 1.0
    trackers = {r["tracker"] for r in f["runs"]}
    assert trackers == {"stonesoup-gnn", "siap"}
    assert {r["n_targets"] for r in f["runs"]} == {5, 15}


def test_both_trackers_track(result):
    for r in result["runs"]:
        n = r["n_targets"]
        assert r["gospa_mean"] < 0.5 * n * 500.0 / 2, r["tracker"]
        assert 0.5 * n <= r["n_tracks_final"] <= 1.5 * n, r["tracker"]
        assert r["detections"] > 0.9 * n * r["n_scans_run"]
        assert r["detections_per_s"] > 0


def test_siap_cv_matches_stonesoup_localisation(result):
    by = {(r["tracker"], r["n_targets"]): r for r in result["runs"]}
    for n in (5, 15):
        ss, si = by[("stonesoup-gnn", n)], by[("siap", n)]
        assert si["gospa_localisation_mean"] == pytest.approx(ss["gospa_localisation_mean"], rel=0.1)
        assert si["gospa_mean"] == pytest.approx(ss["gospa_mean"], rel=0.25)


def test_speed_ratios_are_consistent(result):
    for r in result["speed_ratios"]:
        assert r["speedup_siap_over_stonesoup"] == pytest.approx(
            r["per_scan_ms_stonesoup"] / r["per_scan_ms_siap"])
