"""The scale benchmark runs end to end on a tiny network and reports what it declares."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.mark.parametrize("generator", ["builtin", "siap"])
def test_scale_bench_small_run(tmp_path, generator):
    pytest.importorskip("siap.tracking")
    if generator == "siap":
        pytest.importorskip("siap.simulation")
    import bench_tracker_scale as b

    out = tmp_path / "scale.json"
    res = b.main(["--targets", "60", "150", "--duration", "25", "--in-process", "--no-table",
                  "--generator", generator, "--out", str(out)])
    assert json.loads(out.read_text())["benchmark"] == "tracker_scale"
    assert len(res["runs"]) == 2 and res["growth"]["from_targets"] == 60
    for r in res["runs"]:
        assert r["generator"] == generator
        assert r["n_plots"] > r["n_false_alarm_plots"] > 0
        assert r["plots_per_s"] > 0 and r["plots_per_cpu_s"] > 0
        assert r["batch_latency_ms_p50"] <= r["batch_latency_ms_p99"] <= r["batch_latency_ms_max"]
        assert r["maxrss_mib_after_tracking"] > 0
        # the tracker holds about one confirmed track per target seen at least 3 times
        seen = r["targets_seen_3_times"]
        assert 0.7 * seen <= r["tracks_confirmed_or_coasting_at_end"] <= 1.3 * seen + 3
        # realised overlap histogram covers every target
        assert sum(r["radars_detecting_target_hist"].values()) == pytest.approx(1.0, abs=1e-3)
