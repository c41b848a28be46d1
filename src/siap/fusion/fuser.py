"""The coalition track-to-track fuser: associates the local tracks that partners share and fuses
each associated group into one coalition track with a coalition track number (CTN).

Federated mode: every recipient partner runs its own :class:`TrackFuser` over the local tracks
releasable to it. The fuser is therefore a pure, deterministic function of its input stream
(the sequence of ``update`` calls): it keeps no global counters, uses no randomness or wall
clock, and sorts every batch by (partner, track_id) before use, so the same inputs in any row
order give bit-for-bit identical outputs. See docs/fusion.md for the design and its guarantees.

Association works on pairs of local tracks of *different* partners. A local track's identity is
(partner, track_id); one partner never contributes two local tracks to one fused track (its own
tracker already fused its sensors: two local tracks of one partner are two objects in that
partner's view, or a hand-over that its tracker resolves). Per update:

1. ingest: validate, de-duplicate, keep the newest state of each local track; drop tracks that
   are DELETED or older than ``max_age_s``;
2. predict every local track to the fusion time (CV, :func:`siap.fusion.estimation.predict_cv`);
3. candidate pairs from a k-d tree (conservative radius from the covariance trace) plus pairs
   that share a Mode S address; test ``d^2 = dx^T (P_i + P_j)^-1 dx`` against the chi-square
   gate; a Mode S match passes whatever the gate, a Mode S mismatch is a hard fail;
4. per-pair hysteresis counters (consecutive passes, consecutive fails);
5. split: a contributor whose pairs with the rest of its fused track have all failed
   ``dissociate_after`` times in a row leaves it; the largest still-linked group keeps the CTN
   (ties: the group holding the most senior contributor), the others found new fused tracks;
6. every local track not in a fused track founds one (a singleton: an object seen by one
   partner is still in the coalition picture);
7. merge: two fused tracks whose cross pairs have *all* passed ``associate_after`` times in a
   row, with disjoint partner sets and no conflicting Mode S address, are merged, the older
   keeping its CTN; when more than two fused tracks contend in one cluster the merges are chosen
   by a 2-D assignment (``scipy.optimize.linear_sum_assignment``) over the cluster;
8. fuse each fused track's contributors by covariance intersection and emit TRACK_DTYPE rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain

import numba as nb
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from siap import records
from siap.errors import InputError
from siap.geo import ecef_to_geodetic

from .config import FusionConfig
from .ctn import (
    LOCAL_ID_BITS,
    MAX_GENERATION,
    MAX_LOCAL_ID,
    PARTNER_SHIFT,
    decode_ctn,
    local_key,
    valid_partner,
)
from .estimation import (
    from_information,
    fuse_stack,
    information,
    information_increment,
    pair_statistic,
    predict_cv,
)

__all__ = ["TrackFuser", "same_label_or_empty", "format_sources", "format_sensor_union"]

log = logging.getLogger(__name__)

_SOURCES_LEN = records.TRACK_DTYPE["sources"].itemsize // 4
_LABEL_LEN = records.TRACK_DTYPE["label"].itemsize // 4
_BIG = 1e12
_TEXT_IN = ("label", "sensors", "sources", "mode_3a", "callsign")
_TEXT_IN_DTYPE = np.dtype([(f, records.TRACK_DTYPE[f]) for f in _TEXT_IN])
_TEXT_OUT = ("label", "sources", "sensors", "mode_3a", "callsign")
_TEXT_DTYPE = np.dtype([(f, records.TRACK_DTYPE[f]) for f in _TEXT_OUT])
_WITHHELD_COMBINE, _WITHHELD_LONG = 1, 2
_PASS_CAP = 1 << 30
_STATUS_RANK = {  # higher wins when contributors disagree
    int(records.TrackStatus.TENTATIVE): 0,
    int(records.TrackStatus.COASTING): 1,
    int(records.TrackStatus.CONFIRMED): 2,
}


def same_label_or_empty(labels: list[str]) -> str:
    """Default label combiner: the common label if all contributors carry the same one, else ""."""
    first = labels[0]
    return first if all(lab == first for lab in labels) else ""


_SENSORS_LEN = records.TRACK_DTYPE["sensors"].itemsize // 4


def format_sensor_union(lists: Sequence[Sequence[str]], width: int = _SENSORS_LEN) -> str:
    """Sorted union of contributing sensor ids, comma separated; a trailing ``,+`` marks that
    the list was cut to fit ``width`` characters. Markers (``+``, ``...``) in the inputs are
    dropped: a truncated input list stays marked by the output's own cut."""
    names = sorted({n for ls in lists for n in ls if n and n not in ("+", "...")})
    text = ",".join(names)
    if len(text) <= width:
        return text
    kept: list[str] = []
    for n in names:
        if len(",".join([*kept, n, "+"])) > width:
            break
        kept.append(n)
    return ",".join([*kept, "+"])


def format_sources(items: Sequence[tuple[str, int]], width: int = _SOURCES_LEN) -> str:
    """``"JPN:12,USA:7"``; if it does not fit in ``width`` characters, as many whole entries as
    fit followed by ``"+"``."""
    return format_sources_items([f"{p}:{t}" for p, t in items], width)


def format_sources_items(parts: Sequence[str], width: int = _SOURCES_LEN) -> str:
    """:func:`format_sources` for entries already written as ``"JPN:12"``."""
    text = ",".join(parts)
    if len(text) <= width:
        return text
    out = ""
    for part in parts:
        cand = part if not out else out + "," + part
        if len(cand) + 1 > width:
            break
        out = cand
    return out + "+"


def _majority(values: list, empty) -> object:
    """Most frequent non-empty value; ties go to the value met first (contributor order)."""
    counts: dict = {}
    for v in values:
        if v != empty:
            counts[v] = counts.get(v, 0) + 1
    if not counts:
        return empty
    best = max(counts.values())
    for v in values:
        if v != empty and counts[v] == best:
            return v
    return empty  # unreachable


def _find(parent: dict[int, int], x: int) -> int:
    """Union-find root (the smallest member, see :func:`_union`)."""
    while parent[x] != x:
        x = parent[x]
    return x


