"""What every sensor model shares: the sensor description handed to other rooms, the detection
probability model, the ADS-B accuracy table, and the radar coverage geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from siap import geo
from siap.records import MeasurementKind

__all__ = [
    "SensorInfo",
    "swerling1_pd",
    "snr_for_pd",
    "NACP_EPU_M",
    "nacp_sigma_m",
    "apparent_elevation_rad",
    "coverage_radius_m",
    "MODE_C_STEP_M",
    "ADSB_ALT_STEP_M",
]

MODE_C_STEP_M = 100 * 0.3048  # Mode C reports pressure altitude in 100 ft increments
ADSB_ALT_STEP_M = 25 * 0.3048  # DO-260B airborne position message, Q-bit = 1: 25 ft increments

# DO-260B (RTCA, 2009), Table 2-70 "Navigation Accuracy Category for Position (NACp)":
# 95 % horizontal accuracy bound (EPU), metres. NACp 0 = unknown (treated as > 10 NM).
NACP_EPU_M = {
    0: 37040.0,
    1: 18520.0,
    2: 7408.0,
    3: 3704.0,
    4: 1852.0,
    5: 926.0,
    6: 555.6,
    7: 185.2,
    8: 92.6,
    9: 30.0,
    10: 10.0,
    11: 3.0,
}
# radius containing 95 % of a circular bivariate normal: R95 = sigma * sqrt(-2 ln 0.05)
_R95_PER_SIGMA = math.sqrt(-2.0 * math.log(0.05))  # 2.4477


def nacp_sigma_m(nacp) -> np.ndarray:
    """Per-axis (east, north) standard deviation (m) of ADS-B horizontal position error for a
    NACp value: the EPU of DO-260B Table 2-70 is a 95 % radius, so for a circular Gaussian
    ``sigma = EPU / sqrt(-2 ln 0.05) = EPU / 2.448``."""
    n = np.atleast_1d(np.asarray(nacp, dtype=int))
    epu = np.array([NACP_EPU_M[int(k)] for k in n.ravel()]).reshape(n.shape)
    return epu / _R95_PER_SIGMA


def snr_for_pd(pd_ref: float, pfa: float) -> float:
    """SNR (linear) at which a Swerling I target is detected with ``pd_ref`` for false-alarm
    probability ``pfa``: inverse of :func:`swerling1_pd`, ``SNR = ln(Pfa) / ln(Pd) - 1``."""
    return math.log(pfa) / math.log(pd_ref) - 1.0


def swerling1_pd(range_m, ref_range_m: float, pd_ref: float, pfa: float) -> np.ndarray:
    """Single-look probability of detection of a Swerling I (slowly fluctuating, Rayleigh)
    target with a square-law detector at a fixed false-alarm probability:

    ``Pd = Pfa ** (1 / (1 + SNR))`` (Skolnik, *Introduction to Radar Systems*, 3rd ed., sec.
    2.8; Richards, *Fundamentals of Radar Signal Processing*, 2nd ed., eq. 7.60), with the SNR
    following the radar range equation ``SNR(r) = SNR_ref (r_ref / r)^4`` (Skolnik eq. 2.1) and
    ``SNR_ref`` fixed by the declared ``Pd(r_ref) = pd_ref``."""
    r = np.maximum(np.asarray(range_m, dtype=float), 1.0)
    snr = snr_for_pd(pd_ref, pfa) * (ref_range_m / r) ** 4
    return pfa ** (1.0 / (1.0 + snr))


def apparent_elevation_rad(elevation_rad, ground_range_m, k: float = geo.EFFECTIVE_EARTH_FACTOR):
    """Elevation of a target as seen through a k-earth atmosphere: the geometric elevation
    (straight line, true earth) raised by ``d (1 - 1/k) / (2 R)`` because refraction bends the
    ray as if the earth had radius k R (Skolnik 3rd ed., sec. 8.2; small-angle form)."""
    return np.asarray(elevation_rad) + np.asarray(ground_range_m) * (1.0 - 1.0 / k) / (2.0 * geo.EARTH_MEAN_RADIUS_M)


def coverage_radius_m(sensor_alt_m, target_alt_m, max_range_m, min_elevation_deg=-90.0, k=geo.EFFECTIVE_EARTH_FACTOR):
    """Greatest range at which a target at ``target_alt_m`` is seen: the least of the
    instrumented range, the k-earth radar horizon (:func:`siap.geo.radar_horizon_range_m`) and
    the range where the apparent elevation falls to ``min_elevation_deg``: in a k-earth
    ``h_t - h_s = d tan(e) + d^2 / (2 k R)``, so ``d = kR(-tan e + sqrt(tan^2 e + 2 (h_t - h_s) / (kR)))``."""
    ht = np.asarray(target_alt_m, dtype=float)
    r = np.minimum(max_range_m, geo.radar_horizon_range_m(sensor_alt_m, ht, k))
    if min_elevation_deg > -89.0:
        ke = k * geo.EARTH_MEAN_RADIUS_M
        te = math.tan(math.radians(min_elevation_deg))
        disc = te * te + 2.0 * (ht - sensor_alt_m) / ke
        d = np.where(disc >= 0, ke * (-te + np.sqrt(np.maximum(disc, 0.0))), 0.0)
        r = np.minimum(r, np.maximum(d, 0.0))
    return r


@dataclass
class SensorInfo:
    """A sensor as the rest of siap sees it (maps, trackers, reports).

    ``lat_deg``/``lon_deg``/``alt_m`` is the site (for an airborne radar: the centre of its
    racetrack and the platform altitude; the platform's positions over time are in
    ``platform_track``, a structured array of (time_s, lat_deg, lon_deg, alt_m)). ``sigmas``
    and ``biases`` are the declared values in SI (``range_m``, ``azimuth_rad``,
    ``elevation_rad``, ``time_s``; ADS-B: ``horizontal_m_nacp9`` etc. and ``altitude_m``).
    """

    id: str
    partner: str
    type: str
    kind: MeasurementKind
    lat_deg: float
    lon_deg: float
    alt_m: float
    scan_period_s: float
    max_range_m: float
    min_range_m: float = 0.0
    min_elevation_deg: float = -90.0
    max_elevation_deg: float = 90.0
    sigmas: dict[str, float] = field(default_factory=dict)
    biases: dict[str, float] = field(default_factory=dict)
    pd_ref: float = float("nan")
    pd_ref_range_m: float = float("nan")
    pfa: float = float("nan")
    false_alarms_per_scan: float = 0.0
    ssr_pd: float | None = None
    platform_track: np.ndarray | None = None

    def coverage_radius_m(self, target_alt_m):
        """Range (m) within which a target at ``target_alt_m`` is seen (max range, 4/3-earth
        horizon, minimum elevation); for an airborne radar at its platform altitude."""
        return coverage_radius_m(self.alt_m, target_alt_m, self.max_range_m, self.min_elevation_deg)

    def pd_at_range(self, range_m):
        """Declared primary-radar probability of detection at ``range_m`` (NaN for ADS-B)."""
        if not np.isfinite(self.pd_ref):
            return np.full(np.shape(range_m), np.nan)
        return swerling1_pd(range_m, self.pd_ref_range_m, self.pd_ref, self.pfa)
