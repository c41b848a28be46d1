"""Where each sensor can see, how often it looks and how often it detects, learned from its plots.

The tracker uses this to end tracks for the right reason (docs/tracking.md, 'Coverage-aware
track management'): a missed detection counts against a track only where a sensor that has
seen the aircraft should see it again, and a track predicted outside every such sensor's
coverage is ended once the sensors' expected revisits have passed, instead of coasting for a
fixed time.

Per sensor (index as in the tracker's sensor registry), learned online:

* **site**: the latest plot's sensor position (tracker ENU) and height; for a moving
  (airborne) sensor, where it was last.
* **coverage**: the largest slant range of any plot it gave (times ``range_margin``), and the
  radio line of sight over a smooth earth with the standard-atmosphere effective radius
  ``k R_e``, ``k = 4/3`` (Skolnik, *Introduction to Radar Systems*, 3rd ed., 2001, sec. 8.2):
  ``d_h = sqrt(2 k R_e h_s) + sqrt(2 k R_e h_t)`` for sensor and target heights ``h_s``,
  ``h_t``; a target is covered if its horizontal distance is within ``d_h`` and its slant
  range within the learned maximum. Terrain masking and elevation limits are not modelled.
* **revisit**: the time between two plots of the same track from the sensor (scan period of a
  radar, report interval of ADS-B), a running estimate of the per-batch median.
* **scanning**: whether the sensor scans (a radar: its looks are antenna sweeps, so a missed
  look is evidence) or not (an ADS-B receiver: reception of squitters is bursty and a gap of
  a few seconds is normal, so its gaps count for nothing and tracks seen only by ADS-B are
  left to the time rules).
* **detection probability**: plots over looks, ``P_D = sum hits / sum looks`` with the looks of
  a gap ``g`` counted as ``max(1, round(g / revisit))`` (exponentially forgotten).
"""

from __future__ import annotations

import numpy as np

from .kernels.management import sensor_ranges

__all__ = ["SensorCoverage", "K_REFRACTION"]

K_REFRACTION = 4.0 / 3.0  # effective earth radius factor, standard atmosphere
_MIN_GAP_S = 0.05  # gaps shorter than this (repeats in one frame) say nothing of the revisit
_FORGET = 0.9  # per learning batch (about ten seconds of plots), for the detection counts
_BLEND = 0.2  # weight of a batch's median gap in the revisit estimate


