"""GOSPA and OSPA distances between a set of true positions and a set of track positions.

GOSPA (Rahmathullah, García-Fernández & Svensson, "Generalized optimal sub-pattern assignment
metric", FUSION 2017, eq. 1 and Prop. 1): for truths ``X`` (``|X| = m``) and tracks ``Y``
(``|Y| = n``), cut-off ``c > 0``, order ``1 <= p < inf`` and ``0 < alpha <= 2``, with
``d^(c)(x, y) = min(d(x, y), c)`` and, for ``m <= n``,

    d_p^(c,alpha)(X, Y) = ( min_pi sum_{i=1..m} d^(c)(x_i, y_pi(i))^p + c^p / alpha * (n - m) )^(1/p)

(symmetric in ``X`` and ``Y``). For ``alpha = 2`` (Prop. 1) the same value is

    ( min_gamma sum_{(i,j) in gamma} d(x_i, y_j)^p + c^p / 2 * (|X| + |Y| - 2 |gamma|) )^(1/p)

over partial assignments ``gamma`` of pairs closer than ``c``, and splits into a localisation
part (assigned pairs), a missed part (``c^p / 2`` per unassigned truth) and a false part
(``c^p / 2`` per unassigned track); ``localisation + missed + false = distance^p``. The optimal
assignment is found with ``scipy.optimize.linear_sum_assignment`` on the ``m x n`` matrix of
``d^(c)(x_i, y_j)^p``, exactly as Stone Soup's ``GOSPAMetric`` does, so the numbers (and, for
ties, the chosen pairs) agree with it.

For ``alpha != 2`` a pair at ``d >= c`` stays assigned (the definition assigns every point of the
smaller set): it counts ``c^p`` in ``localisation`` and ``missed``/``false`` count ``c^p / alpha``
per point of the larger set left over, so the three parts still add up to ``distance^p``.

OSPA (Schuhmacher, Vo & Vo, "A consistent metric for performance evaluation of multi-object
filters", IEEE TSP 56(8), 2008, eq. 3): for ``m <= n``, ``n > 0``,

    d_p^(c)(X, Y) = ( (1/n) (min_pi sum_{i=1..m} d^(c)(x_i, y_pi(i))^p + c^p (n - m)) )^(1/p)

and 0 when both sets are empty. The assignment minimises the sum of the ``p``-th powers, as the
definition says; Stone Soup's ``OSPAMetric`` minimises the sum of plain distances, which is the
same for ``p = 1`` (the default here) and can be larger for ``p > 1``.

Distances are Euclidean in whatever frame the positions are given (ECEF metres in siap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from siap.errors import ConfigError

from ._batch import Grid, ObjectStates, prepare

__all__ = [
    "GospaResult",
    "GospaOverTime",
    "OspaOverTime",
    "gospa",
    "ospa",
    "gospa_over_time",
    "ospa_over_time",
    "check_gospa_params",
]


def check_gospa_params(c: float, p: float, alpha: float = 2.0) -> None:
    """Raise :class:`ConfigError` unless ``c > 0``, ``1 <= p < inf`` and ``0 < alpha <= 2``."""
    if not (np.isfinite(c) and c > 0):
        raise ConfigError(f"gospa: c: expected a finite distance > 0 (m), got {c!r}")
    if not (np.isfinite(p) and p >= 1):
        raise ConfigError(f"gospa: p: expected a finite order >= 1, got {p!r}")
    if not (np.isfinite(alpha) and 0 < alpha <= 2):
        raise ConfigError(f"gospa: alpha: expected 0 < alpha <= 2, got {alpha!r}")


@dataclass(frozen=True)
class GospaResult:
    """GOSPA at one time step. ``localisation``, ``missed`` and ``false`` are in m^p and add up
    to ``distance ** p``; ``assignment`` is a (K, 2) array of (truth index, track index) pairs
    that count as localised (for ``alpha = 2``: those closer than ``c``)."""

    distance: float
    localisation: float
    missed: float
    false: float
    assignment: np.ndarray = field(repr=False)
    n_missed: int = 0
    n_false: int = 0

    @property
    def n_assigned(self) -> int:
        return len(self.assignment)


def _as_points(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an (n, d) array of positions, got shape {arr.shape}")
    return arr


def _capped_cost(x: np.ndarray, y: np.ndarray, c: float, p: float) -> tuple[np.ndarray, float]:
    """(d^(c)(x_i, y_j)^p as an (m, n) matrix, c^p). A distance counts as capped unless it is
    strictly below c, as in Stone Soup's ``compute_cost_matrix``."""
    d = cdist(x, y)
    capped = np.where(d < c, d, c)
    return (capped if p == 1 else np.power(capped, p)), (c if p == 1 else c**p)


