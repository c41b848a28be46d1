"""Shared helpers for the evaluation tests: random scenarios as siap record batches, and the
same data as Stone Soup objects (the independent implementation the metrics are checked
against). The two tests at the bottom check the helpers themselves."""

from __future__ import annotations

import datetime as dt

import numpy as np

from siap import records

T0_S = 1_700_000_000.0
T0 = dt.datetime(2023, 11, 14, 22, 13, 20)  # = T0_S as naive UTC


def random_scenario(
    rng: np.random.Generator,
    *,
    n_steps: int = 30,
    n_truths: int = 5,
    n_false: int = 2,
    dt_s: float = 1.0,
    noise_m: float = 30.0,
    area_m: float = 2000.0,
    drop_prob: float = 0.1,
    swap_prob: float = 0.3,
    integer: bool = False,
    gaps: bool = False,
):
    """Truth and track batches on a common time grid. Truths live over random contiguous
    intervals; each truth gets 0-2 tracks (noisy copies over random sub-intervals, some
    jumping to another truth halfway, some wandering off); plus false tracks. ``integer``
    puts every position on an integer grid so that distance ties happen. ``gaps`` lets tracks
    skip steps (the track's own sequence continues)."""
    times = T0_S + dt_s * np.arange(n_steps)
    truth_rows = []
    pos_truth = np.zeros((n_truths, n_steps, 3))
    vel_truth = np.zeros((n_truths, n_steps, 3))
    alive = np.zeros((n_truths, n_steps), dtype=bool)
    for j in range(n_truths):
        a = int(rng.integers(0, n_steps // 2))
        b = int(rng.integers(a + 1, n_steps + 1))
        p0 = rng.uniform(-area_m, area_m, 3) + np.array([-3.9e6, 3.4e6, 3.7e6])
        v = rng.normal(0, 50, 3)
        pos_truth[j] = p0 + v * (times - T0_S)[:, None]
        vel_truth[j] = v
        if integer:
            pos_truth[j] = np.round(pos_truth[j] / 100.0) * 100.0
            vel_truth[j] = np.round(vel_truth[j])
        alive[j, a:b] = True
        for s in range(a, b):
            truth_rows.append((times[s], j + 100, pos_truth[j, s], vel_truth[j, s]))
    track_rows = []
    tid = 1
    for j in range(n_truths):
        life = np.flatnonzero(alive[j])
        for _ in range(int(rng.integers(0, 3))):
            a = int(rng.integers(life[0], life[-1] + 1))
            b = int(rng.integers(a + 1, life[-1] + 2))
            other = int(rng.integers(0, n_truths))
            swap_at = int(rng.integers(a, b)) if rng.random() < swap_prob else None
            for s in range(a, b):
                if gaps and rng.random() < drop_prob:
                    continue
                src = j
                if swap_at is not None and s >= swap_at and alive[other, s]:
                    src = other
                scale = noise_m * (10.0 if rng.random() < 0.1 else 1.0)
                p = pos_truth[src, s] + rng.normal(0, scale, 3)
                v = vel_truth[src, s] + rng.normal(0, 5, 3)
                if integer:
                    p = np.round(p / 100.0) * 100.0
                    v = np.round(v)
                track_rows.append((times[s], tid, p, v))
            tid += 1
    for _ in range(n_false):
        a = int(rng.integers(0, n_steps))
        b = int(rng.integers(a + 1, n_steps + 1))
        p0 = rng.uniform(-area_m, area_m, 3) + np.array([-3.9e6, 3.4e6, 3.7e6])
        v = rng.normal(0, 50, 3)
        for s in range(a, b):
            p = p0 + v * (times[s] - T0_S)
            if integer:
                p = np.round(p / 100.0) * 100.0
            track_rows.append((times[s], tid, p, v))
        tid += 1
    truth = records.empty_truth(len(truth_rows))
    for i, (t, ident, p, v) in enumerate(truth_rows):
        truth[i]["time_s"], truth[i]["truth_id"] = t, ident
        truth[i]["pos_ecef_m"], truth[i]["vel_ecef_mps"] = p, v
    tracks = records.empty_tracks(len(track_rows))
    for i, (t, ident, p, v) in enumerate(track_rows):
        tracks[i]["time_s"], tracks[i]["track_id"] = t, ident
        tracks[i]["pos_ecef_m"], tracks[i]["vel_ecef_mps"] = p, v
        tracks[i]["status"] = records.TrackStatus.CONFIRMED
    # shuffle the rows: the metrics must not depend on input order
    return truth[rng.permutation(len(truth))], tracks[rng.permutation(len(tracks))]


def to_datetime(time_s: float) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=int(round((time_s - T0_S) * 1000.0)))


def _state_vector(row) -> np.ndarray:
    return np.concatenate([row["pos_ecef_m"], row["vel_ecef_mps"]]).reshape(6, 1)


def to_stonesoup(truth: np.ndarray, tracks: np.ndarray):
    """(list of GroundTruthPath, list of Track), states in time order, state vector
    [x, y, z, vx, vy, vz]."""
    from stonesoup.types.groundtruth import GroundTruthPath, GroundTruthState
    from stonesoup.types.state import State
    from stonesoup.types.track import Track

    paths = []
    for ident in np.unique(truth["truth_id"]):
        rows = truth[truth["truth_id"] == ident]
        rows = rows[np.argsort(rows["time_s"], kind="stable")]
        paths.append(
            GroundTruthPath(
                [
                    GroundTruthState(_state_vector(r), timestamp=to_datetime(r["time_s"]))
                    for r in rows
                ],
                id=str(ident),
            )
        )
    out_tracks = []
    for ident in np.unique(tracks["track_id"]):
        rows = tracks[tracks["track_id"] == ident]
        rows = rows[np.argsort(rows["time_s"], kind="stable")]
        out_tracks.append(
            Track(
                [State(_state_vector(r), timestamp=to_datetime(r["time_s"])) for r in rows],
                id=str(ident),
            )
        )
    return paths, out_tracks


def test_random_scenario_is_well_formed():
    rng = np.random.default_rng(0)
    truth, tracks = random_scenario(rng)
    assert truth.dtype == records.TRUTH_DTYPE and tracks.dtype == records.TRACK_DTYPE
    assert len(truth) > 0 and len(tracks) > 0
    pairs = np.stack([truth["truth_id"], np.rint(truth["time_s"] * 1000)], axis=1)
    assert len(np.unique(pairs, axis=0)) == len(truth)


def test_stonesoup_objects_carry_the_same_numbers():
    rng = np.random.default_rng(1)
    truth, tracks = random_scenario(rng)
    paths, trks = to_stonesoup(truth, tracks)
    assert sum(len(p) for p in paths) == len(truth)
    assert sum(len(t) for t in trks) == len(tracks)
    state = paths[0][0]
    row = truth[
        (truth["truth_id"] == int(paths[0].id))
        & (truth["time_s"] == truth["time_s"][truth["truth_id"] == int(paths[0].id)].min())
    ][0]
    np.testing.assert_array_equal(state.state_vector.ravel()[:3], row["pos_ecef_m"])
