"""The multi-sensor tracker: time ordering, gating, global assignment, IMM-EKF, track management.

Processing (see docs/tracking.md for the equations and the rules):

1. ``process`` validates plots (bad ones counted per reason), drops plots older than what has
   already been processed (``late_dropped``) and buffers the rest.
2. Time is cut into a fixed grid of frames of ``frame_s``. A frame is complete once the newest
   plot seen is ``reorder_window_s`` past its end; complete frames are processed in time order
   (all sensors together with ``merge_sensors``, else sensor by sensor, sorted by sensor id).
   The grid is absolute, so the result does not depend on how the input stream is cut.
3. For the plots of a frame, in rounds: candidate (track, plot) pairs come from a
   uniform grid index (``kernels.association.grid_build`` /
   ``grid_pairs``) over the tracks' predicted
   horizontal positions (radius from the
   chi-square gate and both covariances) and a cheap horizontal Mahalanobis test; each
   candidate track is then predicted to its plot's own time through the IMM, the innovation
   and Mahalanobis distance are computed in the plot's measurement space (EKF), and pairs
   outside the gate or with conflicting Mode S / Mode 3/A are removed. Unambiguous pairs and
   stars are assigned directly, the remaining clusters by
   ``scipy.optimize.linear_sum_assignment`` (global nearest neighbour); with
   ``association='jpda'`` ambiguous clusters of confirmed tracks and one sensor's plots are
   updated by JPDA instead (:mod:`.jpda`).
4. Assigned tracks run one IMM cycle to their plot's time in one batched call; plots that lost
   a confirmed track's gate are dropped; the other unassigned plots start tentative tracks
   (single-point initiation with a large velocity covariance, grouped across sensors).
5. After each frame period, tracks are confirmed / coasted / deleted by the documented rules.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from siap import records as rec
from siap.errors import InputError
from siap.geo import ecef_to_geodetic, geodetic_to_ecef
from siap.records import PLOT_DTYPE, TRACK_DTYPE, TrackStatus, empty_plots, empty_tracks

from . import filters
from . import jpda as jp
from .config import TrackerConfig
from .coverage import K_REFRACTION, SensorCoverage
from .kernels.association import (
    assign_direct,
    graph_components,
    grid_build,
    grid_pairs,
    horizontal_prefilter,
    track_radii,
)
from .kernels.imm_ekf import oosm_update, pair_scores, pair_update
from .kernels.management import coverage_due, deletion_due, mark_seen, mark_sensors, sensor_ranges
from .kernels.output import snapshot_states
from .measurements import PREP_DTYPE, Geometry, PreparedPlots, validate
from .output import (
    MAX_TEXT_ROWS,
    TAIL_DTYPE,
    SnapshotTexts,
    new_track_records,
    write_text_fields,
)

__all__ = ["Tracker", "track"]

logger = logging.getLogger("siap.tracking")

TENTATIVE = int(TrackStatus.TENTATIVE)
CONFIRMED = int(TrackStatus.CONFIRMED)
COASTING = int(TrackStatus.COASTING)
DELETED = int(TrackStatus.DELETED)

_BIG = 1e9
_STAT_KEYS = (
    "plots_in",
    "plots_used",
    "plots_unused_in_gate",
    "late_dropped",
    "late_applied",
    "frames",
    "tracks_initiated",
    "tracks_confirmed",
    "tracks_deleted",
    "rejected_unknown_kind",
    "rejected_nan",
    "rejected_inf",
    "rejected_negative_range",
    "rejected_impossible_range",
    "rejected_impossible_angle",
    "rejected_impossible_position",
    "rejected_bad_covariance",
    "jpda_clusters",
    "jpda_clusters_too_large",
    "plots_own_address_outside_gate",
    "tracks_reseeded",
    "tracks_merged",
    "coalescence_checks",
    "tracks_ended_missed",
    "tracks_ended_outside_coverage",
)
# Mode 3/A conspicuity codes (ICAO Annex 10 vol. IV and regional VFR/IFR codes): shared by
# many aircraft, so no evidence of identity at all; other codes are weak evidence.
CONSPICUITY_CODES = (0o0000, 0o1000, 0o1200, 0o2000, 0o7000, 0o7777)
_CONSPICUOUS = np.zeros(0o10000, bool)  # lookup by code
_CONSPICUOUS[list(CONSPICUITY_CODES)] = True
_MERGE_DTYPE = np.dtype(
    [("time_s", "f8"), ("kept_id", "i8"), ("merged_id", "i8"), ("reason", "U16")]
)
_MAX_MERGES = 1 << 16  # merge records kept (the newest)


_WARM = [False]  # numba kernels loaded in this process
_JPDA_MAX_SPREAD_S = 0.1  # a JPDA cluster's plots lie within this time of each other
_JPDA_IDENTITY_BETA = 0.9  # a JPDA-updated track takes a plot's identity above this beta
_COVERAGE_CHECK_S = 1.0  # coverage rules at most this often (data time)
_COVERAGE_LEARN_S = 10.0  # sensor revisit and P_D estimates updated this often (data time)


def _local_index(label: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each element among the elements with the same label (in index order), and the
    number of elements per label."""
    o = np.argsort(label, kind="stable")
    ls = label[o]
    first = np.ones(len(o), bool)
    first[1:] = ls[1:] != ls[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(o)), 0))
    loc = np.empty(len(o), np.int64)
    loc[o] = np.arange(len(o)) - start
    return loc, np.bincount(label, minlength=n_labels)