def _gospa_core(x: np.ndarray, y: np.ndarray, c: float, p: float, alpha: float):
    """(distance^p, localisation, missed, false, pairs (K,2), n_missed, n_false)."""
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        cp = c**p
        miss, fals = m * cp / alpha, n * cp / alpha
        return miss + fals, 0.0, miss, fals, np.zeros((0, 2), dtype=np.int64), m, n
    cost, cp = _capped_cost(x, y, c, p)
    rows, cols = linear_sum_assignment(cost)
    assigned = cost[rows, cols]
    if alpha == 2:
        good = assigned != cp  # Stone Soup: a pair at the cut-off is one missed plus one false
        loc = float(assigned[good].sum())
        n_missed = m - int(good.sum())
        n_false = n - int(good.sum())
        miss, fals = n_missed * cp / 2.0, n_false * cp / 2.0
        pairs = np.stack([rows[good], cols[good]], axis=1).astype(np.int64)
    else:
        loc = float(assigned.sum())
        n_missed, n_false = m - len(rows), n - len(rows)
        miss, fals = n_missed * cp / alpha, n_false * cp / alpha
        pairs = np.stack([rows, cols], axis=1).astype(np.int64)
    return loc + miss + fals, loc, miss, fals, pairs, n_missed, n_false


def gospa(truth_pos, track_pos, *, c: float, p: float = 1.0, alpha: float = 2.0) -> GospaResult:
    """GOSPA distance between truth positions ``(M, d)`` and track positions ``(N, d)`` at one
    time step (Rahmathullah, García-Fernández & Svensson 2017; see the module docstring)."""
    check_gospa_params(c, p, alpha)
    x, y = _as_points(truth_pos, "truth_pos"), _as_points(track_pos, "track_pos")
    if len(x) and len(y) and x.shape[1] != y.shape[1]:
        raise ValueError(f"truth_pos has {x.shape[1]} dimensions and track_pos {y.shape[1]}")
    dp, loc, miss, fals, pairs, nm, nf = _gospa_core(x, y, float(c), float(p), float(alpha))
    return GospaResult(float(dp ** (1.0 / p)), loc, miss, fals, pairs, nm, nf)


def ospa(truth_pos, track_pos, *, c: float, p: float = 1.0) -> float:
    """OSPA distance (Schuhmacher, Vo & Vo 2008, eq. 3) between truth and track positions."""
    check_gospa_params(c, p)
    x, y = _as_points(truth_pos, "truth_pos"), _as_points(track_pos, "track_pos")
    n = max(len(x), len(y))
    if n == 0:
        return 0.0
    dp = _gospa_core(x, y, float(c), float(p), 1.0)[0]
    return float((dp / n) ** (1.0 / p))


