"""SIAP metrics and track-to-truth association: against Stone Soup's SIAPMetrics with the
TrackToTruth associator on random runs, and known answers for hand-made runs."""

from __future__ import annotations

import numpy as np
import pytest
from stonesoup.dataassociator.tracktotrack import TrackToTruth
from stonesoup.measures import Euclidean
from stonesoup.metricgenerator.manager import MultiManager
from stonesoup.metricgenerator.tracktotruthmetrics import SIAPMetrics
from stonesoup.types.time import CompoundTimeRange
from test_evaluation_support import T0_S, random_scenario, to_datetime, to_stonesoup

from siap import records
from siap.errors import ConfigError, InputError
from siap.evaluation import associate_tracks_to_truth, siap_metrics

RUN_KEYS = {
    "completeness": "SIAP Completeness",
    "ambiguity": "SIAP Ambiguity",
    "spuriousness": "SIAP Spuriousness",
    "position_accuracy_m": "SIAP Position Accuracy",
    "velocity_accuracy_mps": "SIAP Velocity Accuracy",
    "rate_of_track_number_changes_per_s": "SIAP Rate of Track Number Change",
    "longest_track_segment": "SIAP Longest Track Segment",
}
PER_TIME_KEYS = {
    "completeness": "SIAP Completeness at times",
    "ambiguity": "SIAP Ambiguity at times",
    "spuriousness": "SIAP Spuriousness at times",
    "position_accuracy_m": "SIAP Position Accuracy at times",
    "velocity_accuracy_mps": "SIAP Velocity Accuracy at times",
}


def stonesoup_siap(truth, tracks, threshold, confirm=3, misses=2):
    paths, trks = to_stonesoup(truth, tracks)
    gen = SIAPMetrics(
        position_measure=Euclidean(mapping=[0, 1, 2]), velocity_measure=Euclidean(mapping=[3, 4, 5])
    )
    associator = TrackToTruth(
        association_threshold=threshold,
        consec_pairs_confirm=confirm,
        consec_misses_end=misses,
        measure=Euclidean(mapping=[0, 1, 2]),
    )
    manager = MultiManager([gen], associator=associator)
    manager.add_data({"groundtruth_paths": paths, "tracks": trks})
    return manager.generate_metrics()["siap_generator"], manager.association_set


def stonesoup_segments(association_set):
    out = set()
    for assoc in association_set:
        track, truth = assoc.objects
        ranges = (
            assoc.time_range.time_ranges
            if isinstance(assoc.time_range, CompoundTimeRange)
            else [assoc.time_range]
        )
        for r in ranges:
            out.add((int(track.id), int(truth.id), r.start, r.end))
    return out


def our_segments(a):
    return {
        (int(k), int(j), to_datetime(s), to_datetime(e))
        for k, j, s, e in zip(a.track_id, a.truth_id, a.start_s, a.end_s, strict=True)
    }


def tied_continuity(result) -> bool:
    """True where Stone Soup's R depends on its set iteration order: two (track, truth) pairs of
    one truth end at the same time and one of them has several segments."""
    a = result.associations
    for j in np.unique(a.truth):
        sel = a.truth == j
        ks, counts = np.unique(a.track[sel], return_counts=True)
        ends = np.array([a.end_step[sel][a.track[sel] == k].max() for k in ks])
        for e in np.unique(ends):
            tied = ends == e
            if tied.sum() > 1 and (counts[tied] > 1).any():
                return True
    return False


def assert_same_as_stonesoup(truth, tracks, threshold, confirm=3, misses=2):
    theirs, assoc_set = stonesoup_siap(truth, tracks, threshold, confirm, misses)
    ours = siap_metrics(
        truth,
        tracks,
        association_threshold_m=threshold,
        consec_pairs_confirm=confirm,
        consec_misses_end=misses,
    )
    assert our_segments(ours.associations) == stonesoup_segments(assoc_set)
    run = ours.run_metrics()
    tied = tied_continuity(ours)
    for key, title in RUN_KEYS.items():
        if key == "rate_of_track_number_changes_per_s" and tied:
            continue
        assert run[key] == pytest.approx(theirs[title].value, rel=1e-9, abs=1e-6), key
    for key, title in PER_TIME_KEYS.items():
        values = theirs[title].value
        assert [m.timestamp for m in values] == [to_datetime(t) for t in ours.time_s]
        np.testing.assert_allclose(
            getattr(ours, key), [m.value for m in values], rtol=1e-9, atol=1e-6, err_msg=key
        )
    return ours