class SensorCoverage:
    """Coverage, revisit and detection probability of each sensor, learned from plots.

    ``re_m``: earth radius at the tracker origin (m); ``origin_alt_m``: height of the tracker
    frame origin; ``range_margin``: factor on the largest range seen."""

    def __init__(self, re_m: float, origin_alt_m: float, range_margin: float = 1.05) -> None:
        self.re_m = float(re_m)
        self.origin_alt_m = float(origin_alt_m)
        self.range_margin = float(range_margin)
        self.site = np.zeros((0, 3))
        self.site_alt_m = np.zeros(0)
        self.max_range_m = np.zeros(0)
        self.revisit_s = np.zeros(0)  # NaN until learned
        self.scanning = np.zeros(0, bool)  # a radar (looks can be missed), not ADS-B
        self._hits = np.zeros(0)
        self._looks = np.zeros(0)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._ready = False
        self._min_revisit = np.inf

    @property
    def n(self) -> int:
        return len(self.site_alt_m)

    @property
    def ready(self) -> bool:
        """Some sensor has a learned revisit and range."""
        return self._ready

    @property
    def min_revisit_s(self) -> float:
        """The shortest learned revisit (inf if none)."""
        return self._min_revisit

    @property
    def pd(self) -> np.ndarray:
        """Learned detection probability per sensor (NaN until it has looked twice)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._looks > 0, self._hits / np.maximum(self._looks, 1e-12), np.nan)

    def ensure(self, n_sensors: int) -> None:
        """Make room for ``n_sensors`` sensors."""
        k = n_sensors - self.n
        if k <= 0:
            return
        self.site = np.concatenate([self.site, np.zeros((k, 3))])
        self.site_alt_m = np.concatenate([self.site_alt_m, np.zeros(k)])
        self.max_range_m = np.concatenate([self.max_range_m, np.zeros(k)])
        self.revisit_s = np.concatenate([self.revisit_s, np.full(k, np.nan)])
        self.scanning = np.concatenate([self.scanning, np.zeros(k, bool)])
        self._hits = np.concatenate([self._hits, np.zeros(k)])
        self._looks = np.concatenate([self._looks, np.zeros(k)])

    def observe_sites(self, sensors: np.ndarray, site_enu: np.ndarray, site_alt_m: np.ndarray):
        """The sites (tracker ENU, and height) of ``sensors`` as of their latest plots."""
        self.ensure(int(sensors.max()) + 1)
        self.site[sensors] = site_enu
        self.site_alt_m[sensors] = site_alt_m

    def observe_plots(self, sensor: np.ndarray, pos: np.ndarray) -> None:
        """Plots of ``sensor`` (index per plot, sites known) at positions ``pos`` (tracker
        ENU): the largest range of each sensor (:func:`.kernels.management.sensor_ranges`)."""
        sensor_ranges(
            sensor, np.ascontiguousarray(pos, dtype=np.float64), self.site, self.max_range_m
        )

    def observe_gaps(self, sensor: np.ndarray, gap_s: np.ndarray) -> None:
        """Times ``gap_s`` between a track's plot from ``sensor`` and its previous plot from the
        same sensor; kept until :meth:`learn`."""
        ok = np.isfinite(gap_s) & (gap_s > _MIN_GAP_S)
        if ok.any():
            self._pending.append((sensor[ok], gap_s[ok]))

    def learn(self) -> None:
        """Revisit and detection probability estimates from the gaps observed since the last
        call (one batch: the median gap per sensor, blended into the running estimate)."""
        if not self._pending:
            return
        sensor = np.concatenate([p[0] for p in self._pending])
        gap_s = np.concatenate([p[1] for p in self._pending])
        self._pending.clear()
        o = np.lexsort((gap_s, sensor))
        sensor, gap_s = sensor[o], gap_s[o]
        first = np.flatnonzero(np.r_[True, sensor[1:] != sensor[:-1]])
        count = np.diff(np.r_[first, len(sensor)])
        s_u = sensor[first]
        med = 0.5 * (gap_s[first + (count - 1) // 2] + gap_s[first + count // 2])
        rev = self.revisit_s[s_u]
        rev = np.where(np.isnan(rev), med, (1 - _BLEND) * rev + _BLEND * med)
        self.revisit_s[s_u] = rev
        looks = np.maximum(1.0, np.round(gap_s / np.repeat(rev, count)))
        self._hits[s_u] = _FORGET * self._hits[s_u] + count
        self._looks[s_u] = _FORGET * self._looks[s_u] + np.add.reduceat(looks, first)
        known = np.isfinite(self.revisit_s) & (self.max_range_m > 0)
        self._ready = bool(known.any())
        self._min_revisit = float(self.revisit_s[known].min()) if self._ready else np.inf

    def covered(self, pos: np.ndarray, sensors: np.ndarray) -> np.ndarray:
        """(K, S) whether each of K positions (tracker ENU) is inside the coverage of each of
        the sensors with indices ``sensors`` (S,)."""
        site = self.site[sensors]  # (S, 3)
        d = pos[:, None, :] - site[None, :, :]
        slant = np.linalg.norm(d, axis=2)
        horiz = np.hypot(d[..., 0], d[..., 1])
        # heights above the sphere: the ENU 'up' plus the drop of the earth's surface
        h_t = pos[:, 2] + (pos[:, 0] ** 2 + pos[:, 1] ** 2) / (2 * self.re_m) + self.origin_alt_m
        kre2 = 2.0 * K_REFRACTION * self.re_m
        d_h = (
            np.sqrt(kre2 * np.maximum(self.site_alt_m[sensors], 0.0))[None, :]
            + np.sqrt(kre2 * np.maximum(h_t, 0.0))[:, None]
        )
        return (horiz <= d_h) & (slant <= self.range_margin * self.max_range_m[sensors][None, :])