def _union(parent: dict[int, int], u: int, v: int) -> None:
    ru, rv = _find(parent, u), _find(parent, v)
    if ru != rv:
        parent[max(ru, rv)] = min(ru, rv)


@nb.njit(cache=True, nogil=True)
def _check_covariances(C, asym, certain):  # pragma: no cover - compiled
    """Per 6x6 covariance ``C[k]``: ``asym[k]`` = max|C - C^T| > 1e-9 max|C| (the same test,
    operation for operation, as before this kernel), and ``certain[k]`` = the symmetric part
    ``S`` is certainly positive definite, so that ``eigvalsh(S)`` could only say so too.

    The certificate: the Cholesky factor ``L`` of ``S`` (Golub, Van Loan, *Matrix Computations*, 4th ed., alg. 4.2.1) exists and
    ``lambda_min(S) >= 1 / ||L^-1||_F^2`` (as ``S^-1 = L^-T L^-1`` and ``||A||_2 <= ||A||_F``)
    exceeds ``1e-8 tr(S)``. The computed factor is exact for ``S + E`` with
    ``||E|| <= (n+1) eps tr(S)`` (Higham, *Accuracy and Stability of Numerical Algorithms*,
    2nd ed., thm. 10.3) and LAPACK's eigenvalues are exact for
    ``S + E'`` with ``||E'|| <= p(n) eps ||S||``, both below ``1e-12 tr(S)`` here: far inside
    the margin. Matrices without the certificate are left to ``numpy.linalg.eigvalsh``."""
    n = 6
    L = np.empty((n, n))
    Li = np.empty((n, n))
    for k in range(C.shape[0]):
        A = C[k]
        scale = 0.0
        dmax = 0.0
        for i in range(n):
            for j in range(n):
                scale = max(scale, abs(A[i, j]))
                dmax = max(dmax, abs(A[i, j] - A[j, i]))
        asym[k] = dmax > 1e-9 * max(scale, 1e-300)
        certain[k] = False
        if asym[k]:
            continue
        trace = 0.0
        for i in range(n):
            trace += A[i, i]
        if not trace > 0.0:
            continue
        ok = True
        for j in range(n):  # Cholesky of S = (A + A^T) / 2, lower
            d = 0.5 * (A[j, j] + A[j, j])
            for m in range(j):
                d -= L[j, m] * L[j, m]
            if not d > 0.0:
                ok = False
                break
            L[j, j] = np.sqrt(d)
            for i in range(j + 1, n):
                v = 0.5 * (A[i, j] + A[j, i])
                for m in range(j):
                    v -= L[i, m] * L[j, m]
                L[i, j] = v / L[j, j]
        if not ok:
            continue
        fro2 = 0.0
        for j in range(n):  # columns of L^-1 by forward substitution
            for i in range(n):
                if i < j:
                    Li[i, j] = 0.0
                    continue
                v = 1.0 if i == j else 0.0
                for m in range(j, i):
                    v -= L[i, m] * Li[m, j]
                Li[i, j] = v / L[i, i]
                fro2 += Li[i, j] * Li[i, j]
        certain[k] = np.isfinite(fro2) and 0.5 / fro2 > 1e-8 * trace


def _text_in(st: np.ndarray) -> np.ndarray:
    """The text fields ``_TEXT_IN`` of a track batch, packed (``_TEXT_IN_DTYPE``)."""
    txt = np.zeros(len(st), _TEXT_IN_DTYPE)
    for f in _TEXT_IN:
        txt[f] = st[f]
    return txt


def _as_void(batch: np.ndarray) -> np.ndarray:
    """A packed record batch viewed as one opaque item of raw bytes per record."""
    batch = np.ascontiguousarray(batch)
    return batch.view(np.dtype((np.void, batch.dtype.itemsize)))


def _rank_all_equal(label: str) -> int:
    return 0