@pytest.mark.parametrize(
    ("confirm", "misses", "noise_m", "seeds"),
    [
        (3, 2, 60.0, range(0, 25)),
        (2, 3, 80.0, range(25, 45)),
        (4, 1, 80.0, range(100, 160)),
        (3, 2, 100.0, range(60, 90)),
    ],
)
def test_siap_equals_stonesoup_on_random_runs(confirm, misses, noise_m, seeds):
    compared = switched = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truth, tracks = random_scenario(
            rng, n_steps=30, n_truths=4, noise_m=noise_m, swap_prob=0.6, area_m=300.0
        )
        ours = assert_same_as_stonesoup(truth, tracks, 150.0, confirm, misses)
        compared += 1
        switched += bool(ours.rate_of_track_number_changes_per_s)
    assert compared == len(seeds)
    assert switched > 0  # the runs do exercise track number changes


def test_siap_equals_stonesoup_when_tracks_skip_steps():
    """Tracks that miss updates keep their own sequence; Stone Soup fails (IndexError) only
    when a skipped step falls inside an association, so only the others are compared."""
    compared = 0
    for seed in range(200, 230):
        rng = np.random.default_rng(seed)
        truth, tracks = random_scenario(
            rng, n_steps=30, n_truths=4, noise_m=60.0, gaps=True, drop_prob=0.15
        )
        try:
            assert_same_as_stonesoup(truth, tracks, 150.0)
        except IndexError:
            continue
        compared += 1
    assert compared >= 5


# -- hand-made runs -----------------------------------------------------------------------------

BASE = np.array([-3.9e6, 3.4e6, 3.7e6])


def batch_truth(positions: dict[int, np.ndarray], vel=(0.0, 0.0, 0.0), times=None):
    rows = []
    for ident, pos in positions.items():
        for s, p in enumerate(pos):
            if p is not None:
                rows.append((T0_S + s if times is None else times[s], ident, p))
    out = records.empty_truth(len(rows))
    for i, (t, ident, p) in enumerate(rows):
        out[i]["time_s"], out[i]["truth_id"], out[i]["pos_ecef_m"] = t, ident, p
    out["vel_ecef_mps"] = vel
    return out


def batch_tracks(positions: dict[int, list], vel=(0.0, 0.0, 0.0)):
    rows = []
    for ident, pos in positions.items():
        for s, p in enumerate(pos):
            if p is not None:
                rows.append((T0_S + s, ident, p))
    out = records.empty_tracks(len(rows))
    for i, (t, ident, p) in enumerate(rows):
        out[i]["time_s"], out[i]["track_id"], out[i]["pos_ecef_m"] = t, ident, p
    out["vel_ecef_mps"] = vel
    out["status"] = records.TrackStatus.CONFIRMED
    return out


A = BASE
B = BASE + [1000.0, 0.0, 0.0]
OFF = np.array([3.0, 4.0, 0.0])


def test_one_perfect_track():
    truth = batch_truth({7: [A] * 10})
    tracks = batch_tracks({1: [A + OFF] * 10}, vel=(0.0, 2.0, 0.0))
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    assert r.run_metrics() == {
        "completeness": 1.0,
        "ambiguity": 1.0,
        "spuriousness": 0.0,
        "position_accuracy_m": pytest.approx(5.0),
        "velocity_accuracy_mps": pytest.approx(2.0),
        "rate_of_track_number_changes_per_s": 0.0,
        "longest_track_segment": 1.0,
    }
    assert list(r.associations.track_id) == [1] and list(r.associations.truth_id) == [7]
    np.testing.assert_allclose(
        [r.associations.start_s[0], r.associations.end_s[0]], [T0_S, T0_S + 9]
    )
    assert_same_as_stonesoup(truth, tracks, 100.0)


