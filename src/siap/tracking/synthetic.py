"""Small synthetic plot generator for tests and speed measurements of the tracker.

Targets fly straight lines at constant velocity in the local ENU frame of a
:class:`siap.geo.LocalFrame` (or any trajectory given as a callable). A rotating 3D radar sees
each target once per scan at the time its beam passes it, with Gaussian noise in range,
azimuth and elevation, detection probability ``pd`` and Poisson clutter uniform in a square;
ADS-B reports positions with Gaussian ENU noise. ``truth_id`` is filled for analysis only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from siap.geo import LocalFrame, ecef_to_geodetic, ecef_to_polar, enu_rotation, geodetic_to_ecef, polar_to_ecef
from siap.records import MeasurementKind, empty_plots

__all__ = ["cv_targets", "radar_3d_plots", "adsb_plots", "Trajectory"]

Trajectory = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""f(target index (K,), time s (K,)) -> (position ENU (K, 3), velocity ENU (K, 3))."""


def cv_targets(n: int, rng: np.random.Generator, *, half_width_m: float = 50_000.0,
               speed_mps: tuple[float, float] = (100.0, 300.0),
               alt_m: tuple[float, float] = (2000.0, 11000.0), t0: float = 0.0) -> Trajectory:
    """``n`` constant-velocity targets starting uniformly in a square of the given half width."""
    p0 = np.column_stack([rng.uniform(-half_width_m, half_width_m, (n, 2)), rng.uniform(*alt_m, n)])
    heading = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(*speed_mps, n)
    v = np.column_stack([speed * np.sin(heading), speed * np.cos(heading), np.zeros(n)])

    def f(idx: np.ndarray, t: np.ndarray):
        return p0[idx] + v[idx] * (t - t0)[:, None], v[idx].copy()

    return f


def radar_3d_plots(traj: Trajectory, n_targets: int, frame: LocalFrame, site_enu, *, t0: float,
                   n_scans: int, scan_s: float, sigma_range_m: float, sigma_az_rad: float,
                   sigma_el_rad: float, pd: float, clutter_per_scan: float, rng: np.random.Generator,
                   clutter_half_width_m: float = 50_000.0, sensor_id: str = "R3D",
                   mode_s: np.ndarray | None = None, plot_id_start: int = 0) -> np.ndarray:
    """Plots of a rotating 3D radar at ``site_enu`` (tracker frame), sorted by time."""
    site_ecef = frame.enu_to_ecef(np.asarray(site_enu, float))[0]
    slat, slon, salt = (float(a[0]) for a in ecef_to_geodetic(site_ecef))
    out = []
    idx_all = np.arange(n_targets)
    for k in range(n_scans):
        ts = t0 + k * scan_s
        p, _ = traj(idx_all, np.full(n_targets, ts))
        _, az, _ = ecef_to_polar(frame.enu_to_ecef(p), slat, slon, salt)
        t = ts + az / (2 * np.pi) * scan_s
        p, _ = traj(idx_all, t)
        rng_m, az, el = ecef_to_polar(frame.enu_to_ecef(p), slat, slon, salt)
        det = rng.random(n_targets) < pd
        nc = rng.poisson(clutter_per_scan)
        cxy = rng.uniform(-clutter_half_width_m, clutter_half_width_m, (nc, 2))
        cpos = np.column_stack([cxy, rng.uniform(1000, 10000, nc)])
        cr, caz, cel = ecef_to_polar(frame.enu_to_ecef(cpos), slat, slon, salt)
        ct = ts + caz / (2 * np.pi) * scan_s
        nd = int(det.sum())
        pl = empty_plots(nd + nc)
        pl["time_s"] = np.concatenate([t[det], ct])
        pl["range_m"] = np.concatenate([rng_m[det] + rng.normal(0, sigma_range_m, nd), cr])
        pl["azimuth_rad"] = np.mod(np.concatenate([az[det] + rng.normal(0, sigma_az_rad, nd), caz]), 2 * np.pi)
        pl["elevation_rad"] = np.concatenate([el[det] + rng.normal(0, sigma_el_rad, nd), cel])
        pl["truth_id"] = np.concatenate([idx_all[det], np.full(nc, -1)])
        if mode_s is not None:
            pl["mode_s_address"][:nd] = mode_s[det]
        out.append(pl)
    pl = np.concatenate(out)
    pl = pl[np.argsort(pl["time_s"], kind="stable")]
    pl["plot_id"] = plot_id_start + np.arange(len(pl))
    pl["sensor_id"] = sensor_id
    pl["partner"] = "JPN"
    pl["kind"] = int(MeasurementKind.RADAR_3D)
    pl["sensor_lat_deg"], pl["sensor_lon_deg"], pl["sensor_alt_m"] = slat, slon, salt
    pl["cov"] = np.diag([sigma_range_m**2, sigma_az_rad**2, sigma_el_rad**2])
    return pl


def adsb_plots(traj: Trajectory, targets: np.ndarray, frame: LocalFrame, *, t0: float, duration_s: float,
               period_s: float, sigma_h_m: float, sigma_v_m: float, rng: np.random.Generator,
               mode_s: np.ndarray, sensor_id: str = "ADSB", plot_id_start: int = 1_000_000_000) -> np.ndarray:
    """ADS-B position reports of the given targets every ``period_s`` with random phase."""
    targets = np.asarray(targets)
    phase = rng.uniform(0, period_s, len(targets))
    nrep = int(duration_s / period_s)
    idx = np.repeat(targets, nrep)
    t = t0 + np.repeat(phase, nrep) + np.tile(np.arange(nrep) * period_s, len(targets))
    p, _ = traj(idx, t)
    ecef = frame.enu_to_ecef(p)
    lat, lon, _ = ecef_to_geodetic(ecef)
    noise_enu = rng.normal(0, 1, (len(t), 3)) * [sigma_h_m, sigma_h_m, sigma_v_m]
    ecef_n = ecef + np.einsum("kji,kj->ki", enu_rotation(lat, lon), noise_enu)
    nlat, nlon, nalt = ecef_to_geodetic(ecef_n)
    pl = empty_plots(len(t))
    pl["time_s"] = t
    pl["lat_deg"], pl["lon_deg"], pl["alt_m"] = nlat, nlon, nalt
    pl["cov"] = np.diag([sigma_h_m**2, sigma_h_m**2, sigma_v_m**2])
    pl["mode_s_address"] = mode_s[idx]
    pl["truth_id"] = idx
    pl = pl[np.argsort(pl["time_s"], kind="stable")]
    pl["plot_id"] = plot_id_start + np.arange(len(pl))
    pl["sensor_id"] = sensor_id
    pl["partner"] = "USA"
    pl["kind"] = int(MeasurementKind.ADSB)
    return pl


# geodetic_to_ecef and polar_to_ecef are re-exported for tests that build plots by hand.
_ = (geodetic_to_ecef, polar_to_ecef)