class TrackFuser:
    """Track-to-track association and covariance-intersection fusion of partners' local tracks.

    Parameters
    ----------
    config:
        :class:`FusionConfig`; defaults are used when omitted.
    combine_labels:
        ``labels -> label`` for a fused track, called with the contributors' labels in
        (partner, track_id) order. The coalition wiring passes ``siap.sharing``'s combine (as
        ``lambda ls: str(combine(ls))``). Default: the common label if all are equal, else "".
        A fused track whose label cannot be combined (the callable raises) or does not fit the
        64-character field is withheld from the output and counted in :attr:`dropped`.
    founder_rank:
        ``label -> int``, the rank of a fused track's founder by its label: when two fused
        tracks merge, the one whose founder ranks lowest keeps its CTN (then the older one).
        The coalition wiring ranks by minus the number of partners the label is releasable
        to, so that numbers founded on widely releasable tracks win and partners who see
        different subsets agree on more numbers (commonality). Default: all equal.
    """

    def __init__(
        self,
        config: FusionConfig | None = None,
        combine_labels: Callable[[list[str]], str] | None = None,
        founder_rank: Callable[[str], int] | None = None,
    ) -> None:
        self.config = config if config is not None else FusionConfig()
        self._combine = combine_labels if combine_labels is not None else same_label_or_empty
        self._rank = founder_rank if founder_rank is not None else _rank_all_equal
        bits = self.config.source_id_bits
        self._source_shift = PARTNER_SHIFT if bits is None else bits
        self._gamma = self.config.gate_threshold
        # local track store, sorted by key; one row per live local track
        self._store = records.empty_tracks(0)
        self._key = np.zeros(0, np.int64)
        self._first_seen = np.zeros(0)
        self._ctn = np.zeros(0, np.int64)  # fused track each local track is in (-1: none)
        self._join = np.zeros(0)  # time it joined that fused track
        # information matrix fusion (method "imf"): the state of each local track whose
        # information the fused track ``_used_ctn`` already holds (raw, at its own time)
        self._used_x = np.zeros((0, 6))
        self._used_P = np.zeros((0, 6, 6))
        self._used_t = np.zeros(0)
        self._used_n = np.zeros(0, np.int64)  # its n_updates
        self._used_ctn = np.zeros(0, np.int64)
        # the fused estimates of the last update, sorted by CTN, with their number of members
        self._f_ctn = np.zeros(0, np.int64)
        self._f_x = np.zeros((0, 6))
        self._f_P = np.zeros((0, 6, 6))
        self._f_n = np.zeros(0, np.int64)
        self._f_t = -np.inf
        # fused tracks: ctn -> (birth_time_s, founder_first_seen_s)
        self._fused: dict[int, tuple[float, float]] = {}
        # pair hysteresis table, sorted by (key_a, key_b) with key_a < key_b: consecutive passes
        # and consecutive fails of the pairwise test. During an update the same table is held in
        # store-index space (_pa, _pb, _pp, _pf, _pd2).
        self._pka = np.zeros(0, np.int64)
        self._pkb = np.zeros(0, np.int64)
        self._ppass = np.zeros(0, np.int64)
        self._pfail = np.zeros(0, np.int64)
        self._pcode_n = 0
        self._pa = self._pb = self._pp = self._pf = np.zeros(0, np.int64)
        self._pd2 = np.zeros(0)
        self._last_time = -np.inf
        # the text fields of the last picture, for the incremental output (_text_fields)
        self._txt_key = np.zeros(0, np.int64)
        self._txt_ctn = np.zeros(0, np.int64)
        self._txt = np.zeros(0, _TEXT_IN_DTYPE)
        self._ctx_ctn = np.zeros(0, np.int64)
        self._ctx_count = np.zeros(0, np.int64)
        self._ctx_text = np.zeros(0, _TEXT_DTYPE)
        self._ctx_reason = np.zeros(0, np.int8)
        self._label_memo: dict[tuple[str, ...], str | None] = {}
        #: rows dropped or withheld, by reason (cumulative)
        self.dropped: Counter[str] = Counter()
        #: sizes from the last update (local tracks, candidate pairs, fused tracks)
        self.last_stats: dict[str, int] = {}

    # ------------------------------------------------------------------ public

    def update(self, local_tracks: np.ndarray, time_s: float) -> np.ndarray:
        """Ingest a batch of local-track snapshots and return the coalition picture at ``time_s``.

        ``local_tracks`` is a TRACK_DTYPE array (any number of rows, any partners, any order);
        local tracks absent from the batch keep their last state until ``max_age_s``.
        Returns one TRACK_DTYPE row per fused track, sorted by CTN (``track_id``), with
        ``partner = ""`` and ``sources = "JPN:12,USA:7"``.
        Raises :class:`~siap.errors.InputError` for a wrong dtype or a time that goes backwards;
        bad rows are dropped and counted in :attr:`dropped`.
        """
        time_s = float(time_s)
        if not np.isfinite(time_s):
            raise InputError(
                f"TrackFuser.update: time_s: expected a finite Unix time, got {time_s}"
            )
        if time_s < self._last_time:
            raise InputError(
                f"TrackFuser.update: time_s: expected >= previous update time {self._last_time}, got {time_s}"
            )
        arr = np.asarray(local_tracks)
        if arr.dtype != records.TRACK_DTYPE:
            raise InputError(
                f"TrackFuser.update: local_tracks: expected a records.TRACK_DTYPE array, got dtype {arr.dtype}"
            )
        arr = arr.reshape(-1)
        before = sum(self.dropped.values())
        rows, keys = self._clean(arr)
        self._ingest(rows, keys, time_s)
        x, P = self._predict(time_s)
        a, b, d2, passed, match, conflict = self._candidates(x, P)
        self._update_pairs(a, b, d2, passed, match, conflict)
        self._split(time_s)
        self._found_singletons(time_s)
        self._merge(time_s)
        self._prune_pairs()
        out = self._picture(time_s, x, P)
        self._last_time = time_s
        n_dropped = sum(self.dropped.values()) - before
        if n_dropped:
            log.warning(
                "fusion t=%.3f: dropped/withheld %d rows; totals %s",
                time_s,
                n_dropped,
                dict(self.dropped),
            )
        self.last_stats = {
            "local_tracks": len(self._key),
            "candidate_pairs": len(a),
            "fused_tracks": len(self._fused),
        }
        return out

    def members(self) -> dict[int, list[tuple[str, int]]]:
        """Current association: CTN -> contributors [(partner, track_id)] in (partner, id) order."""
        out: dict[int, list[tuple[str, int]]] = {}
        for k, c in zip(self._key.tolist(), self._ctn.tolist(), strict=True):
            p, _, tid = decode_ctn(k)
            out.setdefault(c, []).append((p, tid))
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ ingest

    def _clean(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop invalid rows (counted by reason); de-duplicate; sort by key."""
        n = len(arr)
        bad = np.zeros(n, dtype=bool)

        def drop(mask: np.ndarray, reason: str) -> None:
            new = mask & ~bad
            if new.any():
                self.dropped[reason] += int(new.sum())
                bad[new] = True

        if n == 0:
            return arr, np.zeros(0, np.int64)
        drop(~valid_partner(arr["partner"]), "bad_partner")
        tid = arr["track_id"]
        drop((tid < 0) | (tid > MAX_LOCAL_ID), "track_id_out_of_range")
        drop(~np.isfinite(arr["time_s"]), "bad_time")
        drop(
            ~np.isin(arr["status"], list(_STATUS_RANK) + [int(records.TrackStatus.DELETED)]),
            "bad_status",
        )
        finite = (
            np.isfinite(arr["pos_ecef_m"]).all(axis=1)
            & np.isfinite(arr["vel_ecef_mps"]).all(axis=1)
            & np.isfinite(arr["cov_ecef"]).all(axis=(1, 2))
        )
        drop(~finite, "non_finite_state")
        idx = np.nonzero(~bad)[0]
        if len(idx):
            C = np.ascontiguousarray(arr["cov_ecef"][idx], dtype=np.float64).reshape(-1, 6, 6)
            asym = np.empty(len(idx), dtype=bool)
            certain = np.empty(len(idx), dtype=bool)
            _check_covariances(C, asym, certain)
            bad_cov = asym.copy()
            ask = ~asym & ~certain  # the eigenvalues decide only what the bound cannot
            if ask.any():
                Ca = C[ask]
                eig_min = np.linalg.eigvalsh(0.5 * (Ca + np.swapaxes(Ca, 1, 2)))[:, 0]
                bad_cov[ask] = ~(eig_min > 0.0)
            not_pd = np.zeros(n, dtype=bool)
            not_pd[idx] = bad_cov
            drop(not_pd, "cov_not_symmetric_positive_definite")
        # whole records: far faster than field-wise indexing; no copy when nothing is dropped
        good = records.take(arr, ~bad) if bad.any() else arr
        keys = local_key(good["partner"], good["track_id"]) if len(good) else np.zeros(0, np.int64)
        if len(good) == 0:
            return good, keys
        # sort by key, then by time and content, so the survivor of duplicates does not depend
        # on row order: the last row of each key wins. Without duplicates the order by key
        # alone is the same permutation, and far cheaper than sorting on the text fields.
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        if len(keys) > 1 and not (sorted_keys[1:] != sorted_keys[:-1]).all():
            pos = good["pos_ecef_m"]
            order = np.lexsort(
                (
                    good["sources"],
                    good["label"],
                    good["callsign"],
                    good["mode_3a"],
                    good["mode_s_address"],
                    good["status"],
                    good["n_updates"],
                    pos[:, 2],
                    pos[:, 1],
                    pos[:, 0],
                    good["time_s"],
                    keys,
                )
            )
        if (order[1:] < order[:-1]).any():  # not already in order (a copy otherwise)
            good, keys = records.take(good, order), keys[order]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[:-1] != keys[1:]
        if last.all():
            return good, keys
        self.dropped["duplicate_in_batch"] += int((~last).sum())
        return records.take(good, last), keys[last]

    def _ingest(self, rows: np.ndarray, keys: np.ndarray, time_s: float) -> None:
        n_old = len(self._key)
        if len(keys):
            idx = np.searchsorted(self._key, keys)
            idc = np.minimum(idx, max(n_old - 1, 0))
            exists = (
                (idx < n_old) & (self._key[idc] == keys) if n_old else np.zeros(len(keys), bool)
            )
            newer = np.zeros(len(keys), dtype=bool)
            newer[exists] = rows["time_s"][exists] >= self._store["time_s"][idx[exists]]
            stale = exists & ~newer
            if stale.any():
                self.dropped["older_than_stored"] += int(stale.sum())
            self._store[idx[newer]] = records.take(rows, newer)
            fresh = ~exists
            if fresh.any():
                store = records.concatenate([self._store, records.take(rows, fresh)])
                key = np.concatenate([self._key, keys[fresh]])
                first = np.concatenate([self._first_seen, rows["time_s"][fresh]])
                m = int(fresh.sum())
                ctn = np.concatenate([self._ctn, np.full(m, -1, np.int64)])
                join = np.concatenate([self._join, np.full(m, np.nan)])
                order = np.argsort(key, kind="stable")
                self._store, self._key = records.take(store, order), key[order]
                self._first_seen, self._ctn, self._join = first[order], ctn[order], join[order]
                self._used_x = np.concatenate([self._used_x, np.zeros((m, 6))])[order]
                self._used_P = np.concatenate([self._used_P, np.zeros((m, 6, 6))])[order]
                self._used_t = np.concatenate([self._used_t, np.full(m, np.nan)])[order]
                self._used_n = np.concatenate([self._used_n, np.full(m, -1, np.int64)])[order]
                self._used_ctn = np.concatenate([self._used_ctn, np.full(m, -1, np.int64)])[order]
        gone = (self._store["status"] == records.TrackStatus.DELETED) | (
            time_s - self._store["time_s"] > self.config.max_age_s
        )
        if gone.any():
            keep = ~gone
            self._store, self._key = records.take(self._store, keep), self._key[keep]
            self._first_seen, self._ctn, self._join = (
                self._first_seen[keep],
                self._ctn[keep],
                self._join[keep],
            )
            self._used_x, self._used_P = self._used_x[keep], self._used_P[keep]
            self._used_t, self._used_ctn = self._used_t[keep], self._used_ctn[keep]
            self._used_n = self._used_n[keep]
            live = set(self._ctn.tolist())
            self._fused = {c: v for c, v in self._fused.items() if c in live}
            # pairs of removed tracks are forgotten by _update_pairs

    # ------------------------------------------------------------------ association

    def _predict(self, time_s: float) -> tuple[np.ndarray, np.ndarray]:
        st = self._store
        x = np.concatenate([st["pos_ecef_m"], st["vel_ecef_mps"]], axis=1).reshape(-1, 6)
        P = st["cov_ecef"].reshape(-1, 6, 6)
        return predict_cv(x, P, time_s - st["time_s"], self.config.process_noise_mps2)

    def _candidates(self, x: np.ndarray, P: np.ndarray):
        """Candidate pairs (a < b, indices into the store) and their test results."""
        n = len(x)
        empty_i = np.zeros(0, np.int64)
        if n < 2:
            e = np.zeros(0, bool)
            return empty_i, empty_i, np.zeros(0), e, e, e
        pos = x[:, :3]
        # d^2 <= gamma implies |dx|^2 <= gamma * lambda_max(P_i + P_j) <= 2 gamma max(tr_i, tr_j):
        # a ball of radius sqrt(2 gamma tr_i) around each track finds every pair that can pass
        tr = np.trace(P[:, :3, :3], axis1=1, axis2=2)
        radius = np.sqrt(2.0 * self._gamma * tr)
        tree = cKDTree(pos)
        hits = tree.query_ball_point(pos, radius, return_sorted=False)  # np.unique sorts below
        lens = np.fromiter((len(h) for h in hits), dtype=np.int64, count=n)
        ii = np.repeat(np.arange(n, dtype=np.int64), lens)
        jj = np.fromiter(chain.from_iterable(hits), dtype=np.int64, count=int(lens.sum()))
        # pairs that share a Mode S address are candidates whatever their distance
        ms = self._store["mode_s_address"].astype(np.int64)
        known = np.nonzero(ms >= 0)[0]
        if len(known) > 1:
            s = known[np.argsort(ms[known], kind="stable")]
            extra_i, extra_j = [], []
            d = 1
            while d < len(s):
                same = ms[s[:-d]] == ms[s[d:]]
                if not same.any():
                    break
                extra_i.append(s[:-d][same])
                extra_j.append(s[d:][same])
                d += 1
            if extra_i:
                ii = np.concatenate([ii, *extra_i])
                jj = np.concatenate([jj, *extra_j])
        a = np.minimum(ii, jj)
        b = np.maximum(ii, jj)
        source = self._key >> self._source_shift
        keep = (a != b) & (source[a] != source[b])
        code = np.unique(a[keep] * n + b[keep])
        a, b = code // n, code % n
        d2 = pair_statistic(x, P, a, b, self.config.gate_on_velocity)
        ma, mb = ms[a], ms[b]
        both = (ma >= 0) & (mb >= 0)
        match = both & (ma == mb)
        conflict = both & (ma != mb)
        passed = ((d2 <= self._gamma) | match) & ~conflict
        return a, b, d2, passed, match, conflict

    def _update_pairs(self, a, b, d2, passed, match, conflict) -> None:
        """Advance the consecutive pass/fail counters, vectorised over pairs.

        Tested pairs: pass -> (passes + 1, 0), a Mode S match counts as ``associate_after``
        passes at once; fail -> (0, fails + 1); a Mode S conflict -> at least
        ``dissociate_after`` fails at once. Known pairs not tested this time (too far apart for
        the k-d tree) fail. Pairs with a removed local track are forgotten.
        """
        na = self.config.associate_after
        nf = self.config.dissociate_after
        n = len(self._key)
        # the previous table in current store indices (the key -> index map is monotone, so
        # codes a * n + b keep the table's (key_a, key_b) order)
        ia = np.searchsorted(self._key, self._pka)
        ib = np.searchsorted(self._key, self._pkb)
        if n:
            alive = (ia < n) & (ib < n)
            alive[alive] &= (self._key[ia[alive]] == self._pka[alive]) & (
                self._key[ib[alive]] == self._pkb[alive]
            )
        else:
            alive = np.zeros(len(ia), bool)
        old_code = ia[alive] * n + ib[alive]
        old_p, old_f = self._ppass[alive], self._pfail[alive]
        code = a * n + b
        pos = np.searchsorted(old_code, code)
        found = np.zeros(len(code), bool)
        inside = pos < len(old_code)
        found[inside] = old_code[pos[inside]] == code[inside]
        op = np.zeros(len(code), np.int64)
        of = np.zeros(len(code), np.int64)
        op[found] = old_p[pos[found]]
        of[found] = old_f[pos[found]]
        new_p = np.where(passed, np.minimum(op + 1, _PASS_CAP), 0)
        new_p = np.where(match & passed, np.maximum(new_p, na), new_p)
        new_f = np.where(passed, 0, of + 1)
        new_f = np.where(conflict, np.maximum(of + 1, nf), new_f)
        untested = ~np.isin(old_code, code)
        all_code = np.concatenate([code, old_code[untested]])
        order = np.argsort(all_code, kind="stable")
        self._pcode_n = n
        self._pa = (all_code // max(n, 1))[order]
        self._pb = (all_code % max(n, 1))[order]
        self._pp = np.concatenate([new_p, np.zeros(int(untested.sum()), np.int64)])[order]
        self._pf = np.concatenate([new_f, old_f[untested] + 1])[order]
        self._pd2 = np.concatenate(
            [np.where(match, 0.0, d2), np.full(int(untested.sum()), np.nan)]
        )[order]

    def _prune_pairs(self) -> None:
        """Keep pairs with a running pass streak or inside one fused track; back to key space."""
        c = self._ctn
        keep = (self._pp > 0) | (c[self._pa] == c[self._pb])
        self._pka = self._key[self._pa[keep]]
        self._pkb = self._key[self._pb[keep]]
        self._ppass = self._pp[keep]
        self._pfail = self._pf[keep]

    def _seniority(self, i: int) -> tuple[float, float, int]:
        """Order of contributors inside a fused track: earliest joined, then first seen, then key."""
        return (float(self._join[i]), float(self._first_seen[i]), int(self._key[i]))

    def _fused_seniority(self, ctn: int) -> tuple[int, float, float, int]:
        """Order of fused tracks: founder rank (see ``founder_rank``), earliest born, then
        founder first seen, then CTN."""
        rank, birth, fs = self._fused[ctn]
        return (rank, birth, fs, ctn)

    def _allocate(self, founder_index: int, time_s: float) -> int:
        """A new CTN for a fused track founded by store row ``founder_index``."""
        key = int(self._key[founder_index])
        for g in range(MAX_GENERATION + 1):
            ctn = key | (g << LOCAL_ID_BITS)
            if ctn not in self._fused:
                rank = int(self._rank(str(self._store["label"][founder_index])))
                self._fused[ctn] = (rank, time_s, float(self._first_seen[founder_index]))
                return ctn
        raise RuntimeError(f"no free CTN generation for local track key {key}")  # needs 256 live

    def _groups(self, ctns) -> dict[int, list[int]]:
        """ctn -> store indices of its contributors (in key order), for the given CTNs."""
        ctns = np.asarray(sorted(ctns), dtype=np.int64)
        idx = np.nonzero(np.isin(self._ctn, ctns))[0]
        out: dict[int, list[int]] = {int(c): [] for c in ctns}
        for i, c in zip(idx.tolist(), self._ctn[idx].tolist(), strict=True):
            out[c].append(i)
        return out

    def _split(self, time_s: float) -> None:
        nf = self.config.dissociate_after
        c = self._ctn
        within = c[self._pa] == c[self._pb]
        broken = within & (self._pf >= nf)
        if not broken.any():
            return
        suspects = np.unique(c[self._pa[broken]])
        sel = within & np.isin(c[self._pa], suspects)
        n = self._pcode_n
        fails_of = dict(
            zip((self._pa[sel] * n + self._pb[sel]).tolist(), self._pf[sel].tolist(), strict=True)
        )
        for idx in self._groups(suspects.tolist()).values():
            # components of the "still linked" relation (fewer than nf consecutive fails)
            comp = {i: i for i in idx}
            for s in range(len(idx)):
                for t in range(s + 1, len(idx)):
                    u, v = idx[s], idx[t]
                    if fails_of.get(u * n + v, 0) < nf:
                        _union(comp, u, v)
            parts: dict[int, list[int]] = {}
            for i in idx:
                parts.setdefault(_find(comp, i), []).append(i)
            groups = []
            for g in parts.values():
                groups.extend(self._split_by_mode_s(g))
            if len(groups) == 1:
                continue
            senior = {id(g): min(self._seniority(i) for i in g) for g in groups}
            groups.sort(key=lambda g: (-len(g), senior[id(g)]))
            for g in groups[1:]:
                founder = min(g, key=lambda i: (float(self._first_seen[i]), int(self._key[i])))
                new = self._allocate(founder, time_s)
                for i in g:
                    self._ctn[i] = new
                    self._join[i] = time_s
        live = set(self._ctn.tolist())
        self._fused = {c: v for c, v in self._fused.items() if c in live}

    def _split_by_mode_s(self, group: list[int]) -> list[list[int]]:
        """A linked group may still hold two Mode S addresses (A-x-B linked through a member x
        without one). Keep the address of its most senior addressed member; members with another
        address leave, one group per address (in address order)."""
        ms = self._store["mode_s_address"]
        addressed = [i for i in group if ms[i] >= 0]
        if len({int(ms[i]) for i in addressed}) <= 1:
            return [group]
        keep = int(ms[min(addressed, key=self._seniority)])
        stay = [i for i in group if ms[i] < 0 or ms[i] == keep]
        others: dict[int, list[int]] = {}
        for i in group:
            if ms[i] >= 0 and ms[i] != keep:
                others.setdefault(int(ms[i]), []).append(i)
        return [stay] + [others[a] for a in sorted(others)]

    def _found_singletons(self, time_s: float) -> None:
        orphans = np.nonzero(self._ctn < 0)[0]
        if len(orphans) == 0:
            return
        order = np.lexsort((self._key[orphans], self._first_seen[orphans]))
        for i in orphans[order].tolist():
            self._ctn[i] = self._allocate(i, time_s)
            self._join[i] = time_s

    def _compatible(self, f: list[int], g: list[int], passing: dict[int, float]) -> float | None:
        """Merge cost (mean d^2 of the cross pairs) of fused tracks with contributor lists f and
        g, or None if not allowed. ``passing``: pair code -> d^2 of the pairs whose pass streak
        has reached ``associate_after``."""
        keys = self._key
        pf = {int(keys[i]) >> self._source_shift for i in f}
        pg = {int(keys[i]) >> self._source_shift for i in g}
        if pf & pg:
            return None
        ms = self._store["mode_s_address"]
        addr = {int(ms[i]) for i in f + g if ms[i] >= 0}
        if len(addr) > 1:
            return None
        n = self._pcode_n
        total = 0.0
        for i in f:
            for j in g:
                d2 = passing.get(min(i, j) * n + max(i, j))
                if d2 is None:
                    return None
                total += d2
        return total / (len(f) * len(g))

    def _merge(self, time_s: float) -> None:
        na = self.config.associate_after
        n = self._pcode_n
        while True:
            c = self._ctn
            ok = self._pp >= na
            cross = ok & (c[self._pa] != c[self._pb])
            if not cross.any():
                return
            passing = dict(
                zip((self._pa[ok] * n + self._pb[ok]).tolist(), self._pd2[ok].tolist(), strict=True)
            )
            cu = c[self._pa[cross]]
            cv = c[self._pb[cross]]
            linked = np.unique(np.stack([np.minimum(cu, cv), np.maximum(cu, cv)], axis=1), axis=0)
            groups = self._groups(np.unique(linked).tolist())
            costs: dict[tuple[int, int], float] = {}
            for u, v in linked.tolist():
                cost = self._compatible(groups[u], groups[v], passing)
                if cost is not None:
                    costs[(u, v)] = cost
            if not costs:
                return
            # clusters of fused tracks joined by allowed merges
            parent: dict[int, int] = {}
            for u, v in costs:
                parent.setdefault(u, u)
                parent.setdefault(v, v)
                _union(parent, u, v)
            clusters: dict[int, list[int]] = {}
            for x in sorted(parent):
                clusters.setdefault(_find(parent, x), []).append(x)
            merges: list[tuple[int, int]] = []  # (absorber, absorbed)
            for nodes in clusters.values():
                nodes = sorted(nodes, key=self._fused_seniority)
                if len(nodes) == 2:
                    merges.append((nodes[0], nodes[1]))
                    continue
                # more than two contend: a 2-D assignment of juniors to seniors minimising the
                # summed cost (maximum number of merges first, as disallowed cells cost _BIG)
                m = len(nodes)
                C = np.full((m, m), _BIG)
                for r in range(m):
                    for q in range(r + 1, m):
                        pair = (min(nodes[r], nodes[q]), max(nodes[r], nodes[q]))
                        if pair in costs:
                            C[r, q] = costs[pair]
                rows, cols = linear_sum_assignment(C)
                merges.extend(
                    (nodes[r], nodes[q]) for r, q in zip(rows, cols, strict=True) if C[r, q] < _BIG
                )
            merges.sort(key=lambda rs: (self._fused_seniority(rs[0]), self._fused_seniority(rs[1])))
            done = 0
            absorbed: set[int] = set()
            for senior, junior in merges:
                if senior in absorbed or junior in absorbed:
                    continue  # chains are completed in the next round, re-checked
                if self._compatible(groups[senior], groups[junior], passing) is None:
                    continue
                for i in groups[junior]:
                    self._ctn[i] = senior
                    self._join[i] = time_s
                groups[senior] = sorted(groups[senior] + groups.pop(junior))
                del self._fused[junior]
                absorbed.add(junior)
                done += 1
            if done == 0:
                return

    # ------------------------------------------------------------------ fusion

    def _fuse_imf(self, order, ctns, start, counts, grp, x, P, time_s):
        """Information matrix fusion with memory ([CMC90], [TB09]; docs/fusion.md).

        Per fused track (rows of the store in ``order``, grouped by CTN ``grp``):

        * one member: its state, unchanged (bit for bit);
        * the same members as at the last update (or more): the last fused estimate predicted
          to ``time_s`` plus, for each member that reported since its information was last
          used here, the information increment since then
          (:func:`~siap.fusion.estimation.information_increment`); a member new to this fused
          track adds its whole information;
        * a new fused track, or one that lost a member since the last update (split, deletion,
          age-out): restart from the information sum of its members.

        The information sum treats different members as independent: their local tracks come
        from disjoint sets of plots (a partner's source groups never share a sensor, and no
        tracker ingests tracks received from others), so what they share is only the target's
        own motion (process noise) between fusions, which the decorrelation handles at this
        fusion rate. Returns the fused (x, P) per CTN and records the state used.
        """
        sig = self.config.process_noise_mps2
        K, n = len(ctns), len(order)
        xo, Po = x[order], P[order]
        c_row = ctns[grp]
        # the last fused estimate of each CTN, if any
        nf = len(self._f_ctn)
        pos = np.searchsorted(self._f_ctn, ctns)
        posc = np.minimum(pos, max(nf - 1, 0))
        has_prev = (pos < nf) & (self._f_ctn[posc] == ctns) if nf else np.zeros(K, bool)
        used_ctn = self._used_ctn[order]
        cont = (used_ctn == c_row) & has_prev[grp]
        n_cont = np.bincount(grp, weights=cont, minlength=K).astype(np.int64)
        prev_n = np.where(has_prev, self._f_n[posc] if nf else 0, 0)
        single = counts == 1
        use_prior = has_prev & ~single & (n_cont >= prev_n)
        multi = ~single
        rows_multi = multi[grp]
        t_store = self._store["time_s"][order]
        n_store = self._store["n_updates"][order].astype(np.int64)
        # new information only where the local filter made measurement updates since its
        # state was last used (a snapshot predicted to a later time holds nothing new);
        # n_updates <= 0 (a producer that does not count): any newer state
        new_info = (n_store != self._used_n[order]) | ((n_store <= 0) & (t_store != self._used_t[order]))
        incr = cont & use_prior[grp] & new_info
        rowY = np.zeros((n, 6, 6))
        rowy = np.zeros((n, 6))
        if incr.any():
            ui = order[incr]
            xu, Pu = predict_cv(self._used_x[ui], self._used_P[ui], time_s - self._used_t[ui], sig)
            rowY[incr], rowy[incr], widened = information_increment(xo[incr], Po[incr], xu, Pu)
            if widened.any():
                # a member's filter widened its covariance (manoeuvre): the fused track
                # forgets too and restarts from its members' current states
                restart = np.zeros(K, bool)
                restart[grp[np.nonzero(incr)[0][widened]]] = True
                use_prior &= ~restart
                incr &= use_prior[grp]
                rowY[~incr] = 0.0
                rowy[~incr] = 0.0
        full = rows_multi & ~(cont & use_prior[grp])
        if full.any():
            rowY[full], rowy[full] = information(xo[full], Po[full])
        Y = np.add.reduceat(rowY, start, axis=0)
        y = np.add.reduceat(rowy, start, axis=0)
        if use_prior.any():
            pk = posc[use_prior]
            xp, Pp = predict_cv(self._f_x[pk], self._f_P[pk], np.full(len(pk), time_s - self._f_t), sig)
            Yp, yp = information(xp, Pp)
            Y[use_prior] += Yp
            y[use_prior] += yp
        xf = np.empty((K, 6))
        Pf = np.empty((K, 6, 6))
        first = start[single]
        xf[single], Pf[single] = xo[first], Po[first]
        if multi.any():
            xf[multi], Pf[multi] = from_information(Y[multi], y[multi])
        # remember what the fused estimates now hold (a member with nothing new keeps the
        # state whose information was used)
        upd = ~(cont & use_prior[grp] & ~new_info)
        ou = order[upd]
        self._used_x[ou, :3] = self._store["pos_ecef_m"][ou]
        self._used_x[ou, 3:] = self._store["vel_ecef_mps"][ou]
        self._used_P[ou] = self._store["cov_ecef"][ou]
        self._used_t[ou] = t_store[upd]
        self._used_n[ou] = n_store[upd]
        self._used_ctn[ou] = c_row[upd]
        self._f_ctn, self._f_x, self._f_P = ctns.copy(), xf.copy(), Pf.copy()
        self._f_n, self._f_t = counts.astype(np.int64), time_s
        return xf, Pf

    # ------------------------------------------------------------------ output

    def _picture(self, time_s: float, x: np.ndarray, P: np.ndarray) -> np.ndarray:
        n = len(self._key)
        if n == 0:
            return records.empty_tracks(0)
        order = np.lexsort((self._key, self._ctn))
        ctn_sorted = self._ctn[order]
        ctns, start, counts = np.unique(ctn_sorted, return_index=True, return_counts=True)
        K, M = len(ctns), int(counts.max())
        grp = np.repeat(np.arange(K), counts)
        slot = np.arange(n) - start[grp]
        if self.config.method == "imf":
            xf, Pf = self._fuse_imf(order, ctns, start, counts, grp, x, P, time_s)
        else:
            xs = np.zeros((K, M, 6))
            Ps = np.zeros((K, M, 6, 6))
            mask = np.zeros((K, M), dtype=bool)
            xs[grp, slot] = x[order]
            Ps[grp, slot] = P[order]
            mask[grp, slot] = True
            xf, Pf = fuse_stack(xs, Ps, mask, self.config.method)

        st = records.take(self._store, order)
        out = records.empty_tracks(K)
        out["time_s"] = time_s
        out["track_id"] = ctns
        out["pos_ecef_m"] = xf[:, :3]
        out["vel_ecef_mps"] = xf[:, 3:]
        out["cov_ecef"] = Pf
        lat, lon, alt = ecef_to_geodetic(xf[:, :3])
        out["lat_deg"], out["lon_deg"], out["alt_m"] = lat, lon, alt
        mp = np.zeros((K, 2))
        np.add.at(mp, grp, st["model_prob"].astype(np.float64))
        out["model_prob"] = (mp / counts[:, None]).astype(np.float32)
        nu = np.zeros(K, np.int64)
        np.add.at(nu, grp, st["n_updates"].astype(np.int64))
        out["n_updates"] = np.minimum(nu, np.iinfo(np.int32).max)
        rank = np.vectorize(_STATUS_RANK.get, otypes=[np.int64])(st["status"].astype(np.int64))
        best = np.full(K, -1, np.int64)
        np.maximum.at(best, grp, rank)
        inv_rank = {v: k for k, v in _STATUS_RANK.items()}
        out["status"] = [inv_rank[r] for r in best.tolist()]
        ms = np.full(K, records.NO_MODE_S, np.int64)
        np.maximum.at(ms, grp, st["mode_s_address"].astype(np.int64))  # contributors never conflict
        out["mode_s_address"] = ms
        out["partner"] = ""

        text, reason = self._text_fields(st, ctns, start, counts, grp)
        for f in _TEXT_OUT:
            out[f] = text[f]
        if (reason == _WITHHELD_COMBINE).any():
            self.dropped["label_combine_failed"] += int((reason == _WITHHELD_COMBINE).sum())
        if (reason == _WITHHELD_LONG).any():
            self.dropped["label_too_long"] += int((reason == _WITHHELD_LONG).sum())
        keep = reason == 0
        return out if keep.all() else records.take(out, keep)

    def _text_fields(self, st, ctns, start, counts, grp):
        """The text fields of the fused tracks (label, sources, sensors, mode_3a, callsign) and
        per fused track 0 or the reason it is withheld. A fused track whose members and their
        text fields are those of the last update reuses its strings (incremental: the Python
        loop runs only over fused tracks that changed)."""
        K, n = len(ctns), len(st)
        keys = local_key(st["partner"], st["track_id"]) if n else np.zeros(0, np.int64)
        c_row = ctns[grp]
        text_in = _text_in(st)
        row_dirty = np.ones(n, bool)
        m = len(self._txt_key)
        if m:
            pos = np.searchsorted(self._txt_key, keys)
            posc = np.minimum(pos, m - 1)
            same = (pos < m) & (self._txt_key[posc] == keys) & (self._txt_ctn[posc] == c_row)
            # the text fields compared as raw bytes, one item per row (fixed-width, NUL-padded
            # text: equal bytes <=> equal strings), not field by field
            same &= _as_void(self._txt[posc]) == _as_void(text_in)
            row_dirty = ~same
        dirty = np.bincount(grp, weights=row_dirty, minlength=K) > 0
        text = np.zeros(K, _TEXT_DTYPE)
        reason = np.zeros(K, np.int8)
        mc = len(self._ctx_ctn)
        if mc:
            cpos = np.searchsorted(self._ctx_ctn, ctns)
            cposc = np.minimum(cpos, mc - 1)
            cached = (cpos < mc) & (self._ctx_ctn[cposc] == ctns) & (self._ctx_count[cposc] == counts)
            dirty |= ~cached
            clean = ~dirty
            text[clean] = self._ctx_text[cposc[clean]]
            reason[clean] = self._ctx_reason[cposc[clean]]
        # the fused tracks that changed: build their strings
        dk = np.nonzero(dirty)[0]
        if len(dk):
            rows = np.nonzero(dirty[grp])[0]  # their members, contiguous per fused track
            sub = st if len(rows) == n else records.take(st, rows)
            items = [
                f"{p}:{t}"
                for p, t in zip(sub["partner"].tolist(), sub["track_id"].tolist(), strict=True)
            ]
            labels = sub["label"].tolist()
            sensor_lists = [
                (sen or src).split(",") if (sen or src) else []
                for sen, src in zip(sub["sensors"].tolist(), sub["sources"].tolist(), strict=True)
            ]
            m3a = sub["mode_3a"].tolist()
            calls = [c.strip() for c in sub["callsign"].tolist()]
            label_out, sources_out, sensors_out, m3a_out, call_out, why = [], [], [], [], [], []
            if len(self._label_memo) > 4096:  # distinct label tuples are few; stay bounded
                self._label_memo.clear()
            memo = self._label_memo
            s0 = 0
            for cnt in counts[dk].tolist():
                e = s0 + cnt
                if cnt == 1:
                    sources_out.append(items[s0])
                    m3a_out.append(m3a[s0])
                    call_out.append(calls[s0])
                else:
                    joined = ",".join(items[s0:e])
                    sources_out.append(
                        joined if len(joined) <= _SOURCES_LEN else format_sources_items(items[s0:e])
                    )
                    m3a_out.append(_majority(m3a[s0:e], records.NO_MODE_3A))
                    call_out.append(_majority(calls[s0:e], ""))
                sensors_out.append(format_sensor_union(sensor_lists[s0:e]))
                labs = tuple(labels[s0:e])
                if labs not in memo:
                    try:
                        lab: str | None = str(self._combine(list(labs)))
                    except Exception as exc:  # a label that cannot be combined must not be released
                        log.warning("fusion: labels %s not combinable: %s", labs, exc)
                        lab = None
                    memo[labs] = lab
                lab = memo[labs]
                if lab is None:
                    why.append(_WITHHELD_COMBINE)
                    lab = ""
                elif len(lab) > _LABEL_LEN:
                    why.append(_WITHHELD_LONG)
                    lab = ""
                else:
                    why.append(0)
                label_out.append(lab)
                s0 = e
            text["label"][dk] = label_out
            text["sources"][dk] = sources_out
            text["sensors"][dk] = sensors_out
            text["mode_3a"][dk] = m3a_out
            text["callsign"][dk] = call_out
            reason[dk] = why
        # remember for the next update
        by_key = np.argsort(keys, kind="stable")
        self._txt_key = keys[by_key]
        self._txt_ctn = c_row[by_key]
        self._txt = text_in[by_key]
        self._ctx_ctn, self._ctx_count = ctns.copy(), counts.copy()
        self._ctx_text, self._ctx_reason = text, reason
        return text, reason
