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

from siap.geo import (
    LocalFrame,
    ecef_to_geodetic,
    ecef_to_polar,
    enu_rotation,
)
from siap.records import MeasurementKind, empty_plots

__all__ = [
    "cv_targets",
    "tabulated",
    "wna_truth",
    "turn_truth",
    "radar_3d_plots",
    "adsb_plots",
    "Trajectory",
]

Trajectory = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""f(target index (K,), time s (K,)) -> (position ENU (K, 3), velocity ENU (K, 3))."""


def cv_targets(
    n: int,
    rng: np.random.Generator,
    *,
    half_width_m: float = 50_000.0,
    speed_mps: tuple[float, float] = (100.0, 300.0),
    alt_m: tuple[float, float] = (2000.0, 11000.0),
    t0: float = 0.0,
) -> Trajectory:
    """``n`` constant-velocity targets starting uniformly in a square of the given half width."""
    p0 = np.column_stack([rng.uniform(-half_width_m, half_width_m, (n, 2)), rng.uniform(*alt_m, n)])
    heading = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(*speed_mps, n)
    v = np.column_stack([speed * np.sin(heading), speed * np.cos(heading), np.zeros(n)])

    def f(idx: np.ndarray, t: np.ndarray):
        return p0[idx] + v[idx] * (t - t0)[:, None], v[idx].copy()

    return f


def tabulated(times_s: np.ndarray, pos: np.ndarray, vel: np.ndarray) -> Trajectory:
    """Trajectory from tabulated states ``pos``/``vel`` of shape (n_targets, n_times, 3) on a
    common time grid; positions between samples by cubic Hermite interpolation."""
    times_s = np.asarray(times_s, float)

    def f(idx: np.ndarray, t: np.ndarray):
        k = np.clip(np.searchsorted(times_s, t, side="right") - 1, 0, len(times_s) - 2)
        h = times_s[k + 1] - times_s[k]
        s = ((t - times_s[k]) / h)[:, None]
        p0, p1 = pos[idx, k], pos[idx, k + 1]
        v0, v1 = vel[idx, k] * h[:, None], vel[idx, k + 1] * h[:, None]
        h00, h10, h01, h11 = (
            2 * s**3 - 3 * s**2 + 1,
            s**3 - 2 * s**2 + s,
            -2 * s**3 + 3 * s**2,
            s**3 - s**2,
        )
        p = h00 * p0 + h10 * v0 + h01 * p1 + h11 * v1
        dv = (
            (6 * s**2 - 6 * s) * p0
            + (3 * s**2 - 4 * s + 1) * v0
            + (-6 * s**2 + 6 * s) * p1
            + (3 * s**2 - 2 * s) * v1
        )
        return p, dv / h[:, None]

    return f


def wna_truth(
    n: int,
    n_steps: int,
    dt_s: float,
    q_m2ps3: float,
    rng: np.random.Generator,
    *,
    spacing_m: float = 40_000.0,
    alt_m: float = 8000.0,
    speed_mps: float = 200.0,
):
    """Targets following the discretised continuous white-noise-acceleration model exactly
    (BLK eq. 6.2.2-12, same q on all three axes): returns (times (n_steps,), pos, vel) with
    pos/vel (n, n_steps, 3). Targets start on a grid ``spacing_m`` apart."""
    side = int(np.ceil(np.sqrt(n)))
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    p = np.column_stack([gx.ravel()[:n], gy.ravel()[:n], np.zeros(n)]) * spacing_m
    p[:, :2] -= p[:, :2].mean(axis=0)
    p[:, 2] = alt_m
    hd = rng.uniform(0, 2 * np.pi, n)
    v = np.column_stack([speed_mps * np.sin(hd), speed_mps * np.cos(hd), np.zeros(n)])
    T = dt_s
    Q1 = q_m2ps3 * np.array([[T**3 / 3, T**2 / 2], [T**2 / 2, T]])
    L = np.linalg.cholesky(Q1)
    pos = np.empty((n, n_steps, 3))
    vel = np.empty((n, n_steps, 3))
    for k in range(n_steps):
        pos[:, k], vel[:, k] = p, v
        w = np.einsum("ij,naj->nai", L, rng.normal(size=(n, 3, 2)))  # (n, axis, [pos, vel])
        p = p + T * v + w[:, :, 0]
        v = v + w[:, :, 1]
    return np.arange(n_steps) * dt_s, pos, vel


def turn_truth(
    speed_mps: float,
    turn_start_s: float,
    turn_s: float,
    turn_rate_rps: float,
    duration_s: float,
    step_s: float = 0.05,
    start_enu=(0.0, -30_000.0, 8000.0),
):
    """One target flying north, then a coordinated turn at ``turn_rate_rps`` for ``turn_s``,
    then straight again; returns (times, pos (1, K, 3), vel (1, K, 3))."""
    t = np.arange(0.0, duration_s + step_s, step_s)
    heading = np.clip(t - turn_start_s, 0.0, turn_s) * turn_rate_rps
    vel = np.stack(
        [speed_mps * np.sin(heading), speed_mps * np.cos(heading), np.zeros_like(t)], axis=1
    )
    pos = np.asarray(start_enu, float) + np.concatenate(
        [np.zeros((1, 3)), np.cumsum(0.5 * (vel[1:] + vel[:-1]) * step_s, axis=0)]
    )
    return t, pos[None], vel[None]


def radar_3d_plots(
    traj: Trajectory,
    n_targets: int,
    frame: LocalFrame,
    site_enu,
    *,
    t0: float,
    n_scans: int,
    scan_s: float,
    sigma_range_m: float,
    sigma_az_rad: float,
    sigma_el_rad: float,
    pd: float,
    clutter_per_scan: float,
    rng: np.random.Generator,
    clutter_half_width_m: float = 50_000.0,
    sensor_id: str = "R3D",
    mode_s: np.ndarray | None = None,
    plot_id_start: int = 0,
) -> np.ndarray:
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
        pl["azimuth_rad"] = np.mod(
            np.concatenate([az[det] + rng.normal(0, sigma_az_rad, nd), caz]), 2 * np.pi
        )
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


def adsb_plots(
    traj: Trajectory,
    targets: np.ndarray,
    frame: LocalFrame,
    *,
    t0: float,
    duration_s: float,
    period_s: float,
    sigma_h_m: float,
    sigma_v_m: float,
    rng: np.random.Generator,
    mode_s: np.ndarray,
    sensor_id: str = "ADSB",
    plot_id_start: int = 1_000_000_000,
) -> np.ndarray:
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
