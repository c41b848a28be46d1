"""Rotating surveillance radar, on the ground or on an aircraft, with co-located SSR.

Model (all vectorised over targets and scans):

* The antenna turns at constant rate from ``start_azimuth_deg`` at the scenario start,
  clockwise (or counterclockwise), azimuth from true north (an airborne rotodome is taken as
  stabilised to true north). Beam azimuth: ``b(t) = b0 +- 2 pi (t - t0) / T``.
* A target is illuminated when the beam passes it: for each scan the crossing time is solved
  for the moving target (and moving platform) by the fixed-point iteration
  ``t <- t + T wrap(az(t) - b(t)) / (2 pi)`` which converges because the target's azimuth rate
  is far below the antenna's. Near the start azimuth a scan may hold zero or two crossings,
  so guesses are seeded on both sides and merged. A target whose azimuth rate approaches the
  antenna's (passing within a few km of the site) may not converge and is then not plotted,
  much like the cone of silence above a real radar. Plots are time-stamped at the crossing
  (plus the declared clock bias), not at scan end.
* Coverage: ``min_range <= r <= max_range``, ``r <=`` 4/3-earth radar horizon
  (:func:`siap.geo.radar_horizon_range_m`) and the apparent elevation (geometric elevation
  plus 4/3-earth refraction, :func:`~siap.sensors.base.apparent_elevation_rad`) within
  [min_elevation, max_elevation].
* Primary detection: Bernoulli with the Swerling I ``Pd(r)`` of
  :func:`~siap.sensors.base.swerling1_pd`. Secondary (SSR/Mode S): cooperative targets reply
  with probability ``ssr.pd``; a reply carries the Mode S address, Mode 3/A, callsign (Mode S
  flight identity) and Mode C altitude quantised to 100 ft. A plot is produced when either
  detects (a combined PSR/SSR plot).
* Measurement: true (range, azimuth, elevation) from the sensor at the crossing time plus
  declared biases plus independent Gaussian noise of the declared sigmas (Bar-Shalom, Li &
  Kirubarajan, *Estimation with Applications to Tracking and Navigation*, sec. 10.4: polar
  measurement model). ``cov`` is the declared noise covariance (biases are not in it: they
  are unknown to the receiver of the plots).
* False alarms: Poisson with mean ``false_alarms_per_scan`` per scan, uniform in area over the
  annulus [min_range, max_range] x [0, 2 pi) (range = sqrt of a uniform draw in r^2), elevation
  uniform over [max(min_el, -5 deg), min(max_el, 30 deg)], stamped when the beam passes
  their azimuth.

3D radars report range/azimuth/elevation (``MeasurementKind.RADAR_3D``; ``lat/lon/alt_m`` of
the plot are the measured point converted to geodetic, for display). 2D radars report
range/azimuth and the Mode C altitude when there is one (``RADAR_2D``; ``elevation_rad`` is
NaN, ``cov[2, 2]`` the 100 ft quantisation variance or ``inf``; ``lat/lon`` from range,
azimuth and Mode C altitude on a spherical earth, NaN without altitude).
"""

from __future__ import annotations

import math

import numpy as np

from siap import geo
from siap.records import MeasurementKind, empty_plots
from siap.scenario.kinematics import TruthGrid
from siap.scenario.models import AirborneRadar, GroundRadar
from siap.sensors.base import MODE_C_STEP_M, SensorInfo, apparent_elevation_rad, swerling1_pd

__all__ = ["RadarSite", "radar_info", "simulate_radar"]

TWO_PI = 2.0 * np.pi


def _wrap_pi(a):
    return (a + np.pi) % TWO_PI - np.pi


class RadarSite:
    """Where the radar is at time t: fixed site or a platform on a :class:`TruthGrid`."""

    def __init__(self, lat_deg=None, lon_deg=None, alt_m=None, platform: TruthGrid | None = None):
        self.platform = platform
        if platform is None:
            self.lat, self.lon, self.alt = float(lat_deg), float(lon_deg), float(alt_m)
            self.ecef = geo.geodetic_to_ecef(self.lat, self.lon, self.alt)[0]
            self.rot = geo.enu_rotation(self.lat, self.lon)

    def at(self, t):
        """(ecef (M,3), rotation (M,3,3) or (3,3), lat, lon, alt arrays) at times t."""
        t = np.atleast_1d(t)
        if self.platform is None:
            n = len(t)
            return (
                np.broadcast_to(self.ecef, (n, 3)),
                self.rot,
                np.full(n, self.lat),
                np.full(n, self.lon),
                np.full(n, self.alt),
            )
        idx = np.zeros(len(t), dtype=np.int64)
        pos, _, _, _ = self.platform.interp(idx, np.clip(t, self.platform.t0_s, self.platform.times_s[-1]))
        lat, lon, alt = self.platform.geodetic_interp(idx, t)
        return pos, geo.enu_rotation(lat, lon), lat, lon, alt