class Tracker:
    """Multi-sensor IMM-EKF tracker over a local ENU frame. See the module docstring.

    >>> trk = Tracker(TrackerConfig(origin_lat_deg=35.0, origin_lon_deg=135.0))
    >>> trk.process(plots); trk.flush(); tracks = trk.snapshot(t)   # doctest: +SKIP
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else TrackerConfig()
        c = self.cfg
        self.geo = Geometry(c)
        self._chi2 = {2: c.gate_chi2(2), 3: c.gate_chi2(3)}
        self._nm = 2 if c.imm_enabled else 1
        self._g_base = c.gate_radius_sigmas
        self._g_modes = c.mode_s_gate_radius_sigmas
        self._ix: dict | None = None
        self._ix_dirty = False
        self._ix_bin: float | None = None
        self._marker_bin: float | None = None
        self._qh = np.array([c.cv_process_noise_m2ps3, c.manoeuvre_process_noise_m2ps3])
        self._qv = np.array(
            [c.vertical_process_noise_m2ps3, c.vertical_manoeuvre_process_noise_m2ps3]
        )
        self._stats = dict.fromkeys(_STAT_KEYS, 0)
        # Sequential track score (log-likelihood ratio, Blackman & Popoli 1999 sec. 6.2).
        self._score_on = c.false_alarm_density_per_km2 is not None
        self._jpda = c.association == "jpda"
        self._clutter_per_m2 = c.clutter_per_m2
        if self._score_on:
            self._score_hit = c.score_hit
            self._score_miss = c.score_miss
            self._score_del_conf = c.score_delete_confirmed_level
            self._score_report = c.score_report_level
        self._sensor_index: dict[str, int] = {}
        self._sensor_names: list[str] = []
        # Encoded (partner, label, sources, sensors) of snapshot records, one row per distinct
        # sensor bit mask; each track keeps its row in ``_text_row``.
        self._texts = SnapshotTexts(c.partner, c.label, self._sensor_names)
        self._buf = np.zeros(0, PREP_DTYPE)
        self._watermark = -np.inf
        self._processed_until = -np.inf
        self._next_id = 1
        # identity: addresses newly set on tracks (checked for duplicates at the next
        # maintenance), consecutive coalescence passes per (older id, newer id), merge records
        self._new_addresses: list[np.ndarray] = []
        self._coal: dict[tuple[int, int], int] = {}
        self._next_coal_s = -np.inf
        self._next_coverage_s = -np.inf
        self._next_learn_s = -np.inf
        self._chi2_coal = c.coalescence_chi2
        self._merges: collections.deque = collections.deque(maxlen=_MAX_MERGES)
        self.n = 0
        self._n_dead = 0
        self._coverage = SensorCoverage(self.geo.re, c.origin_alt_m, c.coverage_range_margin)
        self._site_raw = np.zeros((0, 3))  # sensor lat, lon, alt of the sites in _coverage
        self._alloc(256, 1, 8)
        if not _WARM[0]:
            self._warm_up()
            _WARM[0] = True

    def _warm_up(self) -> None:
        """Load (or compile, the first time) the numba kernels with the argument types the
        tracker uses, once per process, so the first frames do not pay for it."""
        c = self.cfg
        pl = empty_plots(3)
        pl["kind"] = [0, 1, 2]
        pl["time_s"] = 0.0
        pl["sensor_lat_deg"] = pl["lat_deg"] = c.origin_lat_deg
        pl["sensor_lon_deg"] = pl["lon_deg"] = c.origin_lon_deg
        pl["sensor_alt_m"] = 0.0
        pl["range_m"], pl["azimuth_rad"], pl["elevation_rad"] = 1e4, 0.0, 0.1
        pl["alt_m"] = 1000.0
        pl["cov"] = np.eye(3)
        validate(pl, c)
        self.geo.prepare(pl, np.zeros(3, np.int64))
        z = np.zeros(0, np.int64)
        pp = PreparedPlots.from_array(np.zeros(1, PREP_DTYPE))
        self._pairs(z, z, pp)
        self._update(z, z, pp, {}, z)
        self._horizontal_prefilter(z, z, pp)
        self._track_radii(z, 0.0, 0.0)
        # the fields of a snapshot of several tracks are strided views, those of exactly one
        # track contiguous: two specialisations
        for o in (np.empty(1, TRACK_DTYPE), np.empty(2, TRACK_DTYPE)):
            snapshot_states(
                z, 0.0, self._nm, self._t, self._xc, self._Pc, self._mu, self._qh, self._qv,
                c.cv_mean_sojourn_s, c.manoeuvre_mean_sojourn_s, self.geo.E,
                self.geo.origin_ecef, o["pos_ecef_m"], o["vel_ecef_mps"], o["cov_ecef"],
                o["model_prob"],
            )  # fmt: skip
        write_text_fields(o, self._cs, z, np.zeros((1, TAIL_DTYPE.itemsize), np.uint8), z)
        mark_sensors(z, z, self._src, self._bin_sens, self._text_row)
        cov = SensorCoverage(1.0, 0.0)
        cov.ensure(1)
        sensor_ranges(z, pp.pos, cov.site, cov.max_range_m)
        mark_seen(z, z, pp.time_s, self._last_seen)
        coverage_due(
            z, 0.0, self._t, self._last_gated, self._xc, self._src, self._last_seen,
            np.zeros(1, bool), np.zeros(1, bool), cov.revisit_s, cov.revisit_s, cov.site, cov.site_alt_m,
            cov.max_range_m, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0,
        )  # fmt: skip
        oosm_update(
            z, z, self._nm, self._t, self._xm, self._Pm, self._mu, self._xc, self._Pc, self._qh,
            self._qv, pp.time_s, pp.kind, pp.has_alt, pp.z, pp.R, pp.site, pp.rot, self.geo.re,
            self.geo.rc,
        )  # fmt: skip
        assign_direct(z, z, np.zeros(0), 1, 1)
        deletion_due(
            0.0, 0, self._t, self._status, self._Pc, self._mu, self._qh, TENTATIVE, DELETED,
            1.0, 1.0, 1.0, False, self._score, 1.0, 0.0, 0.0, 0.0,
        )  # fmt: skip
        i1 = np.zeros(1, np.int64)
        jp.cluster_pairs(i1, i1, 1, 1)
        graph_components(i1, i1, 1)
        jp.jpda_marginals(np.array([0, 1]), i1, np.ones(1), np.ones(1), 1)
        jp.pair_horizontal_loglik(
            z, z, self._nm, self._t, self._xc, self._Pc, self._mu, self._qh, pp.time_s, pp.pos,
            pp.pos_cov,
        )  # fmt: skip
        jp.pda_update(
            z, i1, z, np.zeros(0), np.zeros(0), z, self._nm, self._t, self._xm, self._Pm,
            self._mu, self._xc, self._Pc, c.cv_mean_sojourn_s, c.manoeuvre_mean_sojourn_s,
            self._qh, self._qv, pp.time_s, pp.kind, pp.has_alt, pp.z, pp.R, pp.site, pp.rot,
            self.geo.re, self.geo.rc, pp.pos, pp.pos_cov,
        )  # fmt: skip
        xy = np.zeros((1, 2))
        one = np.ones(1)
        keys, order = grid_build(xy, 1.0)
        for flag in (True, False):
            grid_pairs(keys, order, 1.0, xy, xy, one, one, one, one, one, 1.0, flag)

    # ------------------------------------------------------------------ track table (SoA)
    def _alloc(self, cap: int, words: int, cols: int) -> None:
        self._cap = cap
        self._t = np.zeros(cap)
        self._xm = np.zeros((cap, 2, 6))
        self._Pm = np.zeros((cap, 2, 6, 6))
        self._mu = np.zeros((cap, 2))
        self._xc = np.zeros((cap, 6))
        self._Pc = np.zeros((cap, 6, 6))
        self._id = np.zeros(cap, np.int64)
        self._status = np.zeros(cap, np.uint8)
        self._nupd = np.zeros(cap, np.int32)
        self._score = np.zeros(cap)
        self._modes = np.full(cap, -1, np.int64)
        self._m3a = np.full(cap, -1, np.int64)
        self._cs = np.zeros(cap, TRACK_DTYPE["callsign"])
        self._src = np.zeros((cap, words), np.uint64)
        self._bin_sens = np.zeros((cap, words), np.uint64)  # sensors that updated it this frame
        self._text_row = np.full(cap, -1, np.int64)  # row in _texts, -1 when _src changed
        self._ms_miss = np.zeros(cap, np.int32)  # own-address plots outside the gate, in a row
        self._last_seen = np.full((cap, cols), np.nan)  # time of the last plot of each sensor
        self._last_gated = np.full(cap, -np.inf)  # time of the last plot inside its gate

    _FIELDS = (
        "_t",
        "_xm",
        "_Pm",
        "_mu",
        "_xc",
        "_Pc",
        "_id",
        "_status",
        "_nupd",
        "_score",
        "_modes",
        "_m3a",
        "_cs",
        "_src",
        "_bin_sens",
        "_text_row",
        "_ms_miss",
        "_last_seen",
        "_last_gated",
    )

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = self._cap
        while cap < need:
            cap *= 2
        old = {f: getattr(self, f) for f in self._FIELDS}
        self._alloc(cap, old["_src"].shape[1], old["_last_seen"].shape[1])
        for f, arr in old.items():
            getattr(self, f)[: self.n] = arr[: self.n]

    def _ensure_sensor_words(self) -> None:
        words = (len(self._sensor_names) + 63) // 64
        if words > self._src.shape[1]:
            for f in ("_src", "_bin_sens"):
                old = getattr(self, f)
                new = np.zeros((self._cap, words), np.uint64)
                new[:, : old.shape[1]] = old
                setattr(self, f, new)
            self._forget_texts()  # the cached masks have fewer words
        cols = self._last_seen.shape[1]
        if len(self._sensor_names) > cols:
            new = np.full((self._cap, max(2 * cols, len(self._sensor_names))), np.nan)
            new[:, :cols] = self._last_seen
            self._last_seen = new
        self._coverage.ensure(len(self._sensor_names))

    # ------------------------------------------------------------------ public API
    @property
    def stats(self) -> dict[str, int]:
        """Counters: plots_in, plots_used, rejected_<reason>, late_dropped, tracks_*."""
        return dict(self._stats)

    @property
    def merges(self) -> np.ndarray:
        """The track merges so far (the newest 65,536), oldest first: ``time_s``, ``kept_id``
        (the older track number, which lives on), ``merged_id`` (ended) and ``reason``
        (``"mode_s"``: same Mode S address; ``"coalescence"``: the states were statistically
        the same over several tests)."""
        return np.array(list(self._merges), dtype=_MERGE_DTYPE)

    @property
    def n_tracks(self) -> int:
        """Live tracks (tentative and confirmed)."""
        return self.n - self._n_dead

    def process(self, plots: np.ndarray) -> None:
        """Take a batch of plots (``records.PLOT_DTYPE``, any size, any order within
        ``reorder_window_s``) and process every frame that is now complete."""
        plots = np.asarray(plots)
        if plots.dtype != PLOT_DTYPE:
            raise InputError(f"plots: dtype: expected records.PLOT_DTYPE, got {plots.dtype}")
        plots = plots.reshape(-1)
        self._stats["plots_in"] += len(plots)
        if len(plots) == 0:
            return
        ok, counts = validate(plots, self.cfg)
        for k, v in counts.items():
            self._stats[f"rejected_{k}"] = self._stats.get(f"rejected_{k}", 0) + v
        if not ok.all():
            plots = rec.take(plots, ok)
        late = plots["time_s"] < self._processed_until
        if late.any():
            oosm = late.copy()
            if self.cfg.out_of_sequence and self.n_tracks:
                oosm &= (
                    plots["time_s"] >= self._processed_until - self.cfg.out_of_sequence_max_lag_s
                )
            else:
                oosm[:] = False
            if oosm.any():
                lp = rec.take(plots, oosm)
                self._apply_late(lp, self.geo.prepare(lp, self._sensor_indices(lp["sensor_id"])))
            if (late & ~oosm).any():
                nl = int((late & ~oosm).sum())
                self._stats["late_dropped"] += nl
                logger.debug(
                    "dropped %d late plot(s) older than %.3f (first plot ids %s)",
                    nl,
                    self._processed_until,
                    plots["plot_id"][late & ~oosm][:5].tolist(),
                )
            plots = rec.take(plots, ~late)
        if len(plots) == 0:
            return
        prep = self.geo.prepare(plots, self._sensor_indices(plots["sensor_id"]))
        if self.cfg.coverage_management:
            self._observe_sites(plots, prep)
        self._buf = rec.concatenate([self._buf, prep]) if len(self._buf) else prep
        self._watermark = max(self._watermark, float(prep["time_s"].max()))
        fs = self.cfg.frame_s
        cutoff = self._watermark - self.cfg.reorder_window_s
        first_open_bin = np.floor(cutoff / fs)
        bins = np.floor(self._buf["time_s"] / fs)
        self._run(bins < first_open_bin, limit_s=np.inf)
        self._processed_until = max(self._processed_until, first_open_bin * fs)

    def flush(self) -> None:
        """Process everything still buffered (end of input)."""
        if len(self._buf):
            last = float(self._buf["time_s"].max())
            self._run(np.ones(len(self._buf), bool), limit_s=np.inf)
            self._processed_until = max(self._processed_until, last)

    def advance(self, time_s: float) -> None:
        """Process every buffered plot with time <= ``time_s`` now, without waiting for the
        reorder window (for time-sorted input, e.g. :func:`track`). Later plots older than
        ``time_s`` will be counted as late."""
        if len(self._buf):
            self._run(self._buf["time_s"] <= time_s, limit_s=time_s)
        self._processed_until = max(self._processed_until, time_s)

    def snapshot(self, time_s: float) -> np.ndarray:
        """Confirmed tracks (CONFIRMED or COASTING) predicted to ``time_s``, as TRACK_DTYPE,
        sorted by track id. Tracks that would be deleted at ``time_s`` (time, score and
        coverage rules) are left out."""
        c = self.cfg
        n = self.n
        sel = np.flatnonzero(self._status[:n] == CONFIRMED)
        dt = time_s - self._t[sel]
        keep = dt <= c.delete_after_s
        if self._score_on:
            keep &= self._score_now(sel, dt) >= self._score_report
        if (
            c.coverage_management
            and len(sel)
            and self._coverage.ready
            and time_s >= self._next_coverage_s
        ):  # the maintenance has not judged the tracks within the last check interval
            keep &= ~self._coverage_due(float(time_s), sel, count=False)
        sel, dt = sel[keep], dt[keep]
        k = len(sel)
        if k == 0:
            return empty_tracks(0)
        ids = self._id[sel]
        if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
            order = np.argsort(ids, kind="stable")
            sel, dt = sel[order], dt[order]
        out = new_track_records(k)
        # Both modes share F, so predicting each mode and combining equals predicting the
        # combined estimate with the mode-probability-weighted Q: F P F' + sum_j mu_j Q_j.
        sig2 = snapshot_states(
            sel, float(time_s), self._nm, self._t, self._xc, self._Pc, self._mu, self._qh,
            self._qv, c.cv_mean_sojourn_s, c.manoeuvre_mean_sojourn_s, self.geo.E,
            self.geo.origin_ecef, out["pos_ecef_m"], out["vel_ecef_mps"], out["cov_ecef"],
            out["model_prob"],
        )  # fmt: skip
        ok = sig2 <= c.max_position_std_m**2
        if not ok.all():
            sel, dt, out = sel[ok], dt[ok], out[ok]
            k = len(sel)
            if k == 0:
                return empty_tracks(0)
        out["time_s"] = time_s
        out["track_id"] = self._id[sel]
        out["status"] = np.where(dt > c.coasting_after_s, COASTING, CONFIRMED)
        lat, lon, alt = ecef_to_geodetic(out["pos_ecef_m"])
        out["lat_deg"], out["lon_deg"], out["alt_m"] = lat, lon, alt
        out["n_updates"] = self._nupd[sel]
        out["mode_s_address"] = self._modes[sel]
        out["mode_3a"] = self._m3a[sel]
        rows = self._text_row[sel]
        if rows.min() < 0:  # tracks started or seen by a new sensor since they were encoded
            if len(self._texts) > MAX_TEXT_ROWS:
                self._forget_texts()
                rows = self._text_row[sel]
            todo = sel[rows < 0]
            self._text_row[todo] = self._texts.rows(self._src[todo])
            rows = self._text_row[sel]
        write_text_fields(out, self._cs, sel, self._texts.table, rows)
        return out

    # ------------------------------------------------------------------ internals
    def _n_revisits(self, dt: np.ndarray) -> np.ndarray:
        """Detection opportunities in ``dt`` seconds (a quarter revisit of tolerance for
        jitter)."""
        return np.floor(np.abs(dt) / self.cfg.score_revisit_s + 0.25)

    def _score_now(self, idx, dt: np.ndarray) -> np.ndarray:
        """Track score at ``t_last + dt``: the stored score plus one miss per revisit."""
        return self._score[idx] + self._n_revisits(dt) * self._score_miss

    def _forget_texts(self) -> None:
        """Drop the encoded texts (all tracks are encoded again at the next snapshot)."""
        self._texts.forget()
        self._text_row[:] = -1

    def _sensor_indices(self, names: np.ndarray) -> np.ndarray:
        if len(names) and names[0] in self._sensor_index and (names == names[0]).all():
            return np.full(len(names), self._sensor_index[names[0]], np.int64)  # one known sensor
        uniq, inv = np.unique(names, return_inverse=True)
        idx = np.empty(len(uniq), np.int64)
        for i, nme in enumerate(uniq.tolist()):
            if nme not in self._sensor_index:
                self._sensor_index[nme] = len(self._sensor_names)
                self._sensor_names.append(nme)
            idx[i] = self._sensor_index[nme]
        self._ensure_sensor_words()
        return idx[inv]

    def _run(self, ready: np.ndarray, limit_s: float) -> None:
        if not ready.any():
            return
        if ready.all():
            batch, self._buf = self._buf, np.zeros(0, PREP_DTYPE)
        else:
            batch = rec.take(self._buf, ready)
            self._buf = rec.take(self._buf, ~ready)
        fs = self.cfg.frame_s
        t = batch["time_s"]
        bins = np.floor(t / fs).astype(np.int64)
        # Sensors are ordered by name (not by first appearance) so that the result does not
        # depend on how the stream was cut into batches.
        names = np.array(self._sensor_names)
        name_rank = np.empty(len(names), np.int64)
        name_rank[np.argsort(names, kind="stable")] = np.arange(len(names))
        sid = name_rank[batch["sensor"]]
        ms = batch["mode_s"]
        pid = batch["plot_id"]
        # Rank of repeated Mode S addresses within (frame, sensor): repeats go to sub-frames so
        # that one sensor never offers two plots of the same aircraft in one assignment.
        rank = np.zeros(len(batch), np.int64)
        dup = ms >= 0
        if dup.any():
            o1 = np.lexsort((pid, t, ms, sid, bins))
            b1, s1, m1 = bins[o1], sid[o1], ms[o1]
            newgrp = np.ones(len(o1), bool)
            newgrp[1:] = (
                (b1[1:] != b1[:-1]) | (s1[1:] != s1[:-1]) | (m1[1:] != m1[:-1]) | (m1[1:] < 0)
            )
            start = np.maximum.accumulate(np.where(newgrp, np.arange(len(o1)), 0))
            rank[o1] = np.arange(len(o1)) - start
        if self.cfg.merge_sensors:
            order = np.lexsort((pid, t, sid, rank, bins))
        else:
            order = np.lexsort((pid, t, rank, sid, bins))
        batch = rec.take(batch, order)
        bins, rank, sid = bins[order], rank[order], sid[order]
        pp = PreparedPlots.from_array(batch)
        brk = (bins[1:] != bins[:-1]) | (rank[1:] != rank[:-1])
        if not self.cfg.merge_sensors:
            brk |= sid[1:] != sid[:-1]
        cut = np.flatnonzero(brk) + 1
        starts = np.concatenate([[0], cut]).tolist()
        ends = np.concatenate([cut, [len(batch)]]).tolist()
        for s, e in zip(starts, ends, strict=True):
            if self._ix is None or self._ix_bin != bins[s]:
                self._build_index((float(bins[s]) + 0.5) * fs)
                self._ix_bin = bins[s]
            if self._marker_bin != bins[s]:
                self._bin_sens[: self.n] = 0
                self._marker_bin = bins[s]
            self._frame(pp, s, e)
            if e == len(batch) or bins[e] != bins[s]:
                self._maintain(min(float(bins[s] + 1) * fs, limit_s))

    # ---- one frame
    def _frame(self, pp: PreparedPlots, s: int, e: int) -> None:
        """Associate and apply the plots ``s:e`` (one sensor, or all sensors with
        ``merge_sensors``) in rounds: each round gates the plots still open against all tracks,
        assigns (one plot per track) and updates; a plot that was in some gate but lost goes to
        the next round, against the updated tracks. A track takes at most one plot per sensor
        per frame period. Plots left over start tracks (:meth:`_initiate_free`)."""
        self._stats["frames"] += 1
        assigned = np.zeros(e - s, bool)
        near_confirmed = np.zeros(e - s, bool)  # inside the gate of a confirmed track
        active = np.arange(s, e)
        for _ in range(8):
            if not self.n or len(active) == 0:
                break
            ti, pj = self._candidates(pp, active)
            if len(ti) == 0:
                break
            o = np.lexsort((pj, ti))  # deterministic order (track slot, plot)
            ti, pj = ti[o], pj[o]
            gp = active[pj]
            keep = self._horizontal_prefilter(ti, gp, pp)
            ti, pj, gp = ti[keep], pj[keep], gp[keep]
            if len(ti) == 0:
                break
            # One plot per sensor per frame period, unless the plot's Mode S says it is this
            # aircraft (sub-frames of repeated addresses).
            ms = pp.mode_s[gp]
            keep = self._sensor_free(ti, pp.sensor[gp]) | ((ms >= 0) & (ms == self._modes[ti]))
            if not keep.all():
                ti, pj, gp = ti[keep], pj[keep], gp[keep]
                if len(ti) == 0:
                    break
            pr = self._pairs(ti, gp, pp)
            ok, cost = self._gate(ti, gp, pp, pr)
            sel = np.flatnonzero(ok)
            if len(sel) == 0:
                break
            conf = sel[self._status[ti[sel]] == CONFIRMED]
            near_confirmed[gp[conf] - s] = True
            np.maximum.at(self._last_gated, ti[sel], pp.time_s[gp[sel]])
            again = np.zeros(len(active), bool)
            again[pj[sel]] = True
            n_soft = 0
            if self._jpda:
                k_soft, used = self._jpda_clusters(
                    ti[sel], gp[sel], pj[sel], pr["cost"][sel], cost[sel], pp
                )
                soft = sel[k_soft]
                n_soft = len(soft)
                if n_soft:
                    assigned[used - s] = True
                    again[pj[soft]] = False
                    sel = np.setdiff1d(sel, soft, assume_unique=True)
            a = sel[self._assign(ti[sel], pj[sel], cost[sel], len(active))]
            if len(a):
                self._update(ti[a], gp[a], pp, pr, a)
                assigned[gp[a] - s] = True
                again[pj[a]] = False
            if len(a) == 0 and n_soft == 0:
                break
            active = active[again]
        # A plot carrying a live track's Mode S address never starts a track: it is dropped or
        # re-seeds that track. A plot that fell in a confirmed track's gate but lost the
        # assignment is most likely clutter near the target or a split plot: it does not start
        # a track either.
        left = np.flatnonzero(~assigned) + s
        own, n_dropped = self._own_address_plots(left, pp)
        left = left[~own]
        unused = near_confirmed[left - s]
        free = left[~unused]
        if len(free):
            self._initiate_free(free, pp)
        n_unused = int(unused.sum())
        self._stats["plots_unused_in_gate"] += n_unused
        self._stats["plots_used"] += e - s - n_unused - n_dropped

    def _horizontal_prefilter(
        self, ti: np.ndarray, gp: np.ndarray, pp: PreparedPlots
    ) -> np.ndarray:
        """Cheap necessary condition for the gate: the Mahalanobis distance of the horizontal
        position difference, with the track predicted to the plot time under the manoeuvre
        model's (largest) process noise and the plot's first-order Cartesian covariance (for
        the combined estimate and the manoeuvre mode's own, whichever is closer), is at most
        1.5 times the gate. A marginal's Mahalanobis distance never exceeds the full one, so (up
        to linearisation and IMM mixing, which the factor covers) no gated pair is dropped."""
        g3 = self._chi2[3]
        return horizontal_prefilter(
            ti, gp, self._nm, self._t, self._xc, self._Pc, self._xm, self._Pm, self._modes,
            float(self._qh[self._nm - 1]), pp.time_s, pp.pos, pp.pos_cov, pp.mode_s,
            g3, max(g3, self.cfg.mode_s_gate_chi2),
        )  # fmt: skip

    def _sensor_free(self, ti: np.ndarray, sensor: np.ndarray) -> np.ndarray:
        """True where track ``ti`` has not yet had a plot of ``sensor`` in this frame period."""
        word = sensor // 64
        bit = (sensor % 64).astype(np.uint64)
        return ((self._bin_sens[ti, word] >> bit) & np.uint64(1)) == 0

    def _initiate_free(self, free: np.ndarray, pp: PreparedPlots) -> None:
        """Start tracks from unassigned plots. Plots of different sensors in one frame that
        could be the same new target (within each other's position uncertainty plus
        ``3 initial_velocity_std`` times their time difference, identities compatible) are
        grouped: the earliest starts the track and the others update it, one per sensor."""
        sens = pp.sensor[free]
        if len(free) < 2 or np.all(sens == sens[0]):
            self._initiate(free, pp)
            return
        G = self._g_base
        xy = pp.pos[free, :2]
        pc = pp.pos_cov[free]
        sig = np.sqrt(pc[:, 0, 0] + pc[:, 1, 1])
        t = pp.time_s[free]
        vmax = 3.0 * self.cfg.initial_velocity_std_mps
        r = 2.0 * G * float(sig.max()) + vmax * float(t.max() - t.min())
        pairs = cKDTree(xy).query_pairs(r, output_type="ndarray")
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            d = np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1])
            ms = pp.mode_s[free]
            keep = (sens[i] != sens[j]) & (d <= G * (sig[i] + sig[j]) + vmax * np.abs(t[i] - t[j]))
            keep &= (ms[i] < 0) | (ms[j] < 0) | (ms[i] == ms[j])
            pairs = pairs[keep]
        if len(pairs) == 0:
            self._initiate(free, pp)
            return
        k = len(free)
        lab, _ = graph_components(
            np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1]), k
        )
        order = np.lexsort((np.arange(k), t, lab))  # by group, then time
        lab_o = lab[order]
        first = np.ones(k, bool)
        first[1:] = lab_o[1:] != lab_o[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(k), 0))
        rank = np.empty(k, np.int64)
        rank[order] = np.arange(k) - start
        leaders = np.flatnonzero(rank == 0)
        n_before = self.n
        self._initiate(free[leaders], pp)
        slot_of_group = np.empty(lab.max() + 1, np.int64)
        slot_of_group[lab[leaders]] = n_before + np.arange(len(leaders))
        alone = []
        for rk in range(1, int(rank.max()) + 1):
            fol = np.flatnonzero(rank == rk)
            ti = slot_of_group[lab[fol]]
            gp = free[fol]
            ok = self._sensor_free(ti, pp.sensor[gp])
            if ok.any():
                pr = self._pairs(ti[ok], gp[ok], pp)
                g_ok, _ = self._gate(ti[ok], gp[ok], pp, pr)
                idx = np.flatnonzero(ok)
                if g_ok.any():
                    a = np.flatnonzero(g_ok)
                    self._update(ti[ok][a], gp[ok][a], pp, pr, a)
                ok[idx[~g_ok]] = False
            alone.append(gp[~ok])
        rest = np.concatenate(alone) if alone else np.zeros(0, np.int64)
        if len(rest):
            self._initiate(np.sort(rest), pp)

    def _track_radii(self, idx: np.ndarray, t_ref: float, half_s: float):
        """Predicted horizontal positions of tracks ``idx`` at ``t_ref`` and the two parts of
        their search radius for plots within ``half_s`` of ``t_ref``: ``rs = G sigma`` (sigma:
        horizontal position standard deviation, sqrt of the trace, at the worse end of the
        interval) and ``rv = (|v| + G sigma_v) half_s``."""
        return track_radii(
            idx,
            t_ref,
            half_s,
            self._t,
            self._xc,
            self._Pc,
            float(self._qh[self._nm - 1]),
            self._g_base,
        )

    def _build_index(self, t_ref: float) -> None:
        """Grid index over all live tracks' predicted horizontal positions, built once per frame
        period and queried by every frame and round in it. Tracks with far larger radii than
        the rest (new, tentative) are kept out of the index and searched from a grid of the
        plots."""
        n = self.n
        idx = np.flatnonzero(self._status[:n] != DELETED) if self._n_dead else np.arange(n)
        pxy, rs, rv = self._track_radii(idx, t_ref, 0.5 * self.cfg.frame_s)
        r = rs + rv
        if len(idx) > 20:
            cap = 3.0 * float(np.median(r))
        else:
            cap = float(r.max()) if len(idx) else 0.0
        tight = r <= cap
        it = idx[tight]
        rs_t, rv_t = rs[tight], rv[tight]
        cap_s = float(rs_t.max()) if len(it) else 0.0
        cap_v = float(rv_t.max()) if len(it) else 0.0
        grid = None
        if len(it):
            gxy = pxy[tight]
            span = float(np.abs(gxy).max())
            cell = max(2.0 * (cap_s + cap_v), 1.0, span / 2.0**18)
            keys, order = grid_build(gxy, cell)
            grid = (keys, order, cell, gxy)
        self._ix = {
            "n0": n,
            "rs": rs_t,  # radii of the tracks in the grid ("tight")
            "rv": rv_t,
            "cap_s": cap_s,
            "cap_v": cap_v,
            "tight": it,
            "loose": idx[~tight],
            "grid": grid,
        }
        self._ix_dirty = False

    def _candidates(self, pp: PreparedPlots, g: np.ndarray):
        """Candidate (track, plot) pairs from grid radius queries, ``g`` the plot indices.

        A pair is a candidate when the horizontal distance between the track's predicted
        position and the plot is at most ``(s rs + sqrt(rs^2 + rp^2) + rv) f``: ``rp = G sigma_p``
        is the plot's part, ``f`` widens it to the Mode S gate for plots with an address, and
        ``s = 1`` once a track in the index may have been updated since it was built (an
        update moves a track by at most its gate ``rs`` and shrinks it), else 0. Since
        ``|d| <= sqrt(g lambda_max(P + R)) <= G sqrt(sigma_t^2 + sigma_p^2)`` for a pair in the
        gate, no gated pair is missed (tested against brute force)."""
        ix = self._ix
        qxy = pp.pos[g, :2]
        pc = pp.pos_cov[g]
        rp = self._g_base * np.sqrt(pc[:, 0, 0] + pc[:, 1, 1])  # plot part
        f = np.where(pp.mode_s[g] >= 0, self._g_modes / self._g_base, 1.0)
        stale = 1.0 if self._ix_dirty else 0.0
        ti_parts, pj_parts = [], []
        if ix["grid"] is not None:
            keys, order, cell, gxy = ix["grid"]
            cs = ix["cap_s"]
            rq = (stale * cs + np.sqrt(cs * cs + rp * rp) + ix["cap_v"]) * f
            it = ix["tight"]
            items, ow = grid_pairs(
                keys, order, cell, gxy, np.ascontiguousarray(qxy), rq, ix["rs"], ix["rv"], rp,
                f, stale, True,
            )  # fmt: skip
            ti_parts.append(it[items])
            pj_parts.append(ow)
        # Loose tracks and tracks started since the index was built: fresh radii, searched
        # from a grid over the plots.
        loose = np.concatenate([ix["loose"], np.arange(ix["n0"], self.n)])
        if len(loose):
            tp = pp.time_s[g]
            t_ref = 0.5 * (tp.min() + tp.max())
            pxy, rs, rv = self._track_radii(loose, t_ref, 0.5 * (tp.max() - tp.min()))
            rmax = float((rp * f).max())
            fmax = float(f.max())
            rq = (rs + rv) * fmax + rmax
            span = float(np.abs(qxy).max())
            cell = max(2.0 * rmax, 1.0, span / 2.0**18)
            keys, order = grid_build(np.ascontiguousarray(qxy), cell)
            items, k = grid_pairs(
                keys, order, cell, np.ascontiguousarray(qxy), pxy, rq, rs, rv, rp, f, 0.0, False
            )
            ti_parts.append(loose[k])
            pj_parts.append(items)
        if not ti_parts:
            z = np.zeros(0, np.int64)
            return z, z
        return np.concatenate(ti_parts), np.concatenate(pj_parts)

    def _pairs(self, ti: np.ndarray, gp: np.ndarray, pp: PreparedPlots) -> dict:
        """IMM mixing and mode-matched prediction of each candidate track to its plot's time,
        the innovation, Mahalanobis distance ``d_j^2`` per mode and the assignment cost (one
        compiled pass, :func:`.kernels.imm_ekf.pair_scores`): ``dmin = min_j d_j^2`` and
        ``cost = -2 ln sum_j c_j |S_j|^(-1/2) exp(-d_j^2 / 2)``."""
        c = self.cfg
        dmin, cost = pair_scores(
            ti, gp, self._nm, self._t, self._xm, self._Pm, self._mu,
            c.cv_mean_sojourn_s, c.manoeuvre_mean_sojourn_s, self._qh, self._qv,
            pp.time_s, pp.kind, pp.has_alt, pp.z, pp.R, pp.site, pp.rot,
            self.geo.re, self.geo.rc,
        )  # fmt: skip
        return {"dmin": dmin, "cost": cost}

    def _gate(self, ti: np.ndarray, gp: np.ndarray, pp: PreparedPlots, pr: dict):
        """Chi-square gate (passed if any mode's Mahalanobis distance is inside it), identity
        constraints, and the assignment cost ``-2 ln sum_j c_j |S_j|^(-1/2) exp(-d_j^2 / 2)``
        minus bonuses (Blackman & Popoli 1999, sec. 6.2: generalised distance)."""
        dmin = pr["dmin"]
        gate = np.where(pp.dim[gp] == 2, self._chi2[2], self._chi2[3])
        # Cost: -2 ln of the (IMM mixture) measurement likelihood, i.e. Blackman's generalised
        # distance d^2 + ln|S|, so a diffuse (new) track does not win a plot from a precise one.
        cost = pr["cost"]
        if pp.mode_s[gp].max() < 0 and pp.mode_3a[gp].max() < 0:  # no identity in this frame
            return dmin <= gate, cost
        # Identity evidence: a mismatch forbids the pair, a match earns a bonus.
        tms, pms = self._modes[ti], pp.mode_s[gp]
        both_s = (tms >= 0) & (pms >= 0)
        same_s = both_s & (tms == pms)
        t3, p3 = self._m3a[ti], pp.mode_3a[gp]
        both_3 = (t3 >= 0) & (p3 >= 0)
        same_3 = both_3 & (t3 == p3)
        gate = np.where(same_s, np.maximum(gate, self.cfg.mode_s_gate_chi2), gate)
        ok = dmin <= gate
        ok &= ~(both_s & ~same_s)
        ok &= ~(both_3 & ~same_3 & ~same_s)  # a squawk change is allowed on a Mode S match
        cost = cost - self.cfg.mode_s_bonus * same_s - self.cfg.mode_3a_bonus * same_3
        return ok, cost

    @staticmethod
    def _assign(ti: np.ndarray, pj: np.ndarray, cost: np.ndarray, m: int) -> np.ndarray:
        """Global nearest neighbour per connected component of the gate graph; returns the
        indices of the chosen pairs. Pairs whose track and plot have no other candidate are
        taken directly; the other components go to ``linear_sum_assignment``."""
        if len(ti) == 0:
            return np.zeros(0, np.int64)
        direct, rest = assign_direct(ti, pj, cost, int(ti.max()) + 1, m)
        chosen = [np.flatnonzero(direct)]
        rest = np.flatnonzero(rest)
        if len(rest):
            rt, rp, rc = ti[rest], pj[rest], cost[rest]
            ut, ct = np.unique(rt, return_inverse=True)
            up, cp = np.unique(rp, return_inverse=True)
            nt, npl = len(ut), len(up)
            if nt * npl <= 40_000:
                # Components are independent and cross-component pairs are forbidden, so one
                # assignment over all of them equals one per component.
                C = np.full((nt, npl), _BIG)
                C[ct, cp] = rc
                pair = np.full((nt, npl), -1, np.int64)
                pair[ct, cp] = rest
                r, c = linear_sum_assignment(C)
                good = C[r, c] < _BIG / 2
                chosen.append(pair[r[good], c[good]])
                return np.sort(np.concatenate(chosen))
            lab, ncomp = graph_components(ct, cp + nt, nt + npl)
            lt, size_t = _local_index(lab[:nt], ncomp)  # row of each track in its component
            lp, size_p = _local_index(lab[nt:], ncomp)
            plab = lab[ct]
            order = np.argsort(plab, kind="stable")
            bounds = np.flatnonzero(np.diff(plab[order])) + 1
            for grp in np.split(order, bounds):
                comp = plab[grp[0]]
                ri, ci = lt[ct[grp]], lp[cp[grp]]
                C = np.full((size_t[comp], size_p[comp]), _BIG)
                C[ri, ci] = rc[grp]
                pair = np.full(C.shape, -1, np.int64)
                pair[ri, ci] = rest[grp]
                r, c = linear_sum_assignment(C)
                good = C[r, c] < _BIG / 2
                chosen.append(pair[r[good], c[good]])
        return np.sort(np.concatenate(chosen))

    def _jpda_clusters(
        self,
        ti: np.ndarray,
        gp: np.ndarray,
        pj: np.ndarray,
        raw_cost: np.ndarray,
        cost: np.ndarray,
        pp: PreparedPlots,
    ) -> tuple[np.ndarray, np.ndarray]:
        """JPDA for the ambiguous clusters of gated pairs (a track with several plots, or a plot
        in several tracks' gates) whose tracks are all confirmed and whose plots come from one
        sensor and share a measurement model: exact marginals (:func:`.jpda.jpda_marginals`)
        and an IMM-PDA update (:func:`.jpda.pda_update`) of every track whose probability of
        having a plot is at least one half. Returns the indices of the pairs handled (their
        plots are used up; the other pairs are left to global nearest neighbour) and the plots
        (``gp`` values) with a total association probability of at least one half."""
        none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(ti) < 2:
            return none
        deg_t = np.bincount(ti)
        deg_p = np.bincount(pj)
        amb = np.flatnonzero((deg_t[ti] > 1) | (deg_p[pj] > 1))
        if len(amb) == 0:
            return none
        at, ag, ap = ti[amb], gp[amb], pj[amb]
        n_plots = int(pj.max()) + 1
        comp, ncomp = jp.cluster_pairs(at, ap, self.n, n_plots)
        key = (pp.sensor[ag] * 4 + pp.kind[ag]) * 2 + pp.has_alt[ag]
        kmin = np.full(ncomp, np.iinfo(np.int64).max)
        kmax = np.full(ncomp, -1)
        np.minimum.at(kmin, comp, key)
        np.maximum.at(kmax, comp, key)
        tentative = np.bincount(comp, weights=self._status[at] != CONFIRMED, minlength=ncomp)
        # one time for the cluster: its plots' innovations are taken at one predicted state
        tp = pp.time_s[ag]
        tmin = np.full(ncomp, np.inf)
        tmax = np.full(ncomp, -np.inf)
        np.minimum.at(tmin, comp, tp)
        np.maximum.at(tmax, comp, tp)
        c = self.cfg
        lnl_h = jp.pair_horizontal_loglik(
            at, ag, self._nm, self._t, self._xc, self._Pc, self._mu, self._qh, pp.time_s,
            pp.pos, pp.pos_cov,
        )  # fmt: skip
        bonus = raw_cost[amb] - cost[amb]  # identity evidence, as for GNN
        log_lr = np.log(c.detection_probability / self._clutter_per_m2) + lnl_h + 0.5 * bonus
        finite = np.bincount(comp, weights=~np.isfinite(log_lr), minlength=ncomp) == 0
        # bound on the joint events: prod over tracks of (1 + gated plots); every pair of a
        # track with several plots is ambiguous, so deg_t counts the track's plots here
        d = deg_t[at]
        log_events = np.bincount(comp, weights=np.log1p(d) / d, minlength=ncomp)
        small = log_events <= np.log(self.cfg.jpda_max_hypotheses)
        ok_comp = (kmin == kmax) & (tentative == 0) & (tmax - tmin <= _JPDA_MAX_SPREAD_S) & finite
        self._stats["jpda_clusters_too_large"] += int((ok_comp & ~small).sum())
        ok_comp &= small
        use = np.flatnonzero(ok_comp[comp])
        if len(use) == 0:
            return none
        self._stats["jpda_clusters"] += int(ok_comp.sum())
        at, ag, ap, comp = at[use], ag[use], ap[use], comp[use]
        # likelihood ratios scaled per cluster (the marginals do not change)
        log_lr = log_lr[use]
        cmax = np.full(ncomp, -np.inf)
        np.maximum.at(cmax, comp, log_lr)
        scale = np.maximum(cmax[comp], 0.0)
        lr = np.exp(log_lr - scale)
        miss = (1.0 - c.detection_probability * c.gate_probability) * np.exp(-scale)
        o = np.lexsort((ap, at, comp))
        at, ag, ap, comp, lr, miss = at[o], ag[o], ap[o], comp[o], lr[o], miss[o]
        beta = np.empty(len(o))
        # per track of the used clusters: its pairs are contiguous
        tfirst = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
        tptr = np.r_[tfirst, len(o)]
        tcomp = comp[tfirst]
        beta0 = np.empty(len(tfirst))
        cfirst = np.flatnonzero(np.r_[True, tcomp[1:] != tcomp[:-1]])
        cptr = np.r_[cfirst, len(tfirst)]
        for a, b in zip(cptr[:-1].tolist(), cptr[1:].tolist(), strict=True):
            p0, p1 = tptr[a], tptr[b]
            bt, b0 = jp.jpda_marginals(
                tptr[a : b + 1] - p0, ap[p0:p1], lr[p0:p1], miss[tfirst[a:b]], n_plots
            )
            beta[p0:p1] = bt
            beta0[a:b] = b0
        hit = np.flatnonzero(beta0 < 0.5)
        if len(hit):
            # the hit tracks' pairs, contiguous per track, and each track's likeliest plot
            sizes = tptr[hit + 1] - tptr[hit]
            pidx = np.flatnonzero(np.repeat(beta0 < 0.5, np.diff(tptr)))
            hptr = np.r_[0, np.cumsum(sizes)]
            owner = np.repeat(np.arange(len(hit)), sizes)
            best = np.lexsort((-beta[pidx], owner))[hptr[:-1]]  # first of each track's block
            lead = ag[pidx[best]]
            trk = at[tptr[hit]]
            gap = pp.time_s[lead] - self._t[trk]
            lnl = jp.pda_update(
                trk, hptr, ag[pidx], beta[pidx], beta0[hit], lead, self._nm, self._t,
                self._xm, self._Pm, self._mu, self._xc, self._Pc, c.cv_mean_sojourn_s,
                c.manoeuvre_mean_sojourn_s, self._qh, self._qv, pp.time_s, pp.kind,
                pp.has_alt, pp.z, pp.R, pp.site, pp.rot, self.geo.re, self.geo.rc, pp.pos,
                pp.pos_cov,
            )  # fmt: skip
            # identity (Mode S, 3/A, callsign) only from a plot that is almost surely its own
            sure = beta[pidx[best]] >= _JPDA_IDENTITY_BETA
            self._after_update(trk, lead, pp, lnl, gap, identity=sure)
        # plots that more likely than not belong to some track count as used; the others
        # (most likely clutter next to the targets) as unused in a gate
        p_used = np.bincount(ap, weights=beta, minlength=n_plots)
        used = np.unique(ag[p_used[ap] >= 0.5])
        return amb[use][o], used

    def _update(
        self, ti: np.ndarray, gp: np.ndarray, pp: PreparedPlots, pr: dict, a: np.ndarray
    ) -> None:
        """Mode-matched EKF updates, mode probabilities and combination (IMM) of tracks ``ti``
        with plots ``gp`` (distinct tracks), in one compiled pass over the pairs
        (:func:`.kernels.imm_ekf.pair_update`)."""
        c = self.cfg
        gap = pp.time_s[gp] - self._t[ti]
        lnl = pair_update(
            ti, gp, self._nm, self._t, self._xm, self._Pm, self._mu, self._xc, self._Pc,
            c.cv_mean_sojourn_s, c.manoeuvre_mean_sojourn_s, self._qh, self._qv,
            pp.time_s, pp.kind, pp.has_alt, pp.z, pp.R, pp.site, pp.rot,
            self.geo.re, self.geo.rc, pp.pos, pp.pos_cov,
        )  # fmt: skip
        self._after_update(ti, gp, pp, lnl, gap)

    def _after_update(
        self,
        ti: np.ndarray,
        gp: np.ndarray,
        pp: PreparedPlots,
        lnl: np.ndarray,
        gap: np.ndarray,
        identity: np.ndarray | None = None,
    ) -> None:
        """Bookkeeping of tracks ``ti`` updated with plots ``gp`` (``gap``: time since their
        previous plot, ``lnl``: the plot's horizontal log-likelihood): track score, hit count,
        confirmation, identity and sources."""
        c = self.cfg
        if self._score_on:
            # missed revisits since the last plot, then the hit: ln(P_D N(nu_h; 0, S_h) / lambda)
            missed = np.maximum(self._n_revisits(gap) - 1, 0)
            self._score[ti] += missed * self._score_miss + self._score_hit + lnl
        self._ix_dirty = True
        self._nupd[ti] += 1
        conf = (self._status[ti] == TENTATIVE) & (self._nupd[ti] >= c.confirm_hits)
        if self._score_on:
            conf &= self._score[ti] >= c.score_confirm
        if conf.any():
            self._status[ti[conf]] = CONFIRMED
            self._stats["tracks_confirmed"] += int(conf.sum())
        self._set_identity(ti, gp, pp, identity)

    def _set_identity(
        self, ti: np.ndarray, gp: np.ndarray, pp: PreparedPlots, identity: np.ndarray | None = None
    ) -> None:
        """Record the plots' sensors on tracks ``ti`` (with the time since the sensor's previous
        plot on the track, for its revisit and detection probability) and take their Mode S,
        Mode 3/A and callsign (only where ``identity`` is true, when given)."""
        sens = pp.sensor[gp]
        mark_sensors(ti, sens, self._src, self._bin_sens, self._text_row)
        if self.cfg.coverage_management:
            self._coverage.observe_gaps(
                sens, mark_seen(ti, sens, pp.time_s[gp], self._last_seen)
            )
        if identity is not None:
            ti, gp = ti[identity], gp[identity]
        ms = pp.mode_s[gp]
        has = ms >= 0
        if has.any():
            tih, msh = ti[has], ms[has]
            new = self._modes[tih] != msh
            if new.any():  # checked for duplicates at the next maintenance
                self._new_addresses.append(msh[new])
            self._modes[tih] = msh
            self._ms_miss[tih] = 0
        m3 = pp.mode_3a[gp]
        has = m3 >= 0
        if has.any():
            self._m3a[ti[has]] = m3[has]
        cs = pp.callsign[gp]
        has = cs != ""
        if has.any():
            self._cs[ti[has]] = cs[has]

    def _initiate(self, gp: np.ndarray, pp: PreparedPlots) -> None:
        """Single-point initiation: position from the plot, zero velocity with a large
        covariance (BLK sec. 5.2.4 one-point initialisation with a velocity prior)."""
        c = self.cfg
        k = len(gp)
        self._grow(self.n + k)
        sl = slice(self.n, self.n + k)
        x = np.zeros((k, 6))
        x[:, :3] = pp.pos[gp]
        P = np.zeros((k, 6, 6))
        pc = pp.pos_cov[gp]
        P[:, :3, :3] = 0.5 * (pc + np.swapaxes(pc, 1, 2))
        P[:, 3, 3] = P[:, 4, 4] = c.initial_velocity_std_mps**2
        P[:, 5, 5] = c.initial_vertical_velocity_std_mps**2
        self._xm[sl] = x[:, None, :]
        self._Pm[sl] = P[:, None, :, :]
        if self._nm == 2:
            self._mu[sl] = [1.0 - c.initial_manoeuvre_prob, c.initial_manoeuvre_prob]
        else:
            self._mu[sl] = [1.0, 0.0]
        self._xc[sl] = x
        self._Pc[sl] = P
        self._t[sl] = pp.time_s[gp]
        self._id[sl] = np.arange(self._next_id, self._next_id + k)
        self._next_id += k
        conf0 = c.confirm_hits <= 1 and (not self._score_on or c.score_confirm <= 0.0)
        self._status[sl] = CONFIRMED if conf0 else TENTATIVE
        self._nupd[sl] = 1
        self._score[sl] = 0.0  # first plot: target and false alarm equally likely
        self._modes[sl] = -1
        self._m3a[sl] = -1
        self._cs[sl] = ""
        self._src[sl] = 0
        self._text_row[sl] = -1
        self._bin_sens[sl] = 0
        self._ms_miss[sl] = 0
        self._last_seen[sl] = np.nan
        self._last_gated[sl] = pp.time_s[gp]
        ti = np.arange(self.n, self.n + k)
        self.n += k
        self._stats["tracks_initiated"] += k
        if conf0:
            self._stats["tracks_confirmed"] += k
        self._set_identity(ti, gp, pp)

    # ---- out-of-sequence plots
    def _apply_late(self, plots: np.ndarray, prep: np.ndarray) -> None:
        """Plots older than what has been processed: gated against the live tracks (each track
        predicted, or retrodicted, to the plot's time, as for any plot), assigned by global
        nearest neighbour in rounds of one plot per track, and applied: to a track whose
        state is older than the plot by the ordinary IMM-EKF update, to the others by the
        out-of-sequence update (:func:`.kernels.imm_ekf.oosm_update`). Plots in no gate are dropped
        (``late_dropped``); a late plot never starts a track."""
        order = np.lexsort((prep["plot_id"], prep["time_s"]))
        prep = prep[order]
        if self.cfg.coverage_management:
            self._observe_sites(plots[order], prep)
        pp = PreparedPlots.from_array(prep)
        m = len(prep)
        applied = np.zeros(m, bool)
        active = np.arange(m)
        for _ in range(8):
            n = self.n
            live = np.flatnonzero(self._status[:n] != DELETED)
            if len(live) == 0 or len(active) == 0:
                break
            tp = pp.time_s[active]
            t_mid = 0.5 * (float(tp.min()) + float(tp.max()))
            half = 0.5 * (float(tp.max()) - float(tp.min()))
            # search radii from each track's covariance over its lag to the plots (either way)
            pxy, rs, rv = self._track_radii(live, t_mid, half)
            pc = pp.pos_cov[active]
            rp = self._g_modes * np.sqrt(pc[:, 0, 0] + pc[:, 1, 1])
            rmax = float((rs + rv).max())
            near = cKDTree(pxy).query_ball_point(pp.pos[active, :2], rmax + rp)
            cnt = np.fromiter((len(x) for x in near), np.int64, len(near))
            if cnt.sum() == 0:
                break
            pj = np.repeat(np.arange(len(active)), cnt)
            ti = live[np.fromiter((k for x in near for k in x), np.int64, int(cnt.sum()))]
            gp = active[pj]
            pr = self._pairs(ti, gp, pp)
            ok, cost = self._gate(ti, gp, pp, pr)
            sel = np.flatnonzero(ok)
            if len(sel) == 0:
                break
            a = sel[self._assign(ti[sel], pj[sel], cost[sel], len(active))]
            if len(a) == 0:
                break
            t_i, g_i = ti[a], gp[a]
            fwd = pp.time_s[g_i] >= self._t[t_i]
            if fwd.any():
                self._update(t_i[fwd], g_i[fwd], pp, pr, a[fwd])
            back = ~fwd
            if back.any():
                tb, gb = t_i[back], g_i[back]
                oosm_update(
                    tb, gb, self._nm, self._t, self._xm, self._Pm, self._mu, self._xc,
                    self._Pc, self._qh, self._qv, pp.time_s, pp.kind, pp.has_alt, pp.z, pp.R,
                    pp.site, pp.rot, self.geo.re, self.geo.rc,
                )  # fmt: skip
                self._nupd[tb] += 1
                self._ix_dirty = True
                self._set_identity(tb, gb, pp)
            applied[g_i] = True
            again = np.zeros(len(active), bool)
            again[pj[sel]] = True
            again[pj[a]] = False
            active = active[again]
        n_app = int(applied.sum())
        self._stats["late_applied"] += n_app
        self._stats["late_dropped"] += m - n_app
        self._stats["plots_used"] += n_app

    # ---- coverage-aware track management
    def _observe_sites(self, plots: np.ndarray, prep: np.ndarray) -> None:
        """Each sensor's latest site (from its plots' sensor position; converted only when it
        changed) and largest range."""
        sens = prep["sensor"]
        if sens[0] == sens[-1] and (sens == sens[0]).all():  # one sensor (e.g. one scan)
            u, last = sens[:1], np.array([len(sens) - 1])
        else:
            u, first = np.unique(sens[::-1], return_index=True)
            last = len(sens) - 1 - first
        raw = np.column_stack(
            [
                plots["sensor_lat_deg"][last],
                plots["sensor_lon_deg"][last],
                plots["sensor_alt_m"][last],
            ]
        )
        scanning = plots["kind"][last] != rec.MeasurementKind.ADSB
        known = np.isfinite(raw).all(axis=1)
        if not known.all():  # a sensor without a declared position gets no coverage
            u, raw, scanning = u[known], raw[known], scanning[known]
            keep = np.isin(sens, u)
            sens, prep = sens[keep], prep[keep]
        if len(u) == 0:
            return
        cov = self._coverage
        cov.ensure(len(self._sensor_names))
        cov.scanning[u] = scanning
        if len(self._site_raw) < cov.n:
            grow = np.full((cov.n - len(self._site_raw), 3), np.nan)
            self._site_raw = np.concatenate([self._site_raw, grow])
        moved = ~(self._site_raw[u] == raw).all(axis=1)
        if moved.any():
            um, rm = u[moved], raw[moved]
            ecef = np.atleast_2d(geodetic_to_ecef(rm[:, 0], rm[:, 1], rm[:, 2]))
            cov.observe_sites(um, (ecef - self.geo.origin_ecef) @ self.geo.E.T, rm[:, 2])
            self._site_raw[um] = rm
        cov.observe_plots(sens, prep["pos"])

    def _coverage_due(self, t_now: float, idx: np.ndarray, count: bool = True) -> np.ndarray:
        """Which of the confirmed tracks ``idx`` the coverage rules end at ``t_now``
        (docs/tracking.md, 'Coverage-aware track management'; one compiled pass,
        :func:`.kernels.management.coverage_due`): the sensors that have updated a track and whose
        coverage holds its predicted position should see it; each has missed
        ``floor((t - t_ref) / T_s - 0.2)`` looks since the latest of the track's last plot, its
        own last plot on the track and the last plot inside the track's gate; the track ends
        when every such sensor has missed a look and ``prod (1 - P_D)^missed`` is below
        ``coverage_miss_probability``, or, if no sensor should see it, once
        ``coverage_revisits`` of its sensors' longest revisit have passed. Tracks with a
        sensor not yet modelled are left to the time rules. ``count``: add the ended tracks
        to the stats (maintenance), or not (a snapshot leaving them out)."""
        c = self.cfg
        cov = self._coverage
        known = np.isfinite(cov.revisit_s) & (cov.max_range_m > 0)
        pd = np.clip(np.nan_to_num(cov.pd, nan=0.0), 0.0, c.coverage_max_detection_probability)
        verdict = coverage_due(
            idx, float(t_now), self._t, self._last_gated, self._xc, self._src, self._last_seen,
            known, cov.scanning, np.nan_to_num(cov.revisit_s, nan=np.inf), np.log1p(-pd), cov.site,
            cov.site_alt_m, cov.max_range_m, cov.range_margin, cov.re_m, cov.origin_alt_m,
            2.0 * K_REFRACTION * cov.re_m, c.coverage_revisits,
            float(np.log(c.coverage_miss_probability)), 1.2 * cov.min_revisit_s,
        )  # fmt: skip
        if count:
            self._stats["tracks_ended_missed"] += int((verdict == 1).sum())
            self._stats["tracks_ended_outside_coverage"] += int((verdict == 2).sum())
        return verdict > 0

    def _live_with_address(self) -> np.ndarray:
        n = self.n
        return np.flatnonzero((self._status[:n] != DELETED) & (self._modes[:n] >= 0))

    def _own_address_plots(self, left: np.ndarray, pp: PreparedPlots) -> tuple[np.ndarray, int]:
        """Unassigned plots ``left`` that carry the Mode S address of a live track: each one
        counts against that track (``_ms_miss``, consecutive plots of its own address outside
        its gate); below ``mode_s_reseed_after`` the plot is dropped
        (``plots_own_address_outside_gate``), at it the track is re-seeded from the plot
        (:meth:`_reseed`). Returns which of ``left`` were such plots and how many were
        dropped. None of them starts a track."""
        own = np.zeros(len(left), bool)
        if len(left) == 0:
            return own, 0
        ms = pp.mode_s[left]
        if ms.max() < 0:
            return own, 0
        live = self._live_with_address()
        if len(live) == 0:
            return own, 0
        order = np.lexsort((self._id[live], self._modes[live]))  # by address, oldest first
        keys, slots = self._modes[live][order], live[order]
        pos = np.minimum(np.searchsorted(keys, ms), len(keys) - 1)
        own = (ms >= 0) & (keys[pos] == ms)
        dropped = 0
        for g, slot in zip(left[own].tolist(), slots[pos[own]].tolist(), strict=True):
            self._ms_miss[slot] += 1
            if self._ms_miss[slot] >= self.cfg.mode_s_reseed_after:
                self._reseed(slot, g, pp)
            else:
                dropped += 1
        self._stats["plots_own_address_outside_gate"] += dropped
        return own, dropped

    def _reseed(self, slot: int, g: int, pp: PreparedPlots) -> None:
        """Start track ``slot`` again from plot ``g`` (its own Mode S address, persistently
        outside its gate: a manoeuvre it could not follow, or a jump in the reported
        position): position and covariance from the plot, velocity kept with the initiation
        uncertainty, mode probabilities as for a new track. The track number, status, score
        and identity stay."""
        c = self.cfg
        x = self._xc[slot].copy()
        x[:3] = pp.pos[g]
        P = np.zeros((6, 6))
        pc = pp.pos_cov[g]
        P[:3, :3] = 0.5 * (pc + pc.T)
        P[3, 3] = P[4, 4] = c.initial_velocity_std_mps**2
        P[5, 5] = c.initial_vertical_velocity_std_mps**2
        self._xm[slot] = x
        self._Pm[slot] = P
        self._xc[slot] = x
        self._Pc[slot] = P
        if self._nm == 2:
            self._mu[slot] = [1.0 - c.initial_manoeuvre_prob, c.initial_manoeuvre_prob]
        self._t[slot] = pp.time_s[g]
        self._nupd[slot] += 1
        self._stats["tracks_reseeded"] += 1
        self._ix = None  # it moved further than its gate: the spatial index is rebuilt
        logger.debug("track %d re-seeded (Mode S %06X)", self._id[slot], pp.mode_s[g])
        self._set_identity(np.array([slot]), np.array([g]), pp)

    def _merge_same_address(self, t_now: float) -> None:
        """Live tracks that carry the same Mode S address as another (checked for the addresses
        set since the last maintenance) become one under the oldest track number."""
        addrs = np.unique(np.concatenate(self._new_addresses))
        live = self._live_with_address()
        live = live[np.isin(self._modes[live], addrs)]
        if len(live) < 2:
            return
        order = np.lexsort((self._id[live], self._modes[live]))
        live = live[order]
        a = self._modes[live]
        first = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])
        sizes = np.diff(np.r_[first, len(live)])
        for f, k in zip(first[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
            for other in live[f + 1 : f + k].tolist():
                self._merge(int(live[f]), other, t_now, "mode_s")

    def _predicted(self, idx: np.ndarray, t_now: float) -> tuple[np.ndarray, np.ndarray]:
        """Combined states and covariances of tracks ``idx`` predicted to ``t_now`` (process
        noise weighted by the mode probabilities, as for snapshots)."""
        mu = self._mu[idx]
        return filters.predict(
            self._xc[idx], self._Pc[idx], t_now - self._t[idx], mu @ self._qh, mu @ self._qv
        )

    def _coalescence(self, t_now: float) -> None:
        """Track coalescence: pairs of confirmed tracks within ``coalescence_max_distance_m`` whose
        identities do not conflict (different Mode S addresses, or different Mode 3/A codes
        that are not conspicuity codes) are tested with the track-to-track association test
        (Bar-Shalom, "On the track-to-track correlation problem", IEEE Trans. AC 26(2), 1981;
        BLK sec. 11.7 style): ``d^2 = (x_1 - x_2)' (P_1 + P_2)^-1 (x_1 - x_2)`` on the 6-D states
        predicted to ``t_now``, against the chi2_6 quantile of ``coalescence_probability``.
        The cross-covariance of the two estimates is neglected: two tracks of one aircraft
        never share a plot, so their errors are correlated only through the common process
        noise, which makes ``P_1 + P_2`` slightly too large and the test slightly permissive;
        the consecutive passes (``coalescence_checks``) are what keeps two real aircraft
        apart. A pair that passes that many tests in a row is merged into the older track."""
        c = self.cfg
        n = self.n
        live = np.flatnonzero(self._status[:n] == CONFIRMED)
        found: dict[tuple[int, int], int] = {}
        if len(live) >= 2:
            dt = (t_now - self._t[live])[:, None]
            pxy = self._xc[live, :2] + dt * self._xc[live, 3:5]
            pairs = cKDTree(pxy).query_pairs(c.coalescence_max_distance_m, output_type="ndarray")
            if len(pairs):
                i, j = pairs[:, 0], pairs[:, 1]
                mi, mj = self._modes[live[i]], self._modes[live[j]]
                ok = ~((mi >= 0) & (mj >= 0) & (mi != mj))
                ai, aj = self._m3a[live[i]], self._m3a[live[j]]
                weak_i = (ai < 0) | _CONSPICUOUS[np.clip(ai, 0, 0o7777)]
                weak_j = (aj < 0) | _CONSPICUOUS[np.clip(aj, 0, 0o7777)]
                ok &= weak_i | weak_j | (ai == aj) | ((mi >= 0) & (mi == mj))
                i, j = i[ok], j[ok]
                self._stats["coalescence_checks"] += len(i)
                if len(i):
                    u, inv = np.unique(np.concatenate([i, j]), return_inverse=True)
                    x, P = self._predicted(live[u], t_now)
                    ki, kj = inv[: len(i)], inv[len(i) :]
                    d = x[ki] - x[kj]
                    d2 = np.einsum(
                        "ki,ki->k", d, np.linalg.solve(P[ki] + P[kj], d[..., None])[..., 0]
                    )
                    hit = d2 <= self._chi2_coal
                    ia, ib = self._id[live[i[hit]]], self._id[live[j[hit]]]
                    for a, b in zip(
                        np.minimum(ia, ib).tolist(), np.maximum(ia, ib).tolist(), strict=True
                    ):
                        found[(a, b)] = self._coal.get((a, b), 0) + 1
        self._coal = found
        due = [k for k, v in found.items() if v >= c.coalescence_checks]
        if not due:
            return
        slot_of = dict(zip(self._id[live].tolist(), live.tolist(), strict=True))
        for a, b in sorted(due):
            sa, sb = slot_of[a], slot_of[b]
            if self._status[sa] != DELETED and self._status[sb] != DELETED:
                self._merge(sa, sb, t_now, "coalescence")
                self._coal.pop((a, b), None)

    def _merge(self, keep: int, other: int, t_now: float, reason: str) -> None:
        """Make tracks ``keep`` (the older number) and ``other`` one track under ``keep``'s
        number: the state of whichever is the more precise at ``t_now`` (smaller predicted
        horizontal position variance), the sum of their plots, confirmed if either was, the
        better score, identities and sensors of both; ``other`` ends (``tracks_merged``,
        :attr:`merges`)."""
        if self._id[other] < self._id[keep]:
            keep, other = other, keep
        both = np.array([keep, other])
        _, rs, _ = self._track_radii(both, t_now, 0.0)
        if rs[1] < rs[0]:
            for f in ("_t", "_xm", "_Pm", "_mu", "_xc", "_Pc"):
                arr = getattr(self, f)
                arr[keep] = arr[other]
        self._nupd[keep] += self._nupd[other]
        if self._status[other] == CONFIRMED:
            self._status[keep] = CONFIRMED
        self._score[keep] = max(self._score[keep], self._score[other])
        if self._modes[keep] < 0:
            self._modes[keep] = self._modes[other]
        if self._m3a[keep] < 0:
            self._m3a[keep] = self._m3a[other]
        if self._cs[keep] == "":
            self._cs[keep] = self._cs[other]
        self._src[keep] |= self._src[other]
        self._bin_sens[keep] |= self._bin_sens[other]
        self._text_row[keep] = -1
        self._ms_miss[keep] = 0
        self._last_seen[keep] = np.fmax(self._last_seen[keep], self._last_seen[other])
        self._status[other] = DELETED
        self._n_dead += 1
        self._stats["tracks_merged"] += 1
        self._ix = None
        self._merges.append((t_now, int(self._id[keep]), int(self._id[other]), reason))
        logger.info(
            "track %d merged into track %d at %.1f (%s)",
            self._id[other],
            self._id[keep],
            t_now,
            reason,
        )

    def _maintain(self, t_now: float) -> None:
        """Deletion rules (docs/tracking.md, 'Track management')."""
        n = self.n
        if n == 0:
            return
        c = self.cfg
        sc = self._score_on
        dead = deletion_due(
            float(t_now), n, self._t, self._status, self._Pc, self._mu, self._qh, TENTATIVE,
            DELETED, c.tentative_max_coast_s, c.delete_after_s, c.max_position_std_m**2, sc,
            self._score, c.score_revisit_s, self._score_miss if sc else 0.0,
            c.score_delete if sc else 0.0, self._score_del_conf if sc else 0.0,
        )  # fmt: skip
        if c.coverage_management and t_now >= self._next_coverage_s:
            if t_now >= self._next_learn_s:
                self._coverage.learn()
                self._next_learn_s = float(t_now) + _COVERAGE_LEARN_S
            if self._coverage.ready:
                idx = np.flatnonzero((self._status[:n] == CONFIRMED) & ~dead)
                dead[idx] |= self._coverage_due(float(t_now), idx)
            self._next_coverage_s = float(t_now) + _COVERAGE_CHECK_S
        if dead.any():
            nd = int(dead.sum())
            self._status[:n][dead] = DELETED
            self._stats["tracks_deleted"] += nd
            self._n_dead += nd
            self._ix = None  # the spatial index must drop them
        if self._new_addresses:
            if c.merge_same_mode_s:
                self._merge_same_address(float(t_now))
            self._new_addresses.clear()
        if c.coalescence_check_s is not None and t_now >= self._next_coal_s:
            self._coalescence(float(t_now))
            self._next_coal_s = float(t_now) + c.coalescence_check_s
        if self._n_dead:
            # Deleted tracks are marked and left in place; the table is compacted (slots move,
            # ids stay) once they are more than an eighth of it.
            if self._n_dead > max(64, n // 8):
                keep = np.flatnonzero(self._status[:n] != DELETED)
                for f in self._FIELDS:
                    arr = getattr(self, f)
                    arr[: len(keep)] = arr[keep]
                self.n = len(keep)
                self._n_dead = 0


class PlotCorrector(Protocol):
    """What :func:`track_with_stats` needs of a plot pre-processor such as
    :class:`siap.tracking.registration.SensorRegistration`."""

    max_time_correction_s: float

    def observe(self, plots: np.ndarray) -> None: ...
    def correct(self, plots: np.ndarray) -> np.ndarray: ...


def track_with_stats(
    plots: np.ndarray,
    cfg: TrackerConfig | None,
    output_times_s: Sequence[float] | np.ndarray,
    *,
    registration: PlotCorrector | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Run a tracker over a whole recording: plots are taken in time order, one slice per
    output time, and the confirmed tracks at each output time are returned, concatenated
    (TRACK_DTYPE), with the tracker's counters.

    ``registration`` (optional) observes each slice and corrects it before the tracker sees it;
    the tracker is then advanced only to the output time less the largest clock correction, so
    that corrected plots of the next slice are not late. Without it the tracker is advanced to
    each output time (the input is time sorted, so nothing waits for the reorder window).
    """
    trk = Tracker(cfg if cfg is not None else TrackerConfig())
    plots = np.asarray(plots)
    if plots.dtype != PLOT_DTYPE:
        raise InputError(f"plots: dtype: expected records.PLOT_DTYPE, got {plots.dtype}")
    times_in = plots["time_s"]
    order = np.argsort(np.where(np.isfinite(times_in), times_in, np.inf), kind="stable")
    plots = plots[order]
    ptimes = plots["time_s"]
    outs = np.sort(np.asarray(output_times_s, dtype=float).reshape(-1))

    def feed(chunk: np.ndarray) -> None:
        if registration is not None:
            registration.observe(chunk)
            chunk = registration.correct(chunk)
        trk.process(chunk)

    snaps = []
    start = 0
    for i, t_out in enumerate(outs.tolist()):
        stop = int(np.searchsorted(ptimes, t_out, side="right"))
        if stop > start:
            feed(plots[start:stop])
            start = stop
        hold_s = registration.max_time_correction_s if registration is not None else 0.0
        trk.advance(t_out - hold_s)
        snaps.append(trk.snapshot(t_out))
        if progress is not None:
            progress((i + 1) / len(outs))
    # Plots that are NaN-timed or after the last output time are still validated and counted.
    if start < len(plots):
        feed(plots[start:])
    trk.flush()
    tracks = np.concatenate(snaps) if snaps else np.zeros(0, TRACK_DTYPE)
    return tracks, dict(trk.stats)


def track(
    plots: np.ndarray,
    cfg: TrackerConfig | None,
    output_times_s: Sequence[float] | np.ndarray,
    *,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Run a tracker over a whole recording: plots are taken in time order and the confirmed
    tracks at each output time are returned, concatenated (TRACK_DTYPE)."""
    return track_with_stats(plots, cfg, output_times_s, progress=progress)[0]
