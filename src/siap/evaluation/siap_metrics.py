"""SIAP attribute metrics of a track picture against truth, with track-to-truth association.

Definitions: Votruba, Nisley, Rothrock & Zombro, "Single Integrated Air Picture (SIAP) Metrics
Implementation", SIAP SE Task Force Technical Report 2001-003, 29 Oct 2001 (completeness,
ambiguity, spuriousness, kinematic accuracy, continuity). The computation follows Stone Soup
1.9's ``SIAPMetrics`` (stonesoup/metricgenerator/tracktotruthmetrics.py) fed by its
``TrackToTruth`` associator (stonesoup/dataassociator/tracktotrack.py) number for number,
including its conventions for empty steps, so that the values can be checked against it; it
does the same work on whole arrays instead of Python objects (see docs/metrics.md).

Track-to-truth association (``TrackToTruth``): at each state of a track, the candidate truth is
the one with a state at exactly the same time that is closest in 3D position and strictly
closer than ``threshold_m``. A track becomes associated with a truth once that truth has been
the candidate ``consec_pairs_confirm`` times in a row (the association starts at the first of
them); the association ends after ``consec_misses_end`` consecutive states at which the truth
is not the candidate (it ends at the last state at which it was), and a rival that has been the
candidate ``consec_pairs_confirm`` times in a row takes over at once. A track is associated
with at most one truth at a time (Stone Soup's counters can make a takeover start before the
previous association ended; that is reproduced). A truth can have several tracks.

Per step ``t`` of the common grid, with ``J`` truths present, ``N`` tracks present, ``JT``
truths and ``NA`` tracks in an association whose time range contains ``t``:

* completeness ``C = JT / J`` (0 when ``J = 0``)
* ambiguity ``A = NA / JT`` (1 when ``JT = 0``)
* spuriousness ``S = (N - NA) / N`` (0 when ``N = 0``)
* positional accuracy ``PA = sum over active associations of |p_track - p_truth| / NA`` (m)
* velocity accuracy ``VA``, the same with velocities (m/s)

Over the run each is the ratio of the sums over the steps. Continuity over the run: rate of
track number changes ``R = sum_j (NU_j - 1) / sum_j TT_j`` (1/s; ``NU_j`` the number of
tracks a greedy walk along truth ``j`` needs, ``TT_j`` the time ``j`` is tracked), and longest
track segment ``LS = sum_j TL_j / sum_j T_j`` (``TL_j`` the longest total time one track is
associated with ``j``, ``T_j`` the lifetime of ``j``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from siap.errors import ConfigError

from ._batch import Grid, ObjectStates, prepare

__all__ = ["Associations", "SiapResult", "associate_tracks_to_truth", "siap_metrics"]


@dataclass(frozen=True)
class Associations:
    """Track-to-truth associations, one row per time segment (grid step indices, inclusive).

    ``track``/``truth`` index the ``ids`` of the prepared track/truth states; ``track_id`` and
    ``truth_id`` are the original identities. Segments of one (track, truth) pair are disjoint.
    """

    track: np.ndarray
    truth: np.ndarray
    start_step: np.ndarray
    end_step: np.ndarray
    track_id: np.ndarray
    truth_id: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray

    def __len__(self) -> int:
        return len(self.track)


def _check_assoc_params(threshold_m: float, confirm: int, misses: int) -> None:
    if not (np.isfinite(threshold_m) and threshold_m > 0):
        raise ConfigError(
            f"siap: association_threshold_m: expected a finite distance > 0, got {threshold_m!r}"
        )
    if int(confirm) != confirm or confirm < 1:
        raise ConfigError(f"siap: consec_pairs_confirm: expected an integer >= 1, got {confirm!r}")
    if int(misses) != misses or misses < 1:
        raise ConfigError(f"siap: consec_misses_end: expected an integer >= 1, got {misses!r}")


def _candidate_truth(
    grid: Grid, truth: ObjectStates, tracks: ObjectStates, threshold_m: float
) -> np.ndarray:
    """For each track state, the index of the closest truth with a state at the same step and
    strictly closer than the threshold; -1 where there is none.

    One k-d tree query over all steps at once: each state is a 4D point (x, y, z, step * L)
    with L > threshold, so points of different steps are never within the threshold.
    """
    if truth.n == 0 or tracks.n == 0:
        return np.full(tracks.n, -1, dtype=np.int64)
    lift = 4.0 * threshold_m
    tree = cKDTree(np.column_stack([truth.pos, truth.step * lift]))
    _, idx = tree.query(
        np.column_stack([tracks.pos, tracks.step * lift]),
        k=1,
        distance_upper_bound=threshold_m * 1.001,
    )
    found = idx < truth.n
    idx_c = np.where(found, idx, 0)
    diff = tracks.pos - truth.pos[idx_c]
    d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    ok = found & (d < threshold_m) & (truth.step[idx_c] == tracks.step)
    return np.where(ok, truth.obj[idx_c], -1).astype(np.int64)


def _association_segments(obj, step, label, confirm: int, misses: int):
    """Run TrackToTruth's per-track counters over the candidate sequence of every track.

    The counters are inherently sequential, so this walks the runs of equal candidates (one
    Python iteration per run, plus at most ``consec_misses_end`` single steps after a change)
    rather than every track state. Returns lists (track, truth, start step, end step).
    """
    out_k: list[int] = []
    out_j: list[int] = []
    out_s: list[int] = []
    out_e: list[int] = []

    def emit(k: int, j: int, s: int, e: int) -> None:
        out_k.append(k)
        out_j.append(j)
        out_s.append(s)
        out_e.append(e)

    n = len(obj)
    if n == 0:
        return out_k, out_j, out_s, out_e
    brk = np.flatnonzero((obj[1:] != obj[:-1]) | (label[1:] != label[:-1])) + 1
    run_lo = np.concatenate([[0], brk]).tolist()
    run_hi = np.concatenate([brk, [n]]).tolist()
    run_obj = obj[run_lo].tolist()
    run_lab = label[run_lo].tolist()
    steps = step.tolist()

    cur_obj = -1
    current = potential = -1
    n_pot = n_fail = 0
    pot_start = start = end = -1
    for r in range(len(run_lo)):
        k = run_obj[r]
        if k != cur_obj:
            if current >= 0:
                emit(cur_obj, current, start, end)
            cur_obj = k
            current = potential = -1
            n_pot = n_fail = 0
            pot_start = start = end = -1
        lab = run_lab[r]
        i, hi = run_lo[r], run_hi[r]
        while i < hi:
            if current < 0:
                if lab < 0:  # no candidate: forget any potential (idempotent over the run)
                    potential, n_pot, pot_start = -1, 0, -1
                    break
                if potential != lab:
                    potential, n_pot, pot_start = lab, 0, steps[i]
                need = confirm - n_pot  # >= 1: confirmation happens on the need-th state
                if hi - i < need:
                    n_pot += hi - i
                    break
                i += need - 1
                current, start, end = lab, pot_start, steps[i]
                potential, n_pot, pot_start = -1, 0, -1
                i += 1
            elif lab == current:
                n_fail = 0
                end = steps[hi - 1]
                break
            else:  # one state at which the associated truth is not the candidate
                n_fail += 1
                if lab >= 0 and lab == potential:
                    n_pot += 1
                else:
                    potential, n_pot, pot_start = lab, 1, steps[i]
                if n_fail >= misses:
                    emit(cur_obj, current, start, end)
                    if n_pot >= confirm and potential >= 0:
                        current, start, end = potential, pot_start, steps[i]
                    else:
                        current, start, end = -1, -1, -1
                i += 1
    if current >= 0:
        emit(cur_obj, current, start, end)
    return out_k, out_j, out_s, out_e


def _associate_prepared(grid, truth, tracks, threshold_m, confirm, misses) -> Associations:
    _check_assoc_params(threshold_m, confirm, misses)
    label = _candidate_truth(grid, truth, tracks, float(threshold_m))
    k, j, s, e = _association_segments(tracks.obj, tracks.step, label, int(confirm), int(misses))
    k = np.asarray(k, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    t = grid.time_s
    return Associations(
        track=k,
        truth=j,
        start_step=s,
        end_step=e,
        track_id=tracks.ids[k] if len(k) else np.zeros(0, np.int64),
        truth_id=truth.ids[j] if len(j) else np.zeros(0, np.int64),
        start_s=t[s] if len(s) else np.zeros(0),
        end_s=t[e] if len(e) else np.zeros(0),
    )


def associate_tracks_to_truth(
    truth: np.ndarray,
    tracks: np.ndarray,
    *,
    threshold_m: float,
    consec_pairs_confirm: int = 3,
    consec_misses_end: int = 2,
) -> Associations:
    """Associate tracks to truth over time as Stone Soup's ``TrackToTruth`` does (see module
    docstring); batches are ``records.TRUTH_DTYPE`` and ``records.TRACK_DTYPE``."""
    grid, t, k = prepare(truth, tracks)
    return _associate_prepared(grid, t, k, threshold_m, consec_pairs_confirm, consec_misses_end)


def _union_per_group(g: np.ndarray, a: np.ndarray, b: np.ndarray, n_steps: int):
    """Merge inclusive integer intervals [a, b] within each group g: (g, a, b) of the union."""
    if len(g) == 0:
        return g, a, b
    order = np.lexsort((a, g))
    g, a, b = g[order], a[order], b[order]
    big = n_steps + 1
    runmax = np.maximum.accumulate(g * big + b) - g * big
    new = np.ones(len(g), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (a[1:] > runmax[:-1])
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [len(g) - 1]])
    return g[first], a[first], runmax[last]


def _coverage(a: np.ndarray, b: np.ndarray, n_steps: int) -> np.ndarray:
    """Number of intervals [a, b] (inclusive) covering each step."""
    diff = np.zeros(n_steps + 1, dtype=np.int64)
    np.add.at(diff, a, 1)
    np.add.at(diff, b + 1, -1)
    return np.cumsum(diff[:-1])


def _ratio(num, den, empty):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, float(empty))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _tracks_needed(
    times: np.ndarray, a: np.ndarray, b: np.ndarray, pair_end: np.ndarray, trk: np.ndarray
) -> int:
    """Stone Soup's ``min_num_tracks_needed_to_track`` for one truth: walk the truth's times;
    at a time covered by an association take the covering association of the pair whose last
    association time is latest, count it and jump past the end of its segment (stop if that
    end is the current time itself, as Stone Soup's ``list.index`` lookup does).

    Where several covering pairs share the latest last time Stone Soup takes whichever its
    set happens to yield first; here the one whose covering segment ends last (the greedy
    choice, fewest tracks), then the lowest track index."""
    i, nu, n = 0, 0, len(times)
    while i < n:
        t = times[i]
        cover = (a <= t) & (b >= t)
        if not cover.any():
            later = a[a > t]
            if len(later) == 0:
                break
            i = int(np.searchsorted(times, later.min(), side="left"))
            continue
        idx = np.flatnonzero(cover)
        e = b[idx[np.lexsort((trk[idx], -b[idx], -pair_end[idx]))[0]]]
        nu += 1
        if e == t:
            break
        i = int(np.searchsorted(times, e, side="left"))
        if i >= n or times[i] != e:
            break
        i += 1
    return nu


@dataclass(frozen=True)
class SiapResult:
    """SIAP metrics per step of the common grid and over the run, and per truth."""

    time_s: np.ndarray
    n_truths: np.ndarray  # J(t)
    n_tracks: np.ndarray  # N(t)
    n_associated_truths: np.ndarray  # JT(t)
    n_associated_tracks: np.ndarray  # NA(t)
    position_error_sum_m: np.ndarray  # sum over active associations
    velocity_error_sum_mps: np.ndarray
    completeness: np.ndarray
    ambiguity: np.ndarray
    spuriousness: np.ndarray
    position_accuracy_m: np.ndarray
    velocity_accuracy_mps: np.ndarray
    # over the run
    completeness_run: float
    ambiguity_run: float
    spuriousness_run: float
    position_accuracy_run_m: float
    velocity_accuracy_run_mps: float
    rate_of_track_number_changes_per_s: float
    longest_track_segment: float
    # per truth (ascending truth_id)
    truth_ids: np.ndarray
    truth_lifetime_s: np.ndarray  # T_j
    time_tracked_s: np.ndarray  # TT_j
    longest_time_on_truth_s: np.ndarray  # TL_j
    tracks_needed: np.ndarray  # NU_j
    associations: Associations

    def run_metrics(self) -> dict[str, float]:
        return {
            "completeness": self.completeness_run,
            "ambiguity": self.ambiguity_run,
            "spuriousness": self.spuriousness_run,
            "position_accuracy_m": self.position_accuracy_run_m,
            "velocity_accuracy_mps": self.velocity_accuracy_run_mps,
            "rate_of_track_number_changes_per_s": self.rate_of_track_number_changes_per_s,
            "longest_track_segment": self.longest_track_segment,
        }


def _siap_prepared(
    grid: Grid, truth: ObjectStates, tracks: ObjectStates, assoc: Associations
) -> SiapResult:
    S = grid.n
    J = np.bincount(truth.step, minlength=S)
    N = np.bincount(tracks.step, minlength=S)
    k, j, a, b = assoc.track, assoc.truth, assoc.start_step, assoc.end_step

    tt_g, tt_a, tt_b = _union_per_group(j, a, b, S)
    JT = _coverage(tt_a, tt_b, S)
    _, ka, kb = _union_per_group(k, a, b, S)
    NA = _coverage(ka, kb, S)

    # accuracy: every step of every association segment (segments of a pair are disjoint)
    lengths = b - a + 1
    total = int(lengths.sum()) if len(lengths) else 0
    pa_sum = np.zeros(S)
    va_sum = np.zeros(S)
    if total:
        seg = np.repeat(np.arange(len(a)), lengths)
        offs = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        steps = a[seg] + offs
        kr = tracks.row_of(k[seg], steps, S)
        jr = truth.row_of(j[seg], steps, S)
        ok = (kr >= 0) & (jr >= 0)  # Stone Soup fails (IndexError) where a state is missing
        kr, jr, steps = kr[ok], jr[ok], steps[ok]
        dp = tracks.pos[kr] - truth.pos[jr]
        dv = tracks.vel[kr] - truth.vel[jr]
        pa_sum = np.bincount(steps, weights=np.sqrt(np.einsum("ij,ij->i", dp, dp)), minlength=S)
        va_sum = np.bincount(steps, weights=np.sqrt(np.einsum("ij,ij->i", dv, dv)), minlength=S)

    # continuity, per truth
    nJ = truth.n_objects
    key = grid.key_ms
    lifetime = np.zeros(nJ)
    if truth.n:
        first = np.full(nJ, np.iinfo(np.int64).max)
        last = np.full(nJ, np.iinfo(np.int64).min)
        np.minimum.at(first, truth.obj, truth.key_ms)
        np.maximum.at(last, truth.obj, truth.key_ms)
        lifetime = (last - first) / 1000.0
    tracked = np.zeros(nJ)
    if len(tt_g):
        np.add.at(tracked, tt_g, (key[tt_b] - key[tt_a]) / 1000.0)
    longest = np.zeros(nJ)
    needed = np.zeros(nJ, dtype=np.int64)
    if len(k):
        # total associated time of each (track, truth) pair; TL_j is the largest over its pairs
        pair_code = j * max(tracks.n_objects, 1) + k
        pairs, pair_of_seg = np.unique(pair_code, return_inverse=True)
        pair_dur = np.zeros(len(pairs))
        np.add.at(pair_dur, pair_of_seg, (key[b] - key[a]) / 1000.0)
        pair_j = pairs // max(tracks.n_objects, 1)
        np.maximum.at(longest, pair_j, pair_dur)
        # NU_j: pairs are tried latest last association time first
        pair_end = np.full(len(pairs), -1, dtype=np.int64)
        np.maximum.at(pair_end, pair_of_seg, b)
        seg_pair_end = pair_end[pair_of_seg]
        t_bounds = np.searchsorted(truth.obj, np.arange(nJ + 1))
        s_order = np.argsort(j, kind="stable")
        s_bounds = np.searchsorted(j[s_order], np.arange(nJ + 1))
        for jj in np.unique(j).tolist():
            segs = s_order[s_bounds[jj] : s_bounds[jj + 1]]
            times = truth.step[t_bounds[jj] : t_bounds[jj + 1]]
            needed[jj] = _tracks_needed(times, a[segs], b[segs], seg_pair_end[segs], k[segs])

    sum_tt = tracked.sum()
    R = float(np.sum(np.where(needed > 0, needed - 1, 0)) / sum_tt) if sum_tt != 0 else 0.0
    sum_T = lifetime.sum()
    LS = float(longest.sum() / sum_T) if sum_T != 0 else 0.0

    sJ, sJT, sN, sNA = J.sum(), JT.sum(), N.sum(), NA.sum()
    return SiapResult(
        time_s=grid.time_s,
        n_truths=J,
        n_tracks=N,
        n_associated_truths=JT,
        n_associated_tracks=NA,
        position_error_sum_m=pa_sum,
        velocity_error_sum_mps=va_sum,
        completeness=_ratio(JT, J, 0.0),
        ambiguity=_ratio(NA, JT, 1.0),
        spuriousness=_ratio(N - NA, N, 0.0),
        position_accuracy_m=_ratio(pa_sum, NA, 0.0),
        velocity_accuracy_mps=_ratio(va_sum, NA, 0.0),
        completeness_run=float(_ratio(sJT, sJ, 0.0)),
        ambiguity_run=float(_ratio(sNA, sJT, 1.0)),
        spuriousness_run=float(_ratio(sN - sNA, sN, 0.0)),
        position_accuracy_run_m=float(_ratio(pa_sum.sum(), sNA, 0.0)),
        velocity_accuracy_run_mps=float(_ratio(va_sum.sum(), sNA, 0.0)),
        rate_of_track_number_changes_per_s=R,
        longest_track_segment=LS,
        truth_ids=truth.ids,
        truth_lifetime_s=lifetime,
        time_tracked_s=tracked,
        longest_time_on_truth_s=longest,
        tracks_needed=needed,
        associations=assoc,
    )


def siap_metrics(
    truth: np.ndarray,
    tracks: np.ndarray,
    *,
    association_threshold_m: float,
    consec_pairs_confirm: int = 3,
    consec_misses_end: int = 2,
) -> SiapResult:
    """SIAP metrics (Votruba et al. 2001, as computed by Stone Soup's ``SIAPMetrics`` with the
    ``TrackToTruth`` associator) of a track batch against a truth batch; 3D ECEF distances."""
    grid, t, k = prepare(truth, tracks)
    assoc = _associate_prepared(
        grid, t, k, association_threshold_m, consec_pairs_confirm, consec_misses_end
    )
    return _siap_prepared(grid, t, k, assoc)