def _to_enu(rot, d):
    if rot.ndim == 2:
        return d @ rot.T
    return np.einsum("nij,nj->ni", rot, d)


def _polar(site: RadarSite, truth: TruthGrid, idx, t):
    pos, _, alt_t, valid = truth.interp(idx, t)
    s_ecef, rot, slat, slon, salt = site.at(t)
    enu = _to_enu(rot, pos - s_ecef)
    rng, az, el = geo.enu_to_polar(enu)
    ground = np.hypot(enu[:, 0], enu[:, 1])
    return rng, az, el, ground, alt_t, valid, (slat, slon, salt)


def radar_info(spec: GroundRadar | AirborneRadar, platform: TruthGrid | None = None) -> SensorInfo:
    kind = MeasurementKind.RADAR_3D if spec.dimension == "3d" else MeasurementKind.RADAR_2D
    if platform is not None:
        lat, lon, alt = spec.platform.lat_deg, spec.platform.lon_deg, spec.platform.alt_m
        track = np.zeros(platform.n_steps, dtype=[("time_s", "f8"), ("lat_deg", "f8"), ("lon_deg", "f8"), ("alt_m", "f8")])
        track["time_s"] = platform.times_s
        track["lat_deg"], track["lon_deg"], track["alt_m"] = platform.lat_deg[0], platform.lon_deg[0], platform.alt_m[0]
    else:
        lat, lon, alt, track = spec.lat_deg, spec.lon_deg, spec.alt_m, None
    sig = {"range_m": spec.range_sigma_m, "azimuth_rad": math.radians(spec.azimuth_sigma_deg)}
    if kind == MeasurementKind.RADAR_3D:
        sig["elevation_rad"] = math.radians(spec.elevation_sigma_deg)
    else:
        sig["altitude_m"] = MODE_C_STEP_M / math.sqrt(12.0)
    b = spec.bias
    return SensorInfo(
        id=spec.id,
        partner=spec.partner,
        type=spec.type,
        kind=kind,
        lat_deg=lat,
        lon_deg=lon,
        alt_m=alt,
        scan_period_s=spec.scan_period_s,
        max_range_m=spec.max_range_m,
        min_range_m=spec.min_range_m,
        min_elevation_deg=spec.min_elevation_deg,
        max_elevation_deg=spec.max_elevation_deg,
        sigmas=sig,
        biases={
            "range_m": b.range_m,
            "azimuth_rad": math.radians(b.azimuth_deg),
            "elevation_rad": math.radians(b.elevation_deg),
            "time_s": b.time_s,
        },
        pd_ref=spec.detection.pd_at_ref_range,
        pd_ref_range_m=spec.detection.ref_range_km * 1e3,
        pfa=spec.detection.pfa,
        false_alarms_per_scan=spec.false_alarms_per_scan,
        ssr_pd=spec.ssr.pd if spec.ssr is not None else None,
        platform_track=track,
    )


