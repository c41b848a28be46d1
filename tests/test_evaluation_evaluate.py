"""evaluate(): the summary, the per-time table and the JSON file agree with the metric
functions; track statuses; defaults; bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from test_evaluation_support import random_scenario

import siap
from siap import records
from siap.errors import ConfigError, InputError
from siap.evaluation import DEFAULTS, evaluate, gospa_over_time, ospa_over_time, siap_metrics


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(3)
    truth, tracks = random_scenario(rng, n_steps=40, n_truths=6, n_false=3, noise_m=150.0, dt_s=5.0)
    return truth, tracks


def test_summary_matches_the_metric_functions(run):
    truth, tracks = run
    ev = evaluate(truth, tracks, gospa_c_m=2000.0, association_threshold_m=1000.0)
    s = ev.summary()
    g = gospa_over_time(truth, tracks, c=2000.0, p=1, alpha=2)
    o = ospa_over_time(truth, tracks, c=2000.0, p=1)
    m = siap_metrics(truth, tracks, association_threshold_m=1000.0)
    assert s["gospa_mean_m"] == pytest.approx(g.distance.mean())
    assert s["gospa_localisation_mean"] + s["gospa_missed_mean"] + s[
        "gospa_false_mean"
    ] == pytest.approx(s["gospa_mean_m"])
    assert s["ospa_mean_m"] == pytest.approx(o.distance.mean())
    for k, v in m.run_metrics().items():
        assert s[f"siap_{k}"] == pytest.approx(v)
    n_steps = len(np.unique(np.concatenate([truth["time_s"], tracks["time_s"]])))
    assert (
        s["n_steps"] == n_steps
        and s["n_truth_states"] == len(truth)
        and s["n_track_states"] == len(tracks)
    )
    assert (
        s["gospa_c_m"] == 2000.0
        and s["ospa_c_m"] == 2000.0
        and s["association_threshold_m"] == 1000.0
    )
    json.dumps(s)  # plain types only
    assert all(isinstance(v, int | float) for v in s.values())


def test_per_time_table(run):
    truth, tracks = run
    ev = evaluate(truth, tracks)
    df = ev.per_time
    times = np.unique(np.concatenate([truth["time_s"], tracks["time_s"]]))
    assert isinstance(df, pd.DataFrame) and df.index.name == "time_s" and len(df) == len(times)
    for col in (
        "gospa_m",
        "ospa_m",
        "completeness",
        "ambiguity",
        "spuriousness",
        "n_truths",
        "n_tracks",
        "position_accuracy_m",
        "velocity_accuracy_mps",
    ):
        assert col in df.columns
    np.testing.assert_allclose(df.index.to_numpy(), times)
    np.testing.assert_array_equal(df["n_truths"].to_numpy(), ev.siap.n_truths)
    assert (
        df["gospa_localisation"] + df["gospa_missed"] + df["gospa_false"]
    ).to_numpy() == pytest.approx(df["gospa_m"].to_numpy())
    # with p = 1 each missed truth costs c / 2
    np.testing.assert_allclose(df["gospa_missed"], df["n_missed"] * DEFAULTS["gospa_c_m"] / 2)


def test_to_json_round_trip(run, tmp_path):
    truth, tracks = run
    ev = evaluate(truth, tracks)
    path = ev.to_json(tmp_path / "sub" / "eval.json")
    doc = json.loads(path.read_text())
    assert doc["summary"] == pytest.approx(ev.summary())
    assert doc["per_time"]["time_s"] == pytest.approx(ev.per_time.index.to_list())
    assert doc["per_time"]["gospa_m"] == pytest.approx(ev.per_time["gospa_m"].to_list())


def test_siap_evaluate_is_this_function(run):
    truth, tracks = run
    assert siap.evaluate is evaluate
    assert evaluate(truth, tracks).summary() == pytest.approx(
        siap.evaluate(truth, tracks).summary()
    )


def test_deleted_tracks_are_left_out_by_default(run):
    truth, tracks = run
    tracks = tracks.copy()
    first = tracks["track_id"] == tracks["track_id"].min()
    tracks["status"][first] = records.TrackStatus.DELETED
    ev = evaluate(truth, tracks)
    assert ev.summary()["excluded_track_rows"] == int(first.sum())
    assert ev.summary()["n_track_states"] == len(tracks) - int(first.sum())
    assert evaluate(truth, tracks, exclude_statuses=None).summary()["n_track_states"] == len(tracks)


def test_defaults_and_perfect_picture():
    rng = np.random.default_rng(9)
    truth, _ = random_scenario(rng, n_steps=10, n_truths=3, n_false=0)
    tracks = records.empty_tracks(len(truth))
    for name in ("time_s", "pos_ecef_m", "vel_ecef_mps"):
        tracks[name] = truth[name]
    tracks["track_id"] = truth["truth_id"]
    tracks["status"] = records.TrackStatus.CONFIRMED
    s = evaluate(truth, tracks).summary()
    assert s["gospa_mean_m"] == 0.0 and s["ospa_mean_m"] == 0.0
    assert (
        s["siap_completeness"] == 1.0
        and s["siap_spuriousness"] == 0.0
        and s["siap_ambiguity"] == 1.0
    )
    assert s["siap_position_accuracy_m"] == 0.0
    assert s["gospa_c_m"] == 5000.0 and s["gospa_p"] == 1.0 and s["gospa_alpha"] == 2.0
    assert s["association_threshold_m"] == 5000.0


def test_empty_run():
    ev = evaluate(records.empty_truth(0), records.empty_tracks(0))
    s = ev.summary()
    assert s["n_steps"] == 0 and s["gospa_mean_m"] == 0.0 and len(ev.per_time) == 0
    assert all(v is None or math.isfinite(v) for v in s.values())


def test_bad_input_is_one_line_input_error():
    with pytest.raises(InputError, match="tracks: field 'track_id' is missing"):
        evaluate(records.empty_truth(1), records.empty_truth(1), exclude_statuses=None)
    with pytest.raises(InputError, match="structured array"):
        evaluate([1, 2, 3], records.empty_tracks(0))


def _dense_truth_sparse_snapshots():
    rng = np.random.default_rng(21)
    truth, _ = random_scenario(rng, n_steps=60, n_truths=4, n_false=0, dt_s=1.0)
    snap = np.isin(np.rint(truth["time_s"] - truth["time_s"].min()) % 5, [0])
    rows = truth[snap]
    tracks = records.empty_tracks(len(rows))
    for name in ("time_s", "pos_ecef_m", "vel_ecef_mps"):
        tracks[name] = rows[name]
    tracks["pos_ecef_m"] += 10.0
    tracks["track_id"] = rows["truth_id"] + 1000
    tracks["status"] = records.TrackStatus.CONFIRMED
    return truth, tracks


def ev_counts(truth, tracks):
    return evaluate(truth, tracks, times="tracks").per_time["n_truths"].to_numpy()


def test_times_tracks_evaluates_snapshots_only():
    truth, tracks = _dense_truth_sparse_snapshots()
    union = evaluate(truth, tracks).summary()
    snaps = evaluate(truth, tracks, times="tracks").summary()
    # on the union, every truth-only second counts every truth as missed ...
    assert union["gospa_n_missed_mean"] > 1.0
    # ... and Stone Soup's convention (NA counts a track over its whole association, N only
    # where it has a state) makes spuriousness negative
    assert union["siap_spuriousness"] < 0
    assert snaps["n_steps"] == len(np.unique(tracks["time_s"]))
    assert snaps["truth_rows_outside_times"] == len(truth) - snaps["n_truth_states"]
    assert snaps["gospa_n_missed_mean"] == 0.0 and snaps["gospa_n_false_mean"] == 0.0
    # every truth has a track 10*sqrt(3) m off, so GOSPA (p = 1) is that times the truths present
    n_present = np.mean(ev_counts(truth, tracks))
    assert snaps["gospa_mean_m"] == pytest.approx(np.sqrt(300.0) * n_present)
    # only track states before an association is confirmed (3 snapshots) are spurious
    assert 0.0 <= snaps["siap_spuriousness"] < 0.1 and snaps["siap_completeness"] > 0.8
    assert snaps["siap_position_accuracy_m"] == pytest.approx(np.sqrt(300.0))


def test_times_as_array_and_bad_value():
    truth, tracks = _dense_truth_sparse_snapshots()
    t = np.unique(tracks["time_s"])[:3]
    ev = evaluate(truth, tracks, times=t)
    np.testing.assert_allclose(ev.per_time.index.to_numpy(), t)
    with pytest.raises(ConfigError, match="times"):
        evaluate(truth, tracks, times="sometimes")
