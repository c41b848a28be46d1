"""1090ES ADS-B ground receiver.

Report rate: an airborne 1090ES transmitter broadcasts an airborne-position squitter every
0.4-0.6 s (DO-260B sec. 2.2.3.3.1.4.1, i.e. ~2 Hz alternating even/odd CPR formats); a ground
station (or an aggregator such as OpenSky) usually delivers about one decoded position per
second per aircraft after CPR decoding and de-duplication. We model the delivered reports:
one every ``report_interval_s`` (default 1 s) with a uniform jitter of +-``jitter_s``
(default 0.2 s), each received with probability ``reception_probability`` while the aircraft
is within ``max_range_km`` and above the 4/3-earth radio horizon of the antenna
(:func:`siap.geo.radar_horizon_range_m`; 1090 MHz propagates like radar). Expected rate:
``reception_probability / report_interval_s``.

Accuracy: the horizontal error is Gaussian, independent per axis (east, north) with
``sigma = EPU / 2.448`` where EPU is the 95 % bound of the aircraft's NACp (DO-260B Table
2-70; :func:`siap.sensors.base.nacp_sigma_m`); errors are white from report to report (real
GNSS errors are correlated over minutes; not modelled). Altitude is the barometric
altitude quantised to 25 ft (DO-260B sec. 2.2.3.2.3.4, Q-bit = 1). ``cov`` is
``diag(sigma^2, sigma^2, (25 ft)^2 / 12)`` in local east-north-up at the reported point
(see :class:`siap.records.MeasurementKind`). Reports carry the Mode S address, callsign and
Mode 3/A code.
"""

from __future__ import annotations

import math

import numpy as np

from siap import geo
from siap.records import MeasurementKind, empty_plots
from siap.scenario.kinematics import TruthGrid
from siap.scenario.models import AdsbReceiver
from siap.sensors.base import ADSB_ALT_STEP_M, NACP_EPU_M, SensorInfo, nacp_sigma_m

__all__ = ["adsb_info", "simulate_adsb"]


def adsb_info(spec: AdsbReceiver) -> SensorInfo:
    sig = {f"horizontal_m_nacp{k}": float(nacp_sigma_m(k)[0]) for k in NACP_EPU_M}
    sig["altitude_m"] = ADSB_ALT_STEP_M / math.sqrt(12.0)
    return SensorInfo(
        id=spec.id,
        partner=spec.partner,
        type=spec.type,
        kind=MeasurementKind.ADSB,
        lat_deg=spec.lat_deg,
        lon_deg=spec.lon_deg,
        alt_m=spec.alt_m,
        scan_period_s=spec.report_interval_s,
        max_range_m=spec.max_range_m,
        sigmas=sig,
        biases={"range_m": 0.0, "azimuth_rad": 0.0, "elevation_rad": 0.0, "time_s": 0.0},
    )


def simulate_adsb(spec: AdsbReceiver, truth: TruthGrid, rng: np.random.Generator, t0: float, t_end: float):
    """ADS-B reports of one receiver over [t0, t_end). Returns (plots, counts dict)."""
    eq = np.flatnonzero(truth.adsb_equipped & truth.alive.any(axis=1))
    first, last = truth.lifetime_s()
    period, jit = spec.report_interval_s, spec.jitter_s
    site_ecef = geo.geodetic_to_ecef(spec.lat_deg, spec.lon_deg, spec.alt_m)[0]
    if len(eq):
        # skip aircraft that never come within range (coarse check on the grid)
        step = max(1, int(round(10.0 / truth.dt_s)))
        d = np.linalg.norm(truth.pos_ecef_m[eq, ::step] - site_ecef, axis=-1)
        near = np.nanmin(np.where(np.isfinite(d), d, np.inf), axis=1) <= spec.max_range_m + 40e3
        eq = eq[near]
    n_ac = len(eq)
    kmax = int(math.ceil((t_end - t0) / (period - jit))) + 2
    start = np.maximum(first[eq], t0) + rng.uniform(0.0, period, n_ac)
    steps = period + rng.uniform(-jit, jit, (n_ac, kmax))
    steps[:, 0] = 0.0
    times = start[:, None] + np.cumsum(steps, axis=1)
    received = rng.random((n_ac, kmax)) < spec.reception_probability
    noise = rng.standard_normal((n_ac, kmax, 2))
    ok = (times <= last[eq][:, None]) & (times < t_end)
    ii, kk = np.nonzero(ok)
    idx = eq[ii]
    t = times[ii, kk]
    pos, _, alt, valid = truth.interp(idx, t)
    rng_m = np.linalg.norm(pos - site_ecef, axis=1)
    seen = valid & (rng_m <= spec.max_range_m) & (rng_m <= geo.radar_horizon_range_m(spec.alt_m, alt))
    n_opp = int(seen.sum())
    sel = seen & received[ii, kk]
    idx, t, pos, alt = idx[sel], t[sel], pos[sel], alt[sel]
    nz = noise[ii[sel], kk[sel]]
    n = len(idx)
    sigma = nacp_sigma_m(truth.nacp[idx]) if n else np.zeros(0)
    lat_t, lon_t, _ = geo.ecef_to_geodetic(pos) if n else (np.zeros(0), np.zeros(0), None)
    rot = geo.enu_rotation(lat_t, lon_t)
    d_enu = np.stack([sigma * nz[:, 0], sigma * nz[:, 1], np.zeros(n)], axis=-1)
    pos_meas = pos + (np.einsum("nji,nj->ni", rot, d_enu) if n else np.zeros((0, 3)))
    lat, lon, _ = geo.ecef_to_geodetic(pos_meas) if n else (np.zeros(0), np.zeros(0), None)
    out = empty_plots(n)
    out["time_s"] = t
    out["sensor_id"] = spec.id
    out["partner"] = spec.partner
    out["kind"] = int(MeasurementKind.ADSB)
    out["sensor_lat_deg"], out["sensor_lon_deg"], out["sensor_alt_m"] = spec.lat_deg, spec.lon_deg, spec.alt_m
    out["lat_deg"], out["lon_deg"] = lat, lon
    out["alt_m"] = np.round(alt / ADSB_ALT_STEP_M) * ADSB_ALT_STEP_M
    cov = np.zeros((n, 3, 3))
    cov[:, 0, 0] = cov[:, 1, 1] = sigma**2
    cov[:, 2, 2] = ADSB_ALT_STEP_M**2 / 12.0
    out["cov"] = cov
    out["mode_s_address"] = truth.mode_s_address[idx]
    out["mode_3a"] = truth.mode_3a[idx]
    out["callsign"] = truth.callsign[idx]
    out["truth_id"] = idx
    counts = {
        "aircraft": int(n_ac),
        "opportunities": n_opp,
        "detections": int(n),
        "false_alarms": 0,
        "plots": int(n),
    }
    return out, counts