@dataclass(frozen=True)
class GospaOverTime:
    """GOSPA at every step of the common time grid, with run aggregates.

    Per-step arrays have one entry per grid time (``time_s``); the parts are in m^p.
    """

    time_s: np.ndarray
    distance: np.ndarray
    localisation: np.ndarray
    missed: np.ndarray
    false: np.ndarray
    n_missed: np.ndarray
    n_false: np.ndarray
    n_assigned: np.ndarray
    c: float
    p: float
    alpha: float

    @property
    def mean(self) -> float:
        """Mean over the steps of the GOSPA distance (m)."""
        return float(self.distance.mean()) if len(self.distance) else 0.0

    @property
    def rms(self) -> float:
        """Root mean square over the steps of the GOSPA distance (m)."""
        return float(np.sqrt(np.mean(self.distance**2))) if len(self.distance) else 0.0

    @property
    def total(self) -> float:
        """(sum over steps of distance^p)^(1/p): the GOSPA of the whole run taken as one set."""
        return float(np.sum(self.distance**self.p) ** (1.0 / self.p))

    def means(self) -> dict[str, float]:
        """Mean over steps of each part, and of the missed/false/assigned counts."""
        if len(self.distance) == 0:
            return dict.fromkeys(
                (
                    "distance",
                    "localisation",
                    "missed",
                    "false",
                    "n_missed",
                    "n_false",
                    "n_assigned",
                ),
                0.0,
            )
        return {
            "distance": float(self.distance.mean()),
            "localisation": float(self.localisation.mean()),
            "missed": float(self.missed.mean()),
            "false": float(self.false.mean()),
            "n_missed": float(self.n_missed.mean()),
            "n_false": float(self.n_false.mean()),
            "n_assigned": float(self.n_assigned.mean()),
        }


@dataclass(frozen=True)
class OspaOverTime:
    """OSPA at every step of the common time grid."""

    time_s: np.ndarray
    distance: np.ndarray
    c: float
    p: float

    @property
    def mean(self) -> float:
        return float(self.distance.mean()) if len(self.distance) else 0.0


def _per_step(grid: Grid, truth: ObjectStates, tracks: ObjectStates):
    """Yield (step, truth positions, track positions) for each grid step."""
    t_order, t_bounds = truth.by_step(grid.n)
    k_order, k_bounds = tracks.by_step(grid.n)
    for s in range(grid.n):
        yield (
            s,
            truth.pos[t_order[t_bounds[s] : t_bounds[s + 1]]],
            tracks.pos[k_order[k_bounds[s] : k_bounds[s + 1]]],
        )


def _gospa_prepared(grid, truth, tracks, c, p, alpha) -> GospaOverTime:
    check_gospa_params(c, p, alpha)
    c, p, alpha = float(c), float(p), float(alpha)
    S = grid.n
    out = {k: np.zeros(S) for k in ("distance", "localisation", "missed", "false")}
    counts = {k: np.zeros(S, dtype=np.int64) for k in ("n_missed", "n_false", "n_assigned")}
    for s, x, y in _per_step(grid, truth, tracks):
        dp, loc, miss, fals, pairs, nm, nf = _gospa_core(x, y, c, p, alpha)
        out["distance"][s] = dp ** (1.0 / p)
        out["localisation"][s] = loc
        out["missed"][s] = miss
        out["false"][s] = fals
        counts["n_missed"][s], counts["n_false"][s], counts["n_assigned"][s] = nm, nf, len(pairs)
    return GospaOverTime(grid.time_s, **out, **counts, c=c, p=p, alpha=alpha)


def _ospa_prepared(grid, truth, tracks, c, p) -> OspaOverTime:
    check_gospa_params(c, p)
    c, p = float(c), float(p)
    dist = np.zeros(grid.n)
    for s, x, y in _per_step(grid, truth, tracks):
        n = max(len(x), len(y))
        if n:
            dist[s] = (_gospa_core(x, y, c, p, 1.0)[0] / n) ** (1.0 / p)
    return OspaOverTime(grid.time_s, dist, c, p)


def gospa_over_time(
    truth: np.ndarray, tracks: np.ndarray, *, c: float, p: float = 1.0, alpha: float = 2.0
) -> GospaOverTime:
    """GOSPA between the truth batch (``records.TRUTH_DTYPE``) and the track batch
    (``records.TRACK_DTYPE``) at every time present in either (3D ECEF positions)."""
    grid, t, k = prepare(truth, tracks)
    return _gospa_prepared(grid, t, k, c, p, alpha)


def ospa_over_time(
    truth: np.ndarray, tracks: np.ndarray, *, c: float, p: float = 1.0
) -> OspaOverTime:
    """OSPA between the truth and track batches at every time present in either."""
    grid, t, k = prepare(truth, tracks)
    return _ospa_prepared(grid, t, k, c, p)
