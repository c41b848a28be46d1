"""The accuracy benchmark's helpers (turn rate from truth velocities, track selection) against
known answers, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from siap import geo
from siap.records import empty_tracks, empty_truth

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_accuracy as b  # noqa: E402


def _circle_truth(rate_deg_s: float, speed_mps: float = 200.0, n: int = 60, truth_id: int = 1):
    """An aircraft turning at a constant rate (a level circle in a local ENU frame)."""
    frame = geo.LocalFrame(35.0, 135.0, 0.0)
    t = np.arange(n, dtype=float)
    w = math.radians(rate_deg_s)
    hdg = w * t
    if w == 0:
        enu = np.stack([speed_mps * t, np.zeros(n), np.full(n, 8000.0)], axis=1)
    else:
        r = speed_mps / w
        enu = np.stack([r * (1 - np.cos(hdg)), r * np.sin(hdg), np.full(n, 8000.0)], axis=1)
    vel_enu = np.stack([speed_mps * np.sin(hdg), speed_mps * np.cos(hdg), np.zeros(n)], axis=1)
    tr = empty_truth(n)
    tr["time_s"] = 1.7e9 + t
    tr["truth_id"] = truth_id
    tr["pos_ecef_m"] = frame.enu_to_ecef(enu)
    tr["vel_ecef_mps"] = frame.vec_enu_to_ecef(vel_enu)
    lat, lon, alt = frame.enu_to_geodetic(enu)
    tr["lat_deg"], tr["lon_deg"], tr["alt_m"] = lat, lon, alt
    return tr


def test_turn_rate_from_truth_velocities():
    tr = np.concatenate(
        [
            _circle_truth(3.0, truth_id=1),
            _circle_truth(0.0, truth_id=2),
            _circle_truth(-1.5, truth_id=3),
        ]
    )
    rng = np.random.default_rng(0)
    shuffled = tr[rng.permutation(len(tr))]
    w = b.turn_rate_deg_s(shuffled)
    for tid, want in ((1, 3.0), (2, 0.0), (3, 1.5)):
        got = w[shuffled["truth_id"] == tid]
        assert np.allclose(got, want, atol=0.02), (tid, got[:5])


def test_tracks_near_keeps_tracks_close_to_the_subset_at_the_same_time():
    tr = _circle_truth(2.0, n=3)
    tk = empty_tracks(4)
    tk["time_s"] = [tr["time_s"][0], tr["time_s"][0], tr["time_s"][1], tr["time_s"][2] + 5.0]
    tk["pos_ecef_m"] = [
        tr["pos_ecef_m"][0] + [100, 0, 0],
        tr["pos_ecef_m"][0] + [9000, 0, 0],
        tr["pos_ecef_m"][1],
        tr["pos_ecef_m"][2],
    ]
    near = b.tracks_near(tk, tr, 5000.0)
    assert len(near) == 2 and np.allclose(near["time_s"], tk["time_s"][[0, 2]])
    d = b._nearest_track_error(tr, tk)
    assert np.allclose(np.sort(d), [0.0, 100.0])


def test_remove_declared_undoes_the_simulated_bias():
    from siap.records import MeasurementKind, empty_plots
    from siap.sensors.base import SensorInfo

    p = empty_plots(2)
    p["sensor_id"] = ["A", "B"]
    p["kind"] = int(MeasurementKind.RADAR_3D)
    p["range_m"], p["azimuth_rad"], p["time_s"] = 1000.0, 0.001, 10.0
    s = SensorInfo(
        id="A",
        partner="JPN",
        type="ground_radar",
        kind=MeasurementKind.RADAR_3D,
        lat_deg=0,
        lon_deg=0,
        alt_m=0,
        scan_period_s=10,
        max_range_m=1e5,
        biases={"range_m": 100.0, "azimuth_rad": 0.002, "time_s": 0.5},
    )
    out = b._remove_declared(p, [s])
    assert (
        out["range_m"][0] == 900.0
        and math.isclose(out["azimuth_rad"][0], 2 * math.pi - 0.001)
        and out["time_s"][0] == 9.5
    )
    assert out[1].tobytes() == p[1].tobytes()


def test_accuracy_bench_tiny_run(tmp_path):
    out = tmp_path / "acc.json"
    res = b.main(["--duration", "60", "--scenarios", "paris-real", "--no-table", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "accuracy" and doc["duration_s"] == 60
    sc = res["scenarios"][0]
    assert set(sc["variants"]) == {"imm", "imm+registration", "imm+declared", "cv"}
    for v in sc["variants"].values():
        assert v["all"]["gospa_mean_m"] > 0 and 0 < v["all"]["siap_completeness"] <= 1
    assert set(sc["registration"]["declared"]) == set(sc["registration"]["estimated"])