def beam_crossings(site: RadarSite, truth: TruthGrid, cand: np.ndarray, t0: float, t_end: float, period: float, az0: float, sign: float, iterations: int = 5):
    """Times at which the beam passes each candidate target, one per scan: (target idx, t)."""
    first, last = truth.lifetime_s()
    cand = cand[np.isfinite(first[cand])]
    if len(cand) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    lo = np.floor((np.maximum(first[cand], t0) - t0) / period).astype(np.int64) - 1
    hi = np.floor((np.minimum(last[cand], t_end) - t0) / period).astype(np.int64) + 1
    counts = np.maximum(hi - lo + 1, 0)
    idx = np.repeat(cand, counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    m = np.repeat(lo, counts) + offs
    t_mid = np.clip(t0 + period * (m + 0.5), first[idx], last[idx])
    _, az, *_ = _polar(site, truth, idx, t_mid)
    frac = np.mod(sign * (az - az0), TWO_PI) / TWO_PI
    t = t0 + period * (m + frac)
    # near the scan's start azimuth a scan can hold zero or two crossings of a moving target:
    # seed a second guess one period away; duplicates are merged below
    lo_edge, hi_edge = frac < 0.1, frac > 0.9
    idx = np.concatenate([idx, idx[lo_edge], idx[hi_edge]])
    t = np.concatenate([t, t[lo_edge] + period, t[hi_edge] - period])
    for _ in range(iterations):
        tc = np.clip(t, first[idx], last[idx])
        _, az, *_ = _polar(site, truth, idx, tc)
        beam = az0 + sign * TWO_PI * (t - t0) / period
        t = t + period * _wrap_pi(sign * (az - beam)) / TWO_PI
    _, az, *_ = _polar(site, truth, idx, t)
    beam = az0 + sign * TWO_PI * (t - t0) / period
    ok = np.isfinite(az) & (np.abs(_wrap_pi(az - beam)) < 1e-4) & (t >= t0) & (t < t_end)
    idx, t = idx[ok], t[ok]
    order = np.lexsort((t, idx))
    idx, t = idx[order], t[order]
    dup = np.zeros(len(t), dtype=bool)
    dup[1:] = (idx[1:] == idx[:-1]) & (t[1:] - t[:-1] < 0.5 * period)
    return idx[~dup], t[~dup]


def simulate_radar(spec: GroundRadar | AirborneRadar, truth: TruthGrid, rng: np.random.Generator, t0: float, t_end: float, platform: TruthGrid | None = None):
    """Plots of one rotating radar over [t0, t_end). Returns (plots, counts dict)."""
    site = RadarSite(platform=platform) if platform is not None else RadarSite(spec.lat_deg, spec.lon_deg, spec.alt_m)
    T = spec.scan_period_s
    az0 = math.radians(spec.start_azimuth_deg)
    sign = 1.0 if spec.rotation == "clockwise" else -1.0
    kind = MeasurementKind.RADAR_3D if spec.dimension == "3d" else MeasurementKind.RADAR_2D
    # candidates: targets that come within reach at some grid time (coarse, generous)
    step = max(1, int(round(10.0 / truth.dt_s)))
    grid_t = truth.times_s[::step]
    s_ecef, *_ = site.at(grid_t)
    reach = spec.max_range_m + 30e3 + 300.0 * step * truth.dt_s
    d = np.linalg.norm(truth.pos_ecef_m[:, ::step] - s_ecef[None, :, :], axis=-1)
    cand = np.flatnonzero(np.nanmin(np.where(np.isfinite(d), d, np.inf), axis=1, initial=np.inf) <= reach)
    idx, t = beam_crossings(site, truth, cand, t0, t_end, T, az0, sign)
    rng_m, az, el, ground, alt_t, valid, (slat, slon, salt) = _polar(site, truth, idx, t)
    el_app = apparent_elevation_rad(el, ground)
    horizon = geo.radar_horizon_range_m(salt, alt_t)
    cover = (
        valid
        & (rng_m >= spec.min_range_m)
        & (rng_m <= spec.max_range_m)
        & (rng_m <= horizon)
        & (el_app >= math.radians(spec.min_elevation_deg))
        & (el_app <= math.radians(spec.max_elevation_deg))
    )
    idx, t, rng_m, az, el, alt_t = idx[cover], t[cover], rng_m[cover], az[cover], el[cover], alt_t[cover]
    slat, slon, salt = slat[cover], slon[cover], salt[cover]
    n = len(idx)
    det = spec.detection
    pd = swerling1_pd(rng_m, det.ref_range_km * 1e3, det.pd_at_ref_range, det.pfa)
    psr = rng.random(n) < pd
    coop = truth.cooperative[idx]
    ssr_pd = spec.ssr.pd if spec.ssr is not None else 0.0
    ssr = coop & (rng.random(n) < ssr_pd)
    hit = psr | ssr
    sel = np.flatnonzero(hit)
    b = spec.bias
    sr, sa, se = spec.range_sigma_m, math.radians(spec.azimuth_sigma_deg), math.radians(spec.elevation_sigma_deg)
    noise = rng.standard_normal((n, 3))[sel]
    out = empty_plots(len(sel))
    out["time_s"] = t[sel] + b.time_s
    out["sensor_id"] = spec.id
    out["partner"] = spec.partner
    out["kind"] = int(kind)
    out["sensor_lat_deg"], out["sensor_lon_deg"], out["sensor_alt_m"] = slat[sel], slon[sel], salt[sel]
    out["range_m"] = rng_m[sel] + b.range_m + sr * noise[:, 0]
    out["azimuth_rad"] = np.mod(az[sel] + math.radians(b.azimuth_deg) + sa * noise[:, 1], TWO_PI)
    out["truth_id"] = idx[sel]
    reply = ssr[sel]
    ti = idx[sel]
    out["mode_s_address"] = np.where(reply, truth.mode_s_address[ti], -1)
    out["mode_3a"] = np.where(reply, truth.mode_3a[ti], -1)
    out["callsign"] = np.where(reply & (truth.mode_s_address[ti] >= 0), truth.callsign[ti], "")
    mode_c = np.round(alt_t[sel] / MODE_C_STEP_M) * MODE_C_STEP_M
    cov = np.zeros((len(sel), 3, 3))
    cov[:, 0, 0], cov[:, 1, 1] = sr**2, sa**2
    if kind == MeasurementKind.RADAR_3D:
        out["elevation_rad"] = el[sel] + math.radians(b.elevation_deg) + se * noise[:, 2]
        cov[:, 2, 2] = se**2
    else:
        out["alt_m"] = np.where(reply, mode_c, np.nan)
        cov[:, 2, 2] = np.where(reply, MODE_C_STEP_M**2 / 12.0, np.inf)
    out["cov"] = cov
    # false alarms
    n_scans = int(math.ceil((t_end - t0) / T - 1e-9))
    fa = _false_alarms(spec, site, rng, t0, t_end, T, az0, sign, n_scans, kind)
    _fill_geodetic(out, kind)
    plots = np.concatenate([out, fa])
    counts = {
        "scans": n_scans,
        "opportunities": int(n),
        "detections": int(len(sel)),
        "primary_detections": int(psr.sum()),
        "ssr_replies": int(ssr.sum()),
        "false_alarms": int(len(fa)),
        "plots": int(len(plots)),
    }
    return plots, counts


def _false_alarms(spec, site, rng, t0, t_end, T, az0, sign, n_scans, kind):
    lam = spec.false_alarms_per_scan
    per_scan = rng.poisson(lam, n_scans) if lam > 0 else np.zeros(n_scans, dtype=np.int64)
    n = int(per_scan.sum())
    scan = np.repeat(np.arange(n_scans), per_scan)
    az = rng.uniform(0.0, TWO_PI, n)
    r2 = rng.uniform(spec.min_range_m**2, spec.max_range_m**2, n)
    el_lo = math.radians(max(spec.min_elevation_deg, -5.0))
    el_hi = math.radians(min(spec.max_elevation_deg, 30.0))
    el = rng.uniform(el_lo, max(el_hi, el_lo), n)
    t = t0 + T * (scan + np.mod(sign * (az - az0), TWO_PI) / TWO_PI)
    keep = t < t_end
    t, az, r2, el = t[keep], az[keep], r2[keep], el[keep]
    n = len(t)
    _, _, slat, slon, salt = site.at(t) if n else (None, None, np.zeros(0), np.zeros(0), np.zeros(0))
    out = empty_plots(n)
    out["time_s"] = t + spec.bias.time_s
    out["sensor_id"] = spec.id
    out["partner"] = spec.partner
    out["kind"] = int(kind)
    out["sensor_lat_deg"], out["sensor_lon_deg"], out["sensor_alt_m"] = slat, slon, salt
    out["range_m"] = np.sqrt(r2)
    out["azimuth_rad"] = az
    sr, sa, se = spec.range_sigma_m, math.radians(spec.azimuth_sigma_deg), math.radians(spec.elevation_sigma_deg)
    cov = np.zeros((n, 3, 3))
    cov[:, 0, 0], cov[:, 1, 1] = sr**2, sa**2
    if kind == MeasurementKind.RADAR_3D:
        out["elevation_rad"] = el
        cov[:, 2, 2] = se**2
    else:
        cov[:, 2, 2] = np.inf
    out["cov"] = cov
    _fill_geodetic(out, kind)
    return out


def _fill_geodetic(out, kind):
    """Display position of each plot (see module docstring)."""
    if len(out) == 0:
        return
    if kind == MeasurementKind.RADAR_3D:
        el = out["elevation_rad"]
        ok = np.ones(len(out), dtype=bool)
    else:
        R = geo.EARTH_MEAN_RADIUS_M
        r = out["range_m"]
        hs, ht = out["sensor_alt_m"], out["alt_m"]
        # law of cosines on a sphere: (R+ht)^2 = (R+hs)^2 + r^2 + 2 r (R+hs) sin(el)
        s = ((R + ht) ** 2 - (R + hs) ** 2 - r**2) / (2 * r * (R + hs))
        ok = np.isfinite(s) & (np.abs(s) <= 1)
        el = np.arcsin(np.clip(np.where(ok, s, 0.0), -1, 1))
    if not ok.any():
        return
    ecef = geo.polar_to_ecef(out["range_m"][ok], out["azimuth_rad"][ok], el[ok], out["sensor_lat_deg"][ok], out["sensor_lon_deg"][ok], out["sensor_alt_m"][ok])
    lat, lon, alt = geo.ecef_to_geodetic(ecef)
    out["lat_deg"][ok] = lat
    out["lon_deg"][ok] = lon
    if kind == MeasurementKind.RADAR_3D:
        out["alt_m"][ok] = alt
