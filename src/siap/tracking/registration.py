"""Online sensor registration: estimate and remove each radar's systematic range, azimuth and
clock biases while tracking.

Model (per radar ``s``; Fischer, Muehe & Cameron, "Registration errors in a netted air
surveillance system", MIT Lincoln Laboratory TN 1980-40, 1980; Bar-Shalom, Willett & Tian,
*Tracking and Data Fusion*, YBS 2011, ch. 9 "Sensor registration"; Helmick & Rice, "Removal
of alignment errors in an integrated system of two 3-D sensors", IEEE T-AES 29(4), 1993)::

    range_meas   = range(p(t_rep - b_t)) + b_r   + n_r
    azimuth_meas = azim (p(t_rep - b_t)) + b_az  + n_az

with ``b = (b_r [m], b_az [rad], b_t [s])`` constant up to a slow random walk and ``n`` the
declared white noise (the plot's ``cov``). The biases of all radars form one state vector
``x`` (3 per radar) with covariance ``P``.

Constraints (each a 2-vector in the measuring radar's own (range, azimuth) space):

* **ADS-B reference** (absolute): a radar plot carrying a Mode S address is paired with the
  ADS-B reports of the same address that bracket it; the ADS-B position is interpolated
  linearly in ECEF to the plot's true time ``t_rep - x_t`` and converted to the radar's polar
  coordinates. ADS-B is taken as unbiased (its error is the NACp ``cov``). Residual and
  Jacobian (linearised at the current estimate)::

      nu = z - polar_s(p_ref) - (x_r, x_az)
      H_s = [[1, 0, -rdot], [0, 1, -azdot]]       ((rdot, azdot) = J_s v_ref)

* **Radar pairs** (relative): a plot of radar ``a`` paired with the two plots of radar ``b``
  of the same aircraft (same Mode S address, or the same discrete Mode 3/A code) that bracket
  it; ``b``'s plots are corrected with ``b``'s current estimate, converted to ECEF (3D
  radars: measured elevation; 2D radars: Mode C altitude) and interpolated to ``a``'s true
  time, giving ``nu`` as above and ``H_a`` as above, ``H_b = -J_a [w1 dp1/dr + w2 dp2/dr,
  w1 dp1/daz + w2 dp2/daz, -v]``. These are Fischer et al.'s common-target relative
  constraints; they anchor to the absolute frame through radars registered by ADS-B.
  Optionally (``noncooperative_pairs``) plots without identity are paired across radars by a
  tight spatio-temporal gate (unique neighbour within ``noncooperative_gate_m`` and
  ``noncooperative_max_dt_s``), the time difference covered by an added variance.

Noise of a constraint: the radar plot's (range, azimuth) covariance plus the reference's
position covariance mapped through ``J_s`` (the polar Jacobian at the plot), plus an
interpolation term for unmodelled acceleration ``(a (t - t1)(t2 - t) / 2)^2`` per axis.

Estimation: one joint Gauss-Newton / information-filter step per ``observe`` call over all
new constraints (Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, eq. 7.2.4-8, information form of the Kalman update)::

    P <- P + Q dt                    (random walk, Q = diag(q_r, q_az, q_t) per radar)
    P+ = (P^-1 + sum H^T R^-1 H)^-1
    x+ = x + P+ sum H^T R^-1 nu

after a chi-square gate on each ``nu`` against ``H P H^T + R`` (outlier pairs: wrong
association, duplicate Mode 3/A codes). The estimate is the recursive form of the
least-squares registration of Fischer et al. and of the linearised maximum likelihood
registration of Zhou, Leung & Yip ("An exact maximum likelihood registration algorithm for
data fusion", IEEE T-SP 45(6), 1997), for constant biases.

Not estimated: elevation bias, site position errors, antenna tilt, ADS-B errors, biases of
airborne radars' attitude (they are estimated like ground radars in their own polar frame).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from siap import geo
from siap.records import NO_MODE_S, MeasurementKind, TrackStatus

__all__ = ["RegistrationConfig", "BiasEstimate", "SensorRegistration", "track_with_registration"]

logger = logging.getLogger("siap.tracking.registration")

ADSB = int(MeasurementKind.ADSB)
RADAR_2D = int(MeasurementKind.RADAR_2D)
TWO_PI = 2.0 * math.pi
# Mode 3/A codes that many aircraft share (conspicuity, emergencies, unassigned): not identities.
_NON_DISCRETE_3A = np.array([0o0000, 0o1000, 0o1200, 0o2000, 0o7000, 0o7500, 0o7600, 0o7700])
_KEY_3A_OFFSET = 1 << 24
_STAT_KEYS = (
    "plots_in",
    "rejected_nan",
    "late_dropped",
    "adsb_pairs",
    "track_pairs",
    "radar_pairs",
    "primary_pairs",
    "noncooperative_pairs",
    "pairs_gated_out",
    "updates",
)


class RegistrationConfig(BaseModel):
    """Parameters of :class:`SensorRegistration` (units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    estimate_time_bias: bool = Field(
        True, description="Estimate each radar's clock offset b_t (s) as well."
    )
    prior_range_sd_m: float = Field(
        1000.0, gt=0, description="Prior standard deviation of a range bias (m)."
    )
    prior_azimuth_sd_deg: float = Field(
        1.0, gt=0, description="Prior standard deviation of an azimuth bias (deg)."
    )
    prior_time_sd_s: float = Field(
        2.0, gt=0, description="Prior standard deviation of a clock bias (s)."
    )
    range_random_walk_m_per_sqrt_s: float = Field(
        0.05,
        ge=0,
        description="Random-walk intensity of the range bias: sd growth per sqrt(s) (m/sqrt(s)).",
    )
    azimuth_random_walk_deg_per_sqrt_s: float = Field(
        2e-5, ge=0, description="Random-walk intensity of the azimuth bias (deg/sqrt(s))."
    )
    time_random_walk_s_per_sqrt_s: float = Field(
        5e-4, ge=0, description="Random-walk intensity of the clock bias (s/sqrt(s))."
    )
    match_delay_s: float = Field(
        16.0,
        gt=0,
        description="A radar plot is matched once the newest time seen is this far past it (s), so that the ADS-B report and the other radars' plot after it have arrived; longer than the slowest scan period.",
    )
    update_interval_s: float = Field(
        10.0,
        ge=0,
        description="Matching and the estimate update run at most this often (s of data time): fewer, larger batches (the result barely depends on it; the cost per plot falls).",
    )
    buffer_s: float = Field(
        45.0,
        gt=0,
        description="Reports and plots are kept this long for matching (s); at least match_delay_s + update_interval_s + radar_max_gap_s.",
    )
    adsb_max_gap_s: float = Field(
        6.0, gt=0, description="Largest gap between the two ADS-B reports interpolated (s)."
    )
    track_max_gap_s: float = Field(
        12.0,
        gt=0,
        description="Largest gap between the two states of a reference track (received from "
        "another partner, see observe_tracks) interpolated (s).",
    )
    radar_max_gap_s: float = Field(
        14.0,
        gt=0,
        description="Largest gap between the two plots of another radar interpolated (s).",
    )
    interpolation_accel_mps2: float = Field(
        3.0,
        ge=0,
        description="Unmodelled acceleration (m/s^2, per axis) for the interpolation error variance.",
    )
    use_radar_pairs: bool = Field(
        True, description="Use relative constraints between radars (common targets)."
    )
    use_mode_3a: bool = Field(
        True, description="Pair plots without Mode S by a discrete Mode 3/A code."
    )
    noncooperative_pairs: bool = Field(
        True,
        description="Pair plots without identity across radars by a tight spatio-temporal gate.",
    )
    noncooperative_max_dt_s: float = Field(
        1.0, gt=0, description="Largest time difference of such a pair (s)."
    )
    noncooperative_gate_m: float = Field(
        1500.0,
        gt=0,
        description="Spatial gate of such a pair, after correction with the current estimates (m).",
    )
    noncooperative_isolation_m: float = Field(
        10_000.0,
        gt=0,
        description="Such a pair is used only if no other plot of either radar lies this close (m).",
    )
    noncooperative_speed_mps: float = Field(
        250.0,
        gt=0,
        description="Speed assumed for the time difference of such a pair (m/s, variance (v dt)^2 per axis).",
    )
    pair_noise_inflation: float = Field(
        2.0,
        ge=1,
        description="Radar-pair noise covariance multiplier: each plot enters up to three pair constraints (once measured, twice interpolated), whose correlation is not modelled.",
    )
    gate_chi2: float = Field(
        13.8, gt=0, description="Chi-square gate of a constraint (2 dof; 13.8 is P=0.999)."
    )
    min_pairs: int = Field(
        30, ge=1, description="Constraints needed before a radar's estimate counts as converged."
    )
    converged_range_sd_m: float = Field(
        25.0, gt=0, description="Range-bias sd below which an estimate is converged (m)."
    )
    converged_azimuth_sd_deg: float = Field(
        0.03, gt=0, description="Azimuth-bias sd below which an estimate is converged (deg)."
    )


@dataclass(frozen=True)
class BiasEstimate:
    """One radar's estimated biases with their standard deviations (``time_s``: clock offset,
    reported time minus true time; NaN when not estimated)."""

    range_m: float
    azimuth_rad: float
    range_sd_m: float
    azimuth_sd_rad: float
    n_pairs: int
    converged: bool
    time_s: float = float("nan")
    time_sd_s: float = float("nan")

    @property
    def azimuth_deg(self) -> float:
        return math.degrees(self.azimuth_rad)

    @property
    def azimuth_sd_deg(self) -> float:
        return math.degrees(self.azimuth_sd_rad)

    def as_dict(self) -> dict:
        return {
            "range_m": self.range_m,
            "range_sd_m": self.range_sd_m,
            "azimuth_deg": self.azimuth_deg,
            "azimuth_sd_deg": self.azimuth_sd_deg,
            "time_s": self.time_s,
            "time_sd_s": self.time_sd_s,
            "n_pairs": self.n_pairs,
            "converged": self.converged,
        }


# --- geometry helpers (vectorised) ------------------------------------------------------------


def _sites(lat, lon, alt) -> tuple[np.ndarray, np.ndarray]:
    """Site ECEF (n, 3) and ECEF->ENU rotation (n, 3, 3), converting each distinct site once."""
    n = len(lat)
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3, 3))
    sites, inv = np.unique(np.column_stack([lat, lon, alt]), axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    ecef = geo.geodetic_to_ecef(sites[:, 0], sites[:, 1], sites[:, 2])
    rot = geo.enu_rotation(sites[:, 0], sites[:, 1]).reshape(-1, 3, 3)
    return ecef[inv], rot[inv]


def _polar_and_jacobian(p_ecef, site_ecef, rot):
    """(range, azimuth) of ECEF points seen from sites and d(range, az)/d(p_ecef), (n, 2, 3).

    ``az = atan2(e, n)``: d az/d e = n/g^2, d az/d n = -e/g^2 (g ground range)."""
    enu = np.einsum("nij,nj->ni", rot, p_ecef - site_ecef)
    rng, az, _ = geo.enu_to_polar(enu)
    g2 = np.maximum(enu[:, 0] ** 2 + enu[:, 1] ** 2, 1.0)
    j_enu = np.zeros((len(enu), 2, 3))
    j_enu[:, 0, :] = enu / np.maximum(rng, 1.0)[:, None]
    j_enu[:, 1, 0] = enu[:, 1] / g2
    j_enu[:, 1, 1] = -enu[:, 0] / g2
    return rng, az, j_enu @ rot


def _polar_to_ecef_jac(rng, az, el, site_ecef, rot):
    """ECEF position of (range, az, el) and d p_ecef / d(range, az, el), (n, 3, 3)."""
    ce, se, ca, sa = np.cos(el), np.sin(el), np.cos(az), np.sin(az)
    d = np.stack([rng * ce * sa, rng * ce * ca, rng * se], axis=1)
    J = np.empty((len(rng), 3, 3))
    J[:, 0, 0], J[:, 0, 1], J[:, 0, 2] = ce * sa, rng * ce * ca, -rng * se * sa
    J[:, 1, 0], J[:, 1, 1], J[:, 1, 2] = ce * ca, -rng * ce * sa, -rng * se * ca
    J[:, 2, 0], J[:, 2, 1], J[:, 2, 2] = se, 0.0, rng * ce
    rt = np.swapaxes(rot, 1, 2)
    return site_ecef + np.einsum("nij,nj->ni", rt, d), rt @ J


def _elevation_2d(rng, sensor_alt_m, target_alt_m):
    """Elevation of a 2D plot from its Mode C altitude, law of cosines on a sphere (as the
    tracker does, siap.tracking.measurements)."""
    R = geo.EARTH_MEAN_RADIUS_M
    rs, rt = R + sensor_alt_m, R + target_alt_m
    s = (rt**2 - rs**2 - rng**2) / (2.0 * np.maximum(rng, 1.0) * rs)
    return np.arcsin(np.clip(s, -1.0, 1.0))


def _wrap(a):
    return (a + math.pi) % TWO_PI - math.pi


def _identity_key(mode_s, mode_3a, use_3a: bool) -> np.ndarray:
    """Mode S address, else a discrete Mode 3/A code offset by 2^24, else -1."""
    key = np.where(mode_s >= 0, mode_s.astype(np.int64), -1)
    if use_3a:
        ok3 = (mode_s < 0) & (mode_3a >= 0) & ~np.isin(mode_3a, _NON_DISCRETE_3A)
        key = np.where(ok3, _KEY_3A_OFFSET + mode_3a.astype(np.int64), key)
    return key


def _bracket(g_buf, t_buf, g_q, t_q, max_gap):
    """Indices (i1, i2) of consecutive buffer rows of the same group bracketing each query
    time (t1 <= t <= t2, t2 - t1 <= max_gap), -1 where none. The buffer is sorted by
    (group, time); groups are non-negative integers."""
    n = len(g_q)
    i1 = np.full(n, -1, dtype=np.int64)
    i2 = np.full(n, -1, dtype=np.int64)
    if len(g_buf) < 2 or n == 0:
        return i1, i2
    groups = np.unique(g_buf)
    rank_b = np.searchsorted(groups, g_buf)
    rank_q = np.clip(np.searchsorted(groups, g_q), 0, len(groups) - 1)
    known = groups[rank_q] == g_q
    lo = np.searchsorted(rank_b, rank_q, side="left")
    hi = np.searchsorted(rank_b, rank_q, side="right")
    # k = number of buffer rows with (group rank, time) <= the query's, lexicographically
    # (searchsorted side='right' on the pair; one sort of buffer and queries together, buffer
    # rows first on ties; no combined float key, which would lose close times)
    nb = len(g_buf)
    order = np.lexsort(
        (
            np.r_[np.zeros(nb, np.int8), np.ones(n, np.int8)],
            np.r_[t_buf, t_q],
            np.r_[rank_b, rank_q],
        )
    )
    is_q = order >= nb
    k = np.empty(n, np.int64)
    k[order[is_q] - nb] = np.cumsum(~is_q)[is_q]
    a, b = k - 1, k
    ok = known & (a >= lo) & (b < hi) & (a >= 0) & (b < len(g_buf))
    a_c, b_c = np.clip(a, 0, len(g_buf) - 1), np.clip(b, 0, len(g_buf) - 1)
    ok &= (t_buf[b_c] - t_buf[a_c]) <= max_gap
    ok &= (t_buf[a_c] <= t_q) & (t_buf[b_c] >= t_q)
    i1[ok], i2[ok] = a_c[ok], b_c[ok]
    return i1, i2


_RADAR_BUF = np.dtype(
    [
        ("time_s", "f8"),
        ("sensor", "i8"),
        ("key", "i8"),
        ("range_m", "f8"),
        ("azimuth_rad", "f8"),
        ("el_rad", "f8"),  # measured (3D) or from Mode C (2D); NaN if unknown
        ("el_var", "f8"),
        ("cov2", "f8", (2, 2)),
        ("site", "f8", (3,)),
        ("rot", "f8", (3, 3)),
        ("done", "?"),
    ]
)
_ADSB_BUF = np.dtype([("time_s", "f8"), ("key", "i8"), ("pos", "f8", (3,)), ("cov", "f8", (3, 3))])


class SensorRegistration:
    """Online joint estimation of the radars' range, azimuth (and clock) biases; see the module
    docstring for the model, constraints and update.

    ``observe(plots)`` feeds any batch (time ordered within ``buffer_s - match_delay_s``);
    ``correct(plots)`` returns a copy with the converged estimates removed; ``estimates`` maps
    each radar to its :class:`BiasEstimate`; ``stats`` counts plots, pairs and rejections.
    """

    def __init__(self, config: RegistrationConfig | None = None) -> None:
        self.cfg = config or RegistrationConfig()
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.x = np.zeros(0)
        self.P = np.zeros((0, 0))
        self._n_pairs = np.zeros(0, dtype=np.int64)
        self._t_state = -np.inf
        self._t_match = -np.inf
        self._newest = -np.inf
        self._radar = np.zeros(0, _RADAR_BUF)
        self._adsb = np.zeros(0, _ADSB_BUF)
        self._new_radar: list[np.ndarray] = []  # rows taken in since the last merge
        self._new_adsb: list[np.ndarray] = []
        self._tracks = np.zeros(0, _ADSB_BUF)  # reference track states (observe_tracks)
        self._new_tracks: list[np.ndarray] = []
        self._stats = dict.fromkeys(_STAT_KEYS, 0)

    # --- public --------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    @property
    def sensor_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def estimates(self) -> dict[str, BiasEstimate]:
        out = {}
        conv = self._converged()
        for s, sid in enumerate(self._ids):
            i = 3 * s
            sd = np.sqrt(np.maximum(np.diag(self.P)[i : i + 3], 0.0))
            est_t = self.cfg.estimate_time_bias
            out[sid] = BiasEstimate(
                range_m=float(self.x[i]),
                azimuth_rad=float(self.x[i + 1]),
                range_sd_m=float(sd[0]),
                azimuth_sd_rad=float(sd[1]),
                n_pairs=int(self._n_pairs[s]),
                converged=bool(conv[s]),
                time_s=float(self.x[i + 2]) if est_t else float("nan"),
                time_sd_s=float(sd[2]) if est_t else float("nan"),
            )
        return out

    @property
    def max_time_correction_s(self) -> float:
        """The largest clock correction ``correct`` subtracts now (s, >= 0): corrected plots may
        be this much older than their reported time (a streaming consumer should not advance
        its clock past ``newest reported time - this``)."""
        if not self.cfg.estimate_time_bias or not self._ids:
            return 0.0
        conv = self._converged()
        if not conv.any():
            return 0.0
        return max(0.0, float(np.max(self.x[2::3][conv])))

    def observe(self, plots: np.ndarray) -> None:
        """Take in a batch of plots (radar and ADS-B, any sensors) and update the estimates with
        every radar plot that has become matchable (``match_delay_s`` behind the newest time)."""
        n = len(plots)
        if n == 0:
            return
        self._stats["plots_in"] += n
        kind = plots["kind"].astype(np.int64)
        isa = kind == ADSB
        t = plots["time_s"]
        cov = plots["cov"]
        finite_t = np.isfinite(t)
        good_a = (
            isa
            & finite_t
            & np.isfinite(plots["lat_deg"])
            & np.isfinite(plots["lon_deg"])
            & np.isfinite(plots["alt_m"])
            & np.isfinite(cov).all(axis=(1, 2))
        )
        good_r = (
            ~isa
            & finite_t
            & np.isfinite(plots["range_m"])
            & np.isfinite(plots["azimuth_rad"])
            & np.isfinite(plots["sensor_lat_deg"])
            & np.isfinite(plots["sensor_lon_deg"])
            & np.isfinite(plots["sensor_alt_m"])
            & np.isfinite(cov[:, :2, :2]).all(axis=(1, 2))
            & (kind <= RADAR_2D)
        )
        bad = ~(good_a | good_r)
        if bad.any():
            self._stats["rejected_nan"] += int(bad.sum())
            logger.debug("registration: dropped %d plots with non-finite fields", int(bad.sum()))
        if finite_t.any():
            newest = float(np.max(t[finite_t]))
        else:
            return
        if np.isfinite(self._newest):
            late = (good_a | good_r) & (
                t
                < self._newest
                - self.cfg.buffer_s
                + self.cfg.match_delay_s
                + self.cfg.update_interval_s
            )
            if late.any():
                self._stats["late_dropped"] += int(late.sum())
                good_a &= ~late
                good_r &= ~late
        self._newest = max(self._newest, newest)
        # register new radars
        for sid in np.unique(plots["sensor_id"][good_r]):
            self._add_sensor(str(sid))
        self._buffer_adsb(plots[good_a])
        self._buffer_radar(plots[good_r])
        if self._newest - self._t_match >= self.cfg.update_interval_s:
            self._t_match = self._newest
            self._merge_buffers()
            self._match_and_update()
            self._prune()

    def observe_tracks(self, tracks: np.ndarray) -> None:
        """Take in reference *tracks* (``records.TRACK_DTYPE``, e.g. those received from other
        partners) for track-to-track registration: a radar plot with a Mode S address is
        paired with the two states of a reference track of the same address that bracket its
        true time (at most ``track_max_gap_s`` apart), exactly as with ADS-B reports, with the
        track's position covariance as the reference error (Bar-Shalom, Willett & Tian 2011,
        ch. 9: registration from tracks of a common target). The caller decides which tracks
        may serve as references (siap.runtime: only those releasable to the whole audience of
        the corrected group, see docs/registration.md). Rows without a Mode S address, with
        non-finite states or deleted are ignored. Estimates are updated at the next
        ``observe``."""
        if len(tracks) == 0:
            return
        ok = (
            (tracks["mode_s_address"].astype(np.int64) != NO_MODE_S)
            & np.isfinite(tracks["time_s"])
            & np.isfinite(tracks["pos_ecef_m"]).all(axis=1)
            & np.isfinite(tracks["cov_ecef"]).all(axis=(1, 2))
            & (tracks["status"] != TrackStatus.DELETED)
        )
        if np.isfinite(self._newest):
            ok &= tracks["time_s"] >= self._newest - self.cfg.buffer_s
        t = tracks[ok]
        if len(t) == 0:
            return
        rows = np.zeros(len(t), _ADSB_BUF)
        rows["time_s"] = t["time_s"]
        rows["key"] = t["mode_s_address"]
        rows["pos"] = t["pos_ecef_m"]
        rows["cov"] = t["cov_ecef"][:, :3, :3]
        self._new_tracks.append(rows)

    def _merge_buffers(self) -> None:
        """Fold the rows taken in since the last update into the sorted buffers."""
        if self._new_tracks:
            buf = np.concatenate([self._tracks, *self._new_tracks])
            buf = buf[np.lexsort((buf["time_s"], buf["key"]))]
            # one state per (address, time): partners' tracks of one aircraft at one time
            keep = np.ones(len(buf), bool)
            keep[1:] = (buf["key"][1:] != buf["key"][:-1]) | (buf["time_s"][1:] != buf["time_s"][:-1])
            self._tracks = buf[keep]
            self._new_tracks = []
        if self._new_adsb:
            buf = np.concatenate([self._adsb, *self._new_adsb])
            self._adsb = buf[np.lexsort((buf["time_s"], buf["key"]))]
            self._new_adsb = []
        if self._new_radar:
            buf = np.concatenate([self._radar, *self._new_radar])
            self._radar = buf[np.lexsort((buf["time_s"], buf["key"], buf["sensor"]))]
            self._new_radar = []

    def correct(self, plots: np.ndarray) -> np.ndarray:
        """A copy of ``plots`` with the estimated biases removed from the radar plots of sensors
        whose estimate has converged (range, azimuth, time; the display lat/lon/alt of 3D plots
        recomputed) and the estimate's (range, azimuth) covariance added to ``cov``. ADS-B
        plots, unknown sensors and unconverged sensors are returned unchanged."""
        out = np.array(plots, copy=True)
        if len(out) == 0 or not self._ids:
            return out
        conv = self._converged()
        lut = {sid: s for s, sid in enumerate(self._ids) if conv[s]}
        if not lut:
            return out
        kind = out["kind"].astype(np.int64)
        names, inv = np.unique(out["sensor_id"], return_inverse=True)
        s_of_name = np.array([lut.get(str(nm), -1) for nm in names], dtype=np.int64)
        s = s_of_name[np.asarray(inv).reshape(-1)]
        m = (s >= 0) & (kind != ADSB) & (kind <= RADAR_2D)
        if not m.any():
            return out
        idx = np.flatnonzero(m)
        si = s[idx]
        x = self.x.reshape(-1, 3)[si]
        Pb = self.P.reshape(len(self._ids), 3, len(self._ids), 3)[si, :, si, :][:, :2, :2]
        out["range_m"][idx] = out["range_m"][idx] - x[:, 0]
        with np.errstate(invalid="ignore"):  # bad plots stay bad (the tracker counts them)
            out["azimuth_rad"][idx] = np.mod(out["azimuth_rad"][idx] - x[:, 1], TWO_PI)
        if self.cfg.estimate_time_bias:
            out["time_s"][idx] = out["time_s"][idx] - x[:, 2]
        c = out["cov"][idx]
        c[:, :2, :2] += Pb
        out["cov"][idx] = c
        # display position of 3D plots
        is3 = kind[idx] != RADAR_2D
        j = idx[is3 & np.isfinite(out["elevation_rad"][idx]) & np.isfinite(out["range_m"][idx])]
        if len(j):
            site, rot = _sites(
                out["sensor_lat_deg"][j], out["sensor_lon_deg"][j], out["sensor_alt_m"][j]
            )
            p, _ = _polar_to_ecef_jac(
                out["range_m"][j], out["azimuth_rad"][j], out["elevation_rad"][j], site, rot
            )
            lat, lon, alt = geo.ecef_to_geodetic(p)
            out["lat_deg"][j], out["lon_deg"][j], out["alt_m"][j] = lat, lon, alt
        return out

    # --- state -----------------------------------------------------------------------------------

    def _add_sensor(self, sid: str) -> None:
        if sid in self._index:
            return
        c = self.cfg
        self._index[sid] = len(self._ids)
        self._ids.append(sid)
        m = len(self.x)
        self.x = np.concatenate([self.x, np.zeros(3)])
        P = np.zeros((m + 3, m + 3))
        P[:m, :m] = self.P
        t_var = c.prior_time_sd_s**2 if c.estimate_time_bias else 0.0
        P[m:, m:] = np.diag(
            [c.prior_range_sd_m**2, math.radians(c.prior_azimuth_sd_deg) ** 2, t_var]
        )
        self.P = P
        self._n_pairs = np.concatenate([self._n_pairs, [0]])

    def _converged(self) -> np.ndarray:
        c = self.cfg
        d = np.diag(self.P)
        return (
            (self._n_pairs >= c.min_pairs)
            & (np.sqrt(np.maximum(d[0::3], 0)) <= c.converged_range_sd_m)
            & (np.sqrt(np.maximum(d[1::3], 0)) <= math.radians(c.converged_azimuth_sd_deg))
        )

    def _q_diag(self) -> np.ndarray:
        c = self.cfg
        q = np.array(
            [
                c.range_random_walk_m_per_sqrt_s**2,
                math.radians(c.azimuth_random_walk_deg_per_sqrt_s) ** 2,
                c.time_random_walk_s_per_sqrt_s**2 if c.estimate_time_bias else 0.0,
            ]
        )
        return np.tile(q, len(self._ids))

    # --- buffers ---------------------------------------------------------------------------------

    def _buffer_adsb(self, a: np.ndarray) -> None:
        key = a["mode_s_address"].astype(np.int64)
        a = a[key != NO_MODE_S]
        if len(a) == 0:
            return
        rows = np.zeros(len(a), _ADSB_BUF)
        rows["time_s"] = a["time_s"]
        rows["key"] = a["mode_s_address"]
        rows["pos"] = geo.geodetic_to_ecef(a["lat_deg"], a["lon_deg"], a["alt_m"])
        R = geo.enu_rotation(a["lat_deg"], a["lon_deg"]).reshape(-1, 3, 3)
        rows["cov"] = np.swapaxes(R, 1, 2) @ a["cov"] @ R  # ENU at the point -> ECEF
        self._new_adsb.append(rows)

    def _buffer_radar(self, r: np.ndarray) -> None:
        if len(r) == 0:
            return
        c = self.cfg
        key = _identity_key(r["mode_s_address"], r["mode_3a"], c.use_mode_3a)
        if not c.noncooperative_pairs:
            r, key = r[key >= 0], key[key >= 0]
            if len(r) == 0:
                return
        rows = np.zeros(len(r), _RADAR_BUF)
        rows["time_s"] = r["time_s"]
        rows["sensor"] = self._sensor_index(r["sensor_id"])
        rows["key"] = key
        rows["range_m"] = r["range_m"]
        rows["azimuth_rad"] = r["azimuth_rad"]
        is2 = r["kind"].astype(np.int64) == RADAR_2D
        cov = r["cov"]
        el = np.where(is2, np.nan, r["elevation_rad"])
        el_var = np.where(is2, np.nan, cov[:, 2, 2])
        alt = r["alt_m"]
        has_c = is2 & np.isfinite(alt) & np.isfinite(cov[:, 2, 2])
        if has_c.any():
            el2 = _elevation_2d(r["range_m"], r["sensor_alt_m"], alt)
            el = np.where(has_c, el2, el)
            ce = np.maximum(r["range_m"] * np.cos(el2), 1.0)
            el_var = np.where(has_c, cov[:, 2, 2] / ce**2, el_var)
        rows["el_rad"] = el
        rows["el_var"] = el_var
        rows["cov2"] = cov[:, :2, :2]
        site, rot = _sites(r["sensor_lat_deg"], r["sensor_lon_deg"], r["sensor_alt_m"])
        rows["site"] = site
        rows["rot"] = rot
        self._new_radar.append(rows)

    def _sensor_index(self, names: np.ndarray) -> np.ndarray:
        u, inv = np.unique(names, return_inverse=True)
        lut = np.array([self._index[str(s)] for s in u], dtype=np.int64)
        return lut[np.asarray(inv).reshape(-1)]

    def _prune(self) -> None:
        keep_after = self._newest - self.cfg.buffer_s
        if len(self._adsb):
            self._adsb = self._adsb[self._adsb["time_s"] >= keep_after]
        if len(self._tracks):
            self._tracks = self._tracks[self._tracks["time_s"] >= keep_after]
        if len(self._radar):
            self._radar = self._radar[self._radar["time_s"] >= keep_after]

    # --- matching ---------------------------------------------------------------------------------

    def _match_and_update(self) -> None:
        c = self.cfg
        buf = self._radar
        if len(buf) == 0:
            return
        ready = np.flatnonzero(~buf["done"] & (buf["time_s"] <= self._newest - c.match_delay_s))
        if len(ready) == 0:
            return
        buf["done"][ready] = True
        q = buf[ready]
        xs = self.x.reshape(-1, 3)
        # the plot's true time at the current clock estimate
        t_true = q["time_s"] - (xs[q["sensor"], 2] if c.estimate_time_bias else 0.0)
        parts = []
        ident = q["key"] >= 0
        if ident.any():
            parts.append(self._adsb_constraints(q[ident], t_true[ident]))
            parts.append(
                self._adsb_constraints(
                    q[ident],
                    t_true[ident],
                    buf=self._tracks,
                    max_gap_s=c.track_max_gap_s,
                    stat="track_pairs",
                    inflation=c.pair_noise_inflation,
                )
            )
            if c.use_radar_pairs and len(self._ids) > 1:
                parts.extend(self._pair_constraints(q[ident], t_true[ident]))
        if c.use_radar_pairs and c.noncooperative_pairs and (~ident).any() and len(self._ids) > 1:
            parts.extend(self._primary_constraints(q[~ident], t_true[~ident]))
        parts = [p for p in parts if p is not None and len(p[0])]
        if not parts:
            return
        nu = np.concatenate([p[0] for p in parts])
        H = np.concatenate([p[1] for p in parts])
        R = np.concatenate([p[2] for p in parts])
        sens = np.concatenate([p[3] for p in parts])
        self._update(nu, H, R, sens, float(np.max(q["time_s"])))

    def _h_own(self, jv):
        """Own-sensor Jacobian rows (n, 2, 3): [[1, 0, -rdot], [0, 1, -azdot]]."""
        n = len(jv)
        h = np.zeros((n, 2, 3))
        h[:, 0, 0] = 1.0
        h[:, 1, 1] = 1.0
        if self.cfg.estimate_time_bias:
            h[:, :, 2] = -jv
        return h

    def _dense(self, s_own, h_own, s_other=None, h_other=None):
        n = len(s_own)
        M = len(self.x)
        H = np.zeros((n, 2, M))
        r = np.arange(n)
        for k in range(3):
            H[r, :, 3 * s_own + k] = h_own[:, :, k]
            if s_other is not None:
                H[r, :, 3 * s_other + k] += h_other[:, :, k]
        return H

    def _residual(self, q, p_ref, s_own):
        rng, az, J = _polar_and_jacobian(p_ref, q["site"], q["rot"])
        xs = self.x.reshape(-1, 3)[s_own]
        nu = np.stack(
            [q["range_m"] - rng - xs[:, 0], _wrap(q["azimuth_rad"] - az - xs[:, 1])], axis=1
        )
        return nu, J

    def _adsb_constraints(
        self, q, t_true, buf=None, max_gap_s=None, stat="adsb_pairs", inflation=1.0
    ):
        """Absolute constraints against reference positions of the same Mode S address:
        ADS-B reports (default) or reference track states (``buf=self._tracks``; their
        ``R`` is multiplied by ``inflation``: consecutive states of a track have correlated
        errors that the update does not model)."""
        c = self.cfg
        a = self._adsb if buf is None else buf
        if len(a) < 2:
            return None
        gap = c.adsb_max_gap_s if max_gap_s is None else max_gap_s
        i1, i2 = _bracket(a["key"], a["time_s"], q["key"], t_true, gap)
        ok = (i1 >= 0) & (q["key"] < _KEY_3A_OFFSET)
        if not ok.any():
            return None
        q, t, i1, i2 = q[ok], t_true[ok], i1[ok], i2[ok]
        t1, t2 = a["time_s"][i1], a["time_s"][i2]
        dt = np.maximum(t2 - t1, 1e-6)
        w2 = (t - t1) / dt
        w1 = 1.0 - w2
        p = w1[:, None] * a["pos"][i1] + w2[:, None] * a["pos"][i2]
        v = (a["pos"][i2] - a["pos"][i1]) / dt[:, None]
        s = q["sensor"]
        nu, J = self._residual(q, p, s)
        jv = np.einsum("nij,nj->ni", J, v)
        cref = w1[:, None, None] ** 2 * a["cov"][i1] + w2[:, None, None] ** 2 * a["cov"][i2]
        ivar = (c.interpolation_accel_mps2 * (t - t1) * (t2 - t) / 2.0) ** 2
        cref = cref + ivar[:, None, None] * np.eye(3)
        R = q["cov2"] + J @ cref @ np.swapaxes(J, 1, 2)
        if inflation != 1.0:
            R = R * inflation
        H = self._dense(s, self._h_own(jv))
        self._stats[stat] += len(q)
        return nu, H, R, np.stack([s, np.full(len(s), -1)], axis=1)

    def _radar_positions(self, rows):
        """ECEF positions of buffered radar plots corrected with the current estimates, their
        d p/d(range, az, el) and (range, az, el) covariance (NaN elevation -> NaN)."""
        xs = self.x.reshape(-1, 3)[rows["sensor"]]
        rng = rows["range_m"] - xs[:, 0]
        az = rows["azimuth_rad"] - xs[:, 1]
        p, J = _polar_to_ecef_jac(rng, az, rows["el_rad"], rows["site"], rows["rot"])
        C = np.zeros((len(rows), 3, 3))
        C[:, :2, :2] = rows["cov2"]
        C[:, 2, 2] = rows["el_var"]
        return p, J, C

    def _pair_constraints(self, q, t_true, other_of=None, stat="radar_pairs"):
        c = self.cfg
        buf = self._radar
        idb = buf["key"] >= 0
        bidx = np.flatnonzero(idb)
        if len(bidx) < 2:
            return []
        b = buf[bidx]
        lo_t, hi_t = (
            float(np.min(t_true)) - c.radar_max_gap_s - 5.0,
            float(np.max(t_true)) + c.radar_max_gap_s + 5.0,
        )
        b = b[(b["time_s"] >= lo_t) & (b["time_s"] <= hi_t)]
        out = []
        xs = self.x.reshape(-1, 3)
        for other in range(len(self._ids)):
            sel = q["sensor"] != other
            if other_of is not None:
                sel &= other_of == other
            if not sel.any():
                continue
            in_b = b["sensor"] == other
            if in_b.sum() < 2:
                continue
            bb = b[in_b]  # sorted by (key, time) within the sensor
            qq, tt = q[sel], t_true[sel]
            # b's reported clock at a's true time
            tb = tt + (xs[other, 2] if c.estimate_time_bias else 0.0)
            i1, i2 = _bracket(bb["key"], bb["time_s"], qq["key"], tb, c.radar_max_gap_s)
            ok = i1 >= 0
            ok[ok] &= np.isfinite(bb["el_rad"][i1[ok]]) & np.isfinite(bb["el_rad"][i2[ok]])
            if not ok.any():
                continue
            qq, tb, i1, i2 = qq[ok], tb[ok], i1[ok], i2[ok]
            t1, t2 = bb["time_s"][i1], bb["time_s"][i2]
            dt = np.maximum(t2 - t1, 1e-6)
            w2 = (tb - t1) / dt
            w1 = 1.0 - w2
            p1, J1, C1 = self._radar_positions(bb[i1])
            p2, J2, C2 = self._radar_positions(bb[i2])
            p = w1[:, None] * p1 + w2[:, None] * p2
            v = (p2 - p1) / dt[:, None]
            s = qq["sensor"]
            nu, J = self._residual(qq, p, s)
            jv = np.einsum("nij,nj->ni", J, v)
            cref = w1[:, None, None] ** 2 * (J1 @ C1 @ np.swapaxes(J1, 1, 2)) + w2[
                :, None, None
            ] ** 2 * (J2 @ C2 @ np.swapaxes(J2, 1, 2))
            ivar = (c.interpolation_accel_mps2 * (tb - t1) * (t2 - tb) / 2.0) ** 2
            cref = cref + ivar[:, None, None] * np.eye(3)
            R = (qq["cov2"] + J @ cref @ np.swapaxes(J, 1, 2)) * c.pair_noise_inflation
            # other sensor's Jacobian: -J (w1 dp1/d(r,az) + w2 dp2/d(r,az)), +J v for its clock
            dpb = w1[:, None, None] * J1[:, :, :2] + w2[:, None, None] * J2[:, :, :2]
            h_b = np.zeros((len(qq), 2, 3))
            h_b[:, :, :2] = -(J @ dpb)
            if c.estimate_time_bias:
                h_b[:, :, 2] = jv
            H = self._dense(s, self._h_own(jv), np.full(len(s), other), h_b)
            out.append((nu, H, R, np.stack([s, np.full(len(s), other)], axis=1)))
            self._stats[stat] += len(qq)
        return out

    def _primary_constraints(self, q, t_true):
        """Constraints for plots without identity (primary-only radars, non-cooperative
        aircraft): a plot is paired with the plots of another radar that lie in a tight
        spatio-temporal gate, only where that radar shows exactly one aircraft near it
        (isolation radius). If that aircraft carries an identity on the other radar, its
        plots are interpolated as for identified pairs ("borrowed" identity); otherwise the one
        plot within ``noncooperative_max_dt_s`` is used directly, the time difference covered
        by a ``(speed dt)^2`` variance."""
        from scipy.spatial import cKDTree

        c = self.cfg
        buf = self._radar
        q, t_true = q[np.isfinite(q["el_rad"])], t_true[np.isfinite(q["el_rad"])]
        if len(q) == 0:
            return []
        w = 0.5 * c.radar_max_gap_s + 1.0
        tb = buf["time_s"]
        cand = buf[
            np.isfinite(buf["el_rad"])
            & (tb >= q["time_s"].min() - w)
            & (tb <= q["time_s"].max() + w)
        ]
        if len(cand) == 0 or len(q) == 0:
            return []
        pq, _, _ = self._radar_positions(q)
        pc, Jc, Cc = self._radar_positions(cand)
        tree = cKDTree(pc)
        lists = tree.query_ball_point(pq, c.noncooperative_isolation_m)
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        owner = np.repeat(np.arange(len(q)), counts)
        items = np.fromiter(
            (j for lst in lists for j in lst), dtype=np.int64, count=int(counts.sum())
        )
        if len(items) == 0:
            return []
        dtp = np.abs(cand["time_s"][items] - q["time_s"][owner])
        key_c = cand["key"][items]
        sens_c = cand["sensor"][items]
        window = np.where(key_c >= 0, 0.5 * c.radar_max_gap_s, c.noncooperative_max_dt_s)
        keep = (sens_c != q["sensor"][owner]) & (dtp <= window)
        owner, items, dtp, key_c, sens_c = (
            owner[keep],
            items[keep],
            dtp[keep],
            key_c[keep],
            sens_c[keep],
        )
        if len(items) == 0:
            return []
        S = len(self._ids)
        g = owner * (S + 1) + sens_c
        order = np.lexsort((key_c, g))
        owner, items, dtp, key_c, sens_c, g = (
            owner[order],
            items[order],
            dtp[order],
            key_c[order],
            sens_c[order],
            g[order],
        )
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        n_items = np.diff(np.r_[starts, len(g)])
        same_key = np.r_[True, (key_c[1:] == key_c[:-1]) | (g[1:] != g[:-1])]
        n_keys = np.add.reduceat((~same_key).astype(np.int64), starts) + 1
        gkey = key_c[starts]
        # gate: own-bias uncertainty in position terms, plus motion over the time difference
        sd = np.sqrt(np.maximum(np.diag(self.P), 0.0)).reshape(-1, 3)
        so = q["sensor"][owner[starts]]
        gate = c.noncooperative_gate_m + 3.0 * (sd[so, 0] + q["range_m"][owner[starts]] * sd[so, 1])
        gate = np.minimum(gate, 0.5 * c.noncooperative_isolation_m)
        d = np.linalg.norm(pc[items] - pq[owner], axis=1) - c.noncooperative_speed_mps * dtp
        dmin = np.minimum.reduceat(d, starts)
        ok = (n_keys == 1) & ((gkey >= 0) | (n_items == 1)) & (dmin <= gate)
        out = []
        ident = ok & (gkey >= 0)
        if ident.any() and c.use_radar_pairs:
            o = owner[starts[ident]]
            qq = q[o].copy()
            qq["key"] = gkey[ident]
            out.extend(
                self._pair_constraints(qq, t_true[o], sens_c[starts[ident]], stat="primary_pairs")
            )
        direct = ok & (gkey < 0)
        if direct.any():
            k = starts[direct]
            o, it, dt_ = owner[k], items[k], dtp[k]
            qq = q[o]
            s = qq["sensor"]
            sb = cand["sensor"][it]
            nu, J = self._residual(qq, pc[it], s)
            cref = Jc[it] @ Cc[it] @ np.swapaxes(Jc[it], 1, 2)
            cref = cref + ((c.noncooperative_speed_mps * dt_) ** 2)[:, None, None] * np.eye(3)
            R = (qq["cov2"] + J @ cref @ np.swapaxes(J, 1, 2)) * c.pair_noise_inflation
            h_a = np.zeros((len(qq), 2, 3))
            h_a[:, 0, 0] = 1.0
            h_a[:, 1, 1] = 1.0
            h_b = np.zeros((len(qq), 2, 3))
            h_b[:, :, :2] = -(J @ Jc[it][:, :, :2])
            out.append((nu, self._dense(s, h_a, sb, h_b), R, np.stack([s, sb], axis=1)))
            self._stats["noncooperative_pairs"] += len(qq)
        return out

    # --- estimation ---------------------------------------------------------------------------------

    def _update(self, nu, H, R, sens, t_now) -> None:
        """Random-walk prediction, chi-square gate, one information-form update (module docs)."""
        c = self.cfg
        if np.isfinite(self._t_state) and t_now > self._t_state:
            self.P = self.P + np.diag(self._q_diag() * (t_now - self._t_state))
        self._t_state = max(self._t_state, t_now)
        finite = (
            np.isfinite(nu).all(axis=1)
            & np.isfinite(R).all(axis=(1, 2))
            & np.isfinite(H).all(axis=(1, 2))
        )
        nu, H, R, sens = nu[finite], H[finite], R[finite], sens[finite]
        if len(nu) == 0:
            return
        S = np.einsum("nim,mk,njk->nij", H, self.P, H) + R
        Si = np.linalg.inv(S)
        d2 = np.einsum("ni,nij,nj->n", nu, Si, nu)
        ok = d2 <= c.gate_chi2
        self._stats["pairs_gated_out"] += int((~ok).sum())
        nu, H, R, sens = nu[ok], H[ok], R[ok], sens[ok]
        if len(nu) == 0:
            return
        W = np.linalg.inv(R)
        info = np.einsum("nim,nij,njk->mk", H, W, H)
        vec = np.einsum("nim,nij,nj->m", H, W, nu)
        M = len(self.x)
        active = np.diag(self.P) > 0  # clock states are frozen (variance 0) when not estimated
        Pa = self.P[np.ix_(active, active)]
        Y = np.linalg.inv(Pa) + info[np.ix_(active, active)]
        Pn = np.linalg.inv(Y)
        Pn = 0.5 * (Pn + Pn.T)
        P = np.zeros((M, M))
        P[np.ix_(active, active)] = Pn
        self.x[active] = self.x[active] + Pn @ vec[active]
        self.P = P
        for col in (0, 1):
            s = sens[:, col]
            s = s[s >= 0]
            self._n_pairs += np.bincount(s, minlength=len(self._ids))[: len(self._ids)]
        self._stats["updates"] += 1


def track_with_registration(
    plots, cfg, output_times_s, reg_config: RegistrationConfig | None = None, progress=None
):
    """Run registration and the tracker together over a recorded plot batch: per time slice
    ending at each output time, ``observe`` -> ``correct`` -> ``Tracker.process``, with a
    snapshot at each output time (:func:`siap.tracking.track_with_stats` with this registration:
    ``Tracker.advance`` to each output time, held back by the largest clock correction).

    Returns ``(tracks, estimates)``: the concatenated snapshots (TRACK_DTYPE) and the final
    :class:`BiasEstimate` per radar (:func:`run_with_registration` also returns the
    registration object, with its counters, and the tracker's counters).
    """
    tracks, reg, _ = run_with_registration(plots, cfg, output_times_s, reg_config, progress)
    return tracks, reg.estimates


def estimates_table(registration: SensorRegistration) -> dict[str, dict[str, float | int | bool]]:
    """The bias estimates of ``registration`` as plain numbers (m, deg, s), for reports."""
    out = {}
    for sid, e in sorted(registration.estimates.items()):
        out[sid] = {
            "range_m": round(float(e.range_m), 2),
            "range_sd_m": round(float(e.range_sd_m), 2),
            "azimuth_deg": round(float(np.degrees(e.azimuth_rad)), 4),
            "azimuth_sd_deg": round(float(np.degrees(e.azimuth_sd_rad)), 4),
            "time_s": round(float(e.time_s), 3),
            "time_sd_s": round(float(e.time_sd_s), 3),
            "pairs": int(e.n_pairs),
            "converged": bool(e.converged),
        }
    return out


def run_with_registration(
    plots, cfg, output_times_s, reg_config: RegistrationConfig | None = None, progress=None
):
    """As :func:`track_with_registration` but returns ``(tracks, registration, tracker_stats)``."""
    from .tracker import track_with_stats

    reg = SensorRegistration(reg_config)
    tracks, stats = track_with_stats(
        plots, cfg, output_times_s, registration=reg, progress=progress
    )
    return tracks, reg, stats