def test_two_tracks_on_one_truth_and_a_false_track():
    truth = batch_truth({7: [A] * 10})
    tracks = batch_tracks({1: [A + OFF] * 10, 2: [A - OFF] * 10, 3: [B] * 10})
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    assert r.ambiguity_run == 2.0
    assert r.spuriousness_run == pytest.approx(1 / 3)
    assert r.completeness_run == 1.0
    assert_same_as_stonesoup(truth, tracks, 100.0)


def test_handover_between_two_tracks_counts_one_track_number_change():
    truth = batch_truth({7: [A] * 10})
    tracks = batch_tracks({1: [A + OFF] * 6 + [None] * 4, 2: [None] * 4 + [A - OFF] * 6})
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    assert r.tracks_needed.tolist() == [2]
    assert r.time_tracked_s.tolist() == [9.0]
    assert r.rate_of_track_number_changes_per_s == pytest.approx(1 / 9)
    assert r.longest_track_segment == pytest.approx(5 / 9)
    np.testing.assert_array_equal(r.n_associated_tracks, [1, 1, 1, 1, 2, 2, 1, 1, 1, 1])
    assert_same_as_stonesoup(truth, tracks, 100.0)


def test_takeover_reproduces_stonesoup_counters():
    """Candidates A A A B A B A B B A A A (confirm 3, misses 2): B's third non-consecutive
    win and second miss of A in a row hand the track to B, starting back at B's first win;
    the miss counter is not reset, so the next A ends B at once; A is re-confirmed later."""
    seq = "AAABABABBAAA"
    truth = batch_truth({10: [A] * 12, 20: [B] * 12})
    tracks = batch_tracks({1: [(A if ch == "A" else B) + OFF for ch in seq]})
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    seg = sorted(
        zip(
            r.associations.truth_id.tolist(),
            r.associations.start_step.tolist(),
            r.associations.end_step.tolist(),
            strict=True,
        )
    )
    assert seg == [(10, 0, 6), (10, 9, 11), (20, 3, 8)]
    np.testing.assert_allclose(r.completeness, [0.5] * 3 + [1.0] * 4 + [0.5] * 5)
    assert r.completeness_run == pytest.approx(16 / 24)
    assert r.ambiguity_run == pytest.approx(12 / 16)
    assert r.spuriousness_run == 0.0
    assert r.tracks_needed.tolist() == [2, 1]
    assert r.time_tracked_s.tolist() == [8.0, 5.0]
    assert r.longest_time_on_truth_s.tolist() == [8.0, 5.0]
    assert r.rate_of_track_number_changes_per_s == pytest.approx(1 / 13)
    assert r.longest_track_segment == pytest.approx(13 / 22)
    assert_same_as_stonesoup(truth, tracks, 100.0)


def test_threshold_is_strict_and_times_match_to_the_millisecond():
    truth = batch_truth({7: [A] * 5})
    at_threshold = batch_tracks({1: [A + [100.0, 0, 0]] * 5})
    assert len(siap_metrics(truth, at_threshold, association_threshold_m=100.0).associations) == 0
    near = batch_tracks({1: [A + [99.9, 0, 0]] * 5})
    near["time_s"] += 0.0003
    r = siap_metrics(truth, near, association_threshold_m=100.0)
    assert len(r.associations) == 1 and len(r.time_s) == 5


def test_skipped_track_update_inside_an_association():
    """Stone Soup raises IndexError here; siap counts the track as associated (as Stone Soup's
    NA does) and sums the accuracy over the steps where both states exist."""
    truth = batch_truth({7: [A] * 8})
    tracks = batch_tracks({1: [A + OFF] * 4 + [None] + [A + OFF] * 3})
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    np.testing.assert_array_equal(r.n_associated_tracks, [1] * 8)
    np.testing.assert_array_equal(r.n_tracks, [1, 1, 1, 1, 0, 1, 1, 1])
    assert r.position_error_sum_m[4] == 0.0 and r.position_error_sum_m[3] == pytest.approx(5.0)
    assert r.position_accuracy_run_m == pytest.approx(5.0 * 7 / 8)


def test_row_order_and_identity_values_do_not_matter():
    rng = np.random.default_rng(5)
    truth, tracks = random_scenario(
        rng, n_steps=25, n_truths=5, noise_m=60.0, swap_prob=0.6, area_m=300.0
    )
    a = siap_metrics(truth, tracks, association_threshold_m=150.0)
    truth2, tracks2 = truth[::-1].copy(), tracks[rng.permutation(len(tracks))].copy()
    truth2["truth_id"] = truth2["truth_id"] * 7 + 3
    tracks2["track_id"] = tracks2["track_id"] * 11 + 1
    b = siap_metrics(truth2, tracks2, association_threshold_m=150.0)
    assert a.run_metrics() == pytest.approx(b.run_metrics())
    np.testing.assert_allclose(a.completeness, b.completeness)


def test_empty_inputs_and_bad_input():
    r = siap_metrics(records.empty_truth(0), records.empty_tracks(0), association_threshold_m=100.0)
    assert len(r.time_s) == 0 and r.completeness_run == 0.0 and r.ambiguity_run == 1.0
    r = siap_metrics(
        batch_truth({7: [A] * 3}), records.empty_tracks(0), association_threshold_m=100.0
    )
    assert r.completeness.tolist() == [0.0] * 3 and r.spuriousness_run == 0.0
    with pytest.raises(InputError, match="truth_id"):
        siap_metrics(
            records.empty_tracks(1), records.empty_tracks(1), association_threshold_m=100.0
        )
    with pytest.raises(ConfigError, match="association_threshold_m"):
        associate_tracks_to_truth(records.empty_truth(0), records.empty_tracks(0), threshold_m=-1.0)
    with pytest.raises(ConfigError, match="consec_pairs_confirm"):
        associate_tracks_to_truth(
            records.empty_truth(0), records.empty_tracks(0), threshold_m=1.0, consec_pairs_confirm=0
        )


def test_rows_with_non_finite_positions_are_dropped_and_counted():
    truth = batch_truth({7: [A] * 4})
    tracks = batch_tracks({1: [A + OFF] * 4})
    tracks["pos_ecef_m"][2] = np.nan
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    assert np.isfinite(r.position_accuracy_run_m)
    np.testing.assert_array_equal(r.n_tracks, [1, 1, 0, 1])


def test_miss_counter_survives_a_takeover():
    """As above, then A B B B: the single A right after the takeover ends B at once (the miss
    counter still holds 2), and B must be confirmed afresh from the next B."""
    seq = "AAABABABBABBB"
    truth = batch_truth({10: [A] * 13, 20: [B] * 13})
    tracks = batch_tracks({1: [(A if ch == "A" else B) + OFF for ch in seq]})
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    seg = sorted(
        zip(
            r.associations.truth_id.tolist(),
            r.associations.start_step.tolist(),
            r.associations.end_step.tolist(),
            strict=True,
        )
    )
    assert seg == [(10, 0, 6), (20, 3, 8), (20, 10, 12)]
    # the same track after a gap counts again, as in Stone Soup
    assert r.tracks_needed.tolist() == [1, 2]
    assert r.longest_time_on_truth_s.tolist() == [6.0, 7.0]
    assert r.rate_of_track_number_changes_per_s == pytest.approx(1 / 13)
    assert_same_as_stonesoup(truth, tracks, 100.0)


def test_tracks_needed_walk_stops_where_stonesoup_stops():
    """Truth walked by Stone Soup's min_num_tracks_needed_to_track: track 1 covers 0-6, so the
    walk goes on at 7, which track 2 (2-7) covers but where its segment also ends; Stone Soup's
    ``list.index`` lookup then fails and the walk stops, so track 3 (9-12) is never counted."""
    truth = batch_truth({7: [A] * 13})
    tracks = batch_tracks(
        {
            1: [A + OFF] * 7 + [None] * 6,
            2: [None] * 2 + [A - OFF] * 6 + [None] * 5,
            3: [None] * 9 + [A + 2 * OFF] * 4,
        }
    )
    r = siap_metrics(truth, tracks, association_threshold_m=100.0)
    assert r.tracks_needed.tolist() == [2]
    assert r.time_tracked_s.tolist() == [10.0]
    assert r.rate_of_track_number_changes_per_s == pytest.approx(0.1)
    assert r.longest_time_on_truth_s.tolist() == [6.0]
    assert_same_as_stonesoup(truth, tracks, 100.0)
