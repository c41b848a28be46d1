"""Scenario generators shared by the tracker benchmarks (not part of the ``siap`` package).

Two generators live here:

* :func:`make_cv_scenario` -- the Stone Soup side-by-side benchmark: nearly-constant-velocity
  targets in a square area, one 2D Cartesian position detection per detected target per scan,
  Poisson clutter uniform over the area. Everything is in a local east/north frame (metres).
* :func:`make_radar_network_scenario` -- the scale benchmark: thousands of targets seen by a
  network of rotating ground radars, producing :data:`siap.records.PLOT_DTYPE` ``RADAR_3D``
  plots time-stamped as the beam passes each target (used when ``siap.simulation`` is absent).

Plus the conversion helpers (local x/y <-> siap plots / ECEF) and a vectorised GOSPA
(:func:`gospa`) that both trackers are scored with.

Truth motion model (both generators): the discrete white-noise-acceleration ("nearly constant
velocity") model, Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation* (2001), sec. 6.2.2, eq. (6.2.2-12): per axis
``Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]]`` -- the same matrix as Stone Soup's
``ConstantVelocity(noise_diff_coeff=q)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from siap import geo
from siap.records import MeasurementKind, empty_plots

__all__ = [
    "CVScenario",
    "make_cv_scenario",
    "cv_process_noise",
    "detections_to_plots",
    "ecef_to_local_xy",
    "gospa",
    "RadarSite",
    "RadarNetworkScenario",
    "make_radar_network_scenario",
]

EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z, start time of the generated scenarios


def cv_process_noise(dt_s: float, q: float) -> np.ndarray:
    """4x4 process noise of the 2D nearly-constant-velocity model, state (x, vx, y, vy).

    Bar-Shalom, Li & Kirubarajan (2001) eq. (6.2.2-12), one block per axis."""
    block = q * np.array([[dt_s**3 / 3.0, dt_s**2 / 2.0], [dt_s**2 / 2.0, dt_s]])
    out = np.zeros((4, 4))
    out[:2, :2] = block
    out[2:, 2:] = block
    return out


@dataclass
class CVScenario:
    """Inputs and truth of one run of the side-by-side benchmark (local east/north metres).

    ``truth_xy[k, i]`` is target ``i`` at scan ``k`` (every target exists for every scan and
    stays inside the area, see :func:`make_cv_scenario`). Detections of all scans are flat
    arrays: ``det_scan`` (scan index), ``det_xy`` (measured x, y) and ``det_truth`` (target
    index, -1 for clutter; trackers must never read it).
    """

    n_targets: int
    seed: int
    n_scans: int
    dt_s: float
    area_m: float
    sigma_m: float
    pd: float
    clutter_per_scan: float
    q: float
    times_s: np.ndarray  # (n_scans,) Unix seconds
    truth_xy: np.ndarray  # (n_scans, n_targets, 2)
    truth_vel: np.ndarray  # (n_scans, n_targets, 2)
    det_scan: np.ndarray  # (n_det,) int
    det_xy: np.ndarray  # (n_det, 2)
    det_truth: np.ndarray  # (n_det,) int, -1 = clutter
    params: dict = field(default_factory=dict)

    def scan_slices(self) -> list[slice]:
        """Slices of the detection arrays for each scan (detections are sorted by scan)."""
        edges = np.searchsorted(self.det_scan, np.arange(self.n_scans + 1))
        return [slice(int(edges[k]), int(edges[k + 1])) for k in range(self.n_scans)]


def make_cv_scenario(
    n_targets: int,
    seed: int,
    *,
    n_scans: int = 100,
    dt_s: float = 1.0,
    area_m: float = 100_000.0,
    speed_min_mps: float = 100.0,
    speed_max_mps: float = 250.0,
    q: float = 0.5,
    sigma_m: float = 50.0,
    pd: float = 0.9,
    clutter_per_scan: float = 5.0,
) -> CVScenario:
    """Generate the side-by-side benchmark's truth and detections, once per (N, seed).

    How targets stay inside the area: each target gets a speed uniform in
    [speed_min, speed_max] and a heading uniform in [0, 2 pi); its trajectory *relative to its
    start point* is simulated first with the nearly-CV model (process noise ``q``, m^2/s^3).
    The start point is then drawn uniformly from the set of points for which the whole
    trajectory's bounding box lies inside ``[0, area]^2``. So every target exists for all
    scans, is inside the area at every scan, and the start points are as spread as the motion
    allows. (At 250 m/s for 99 s a target travels <= ~25 km, so the feasible box is never
    empty for a 100 km area.)

    Detections: each target is detected independently with probability ``pd`` per scan, at its
    true position plus zero-mean Gaussian noise with standard deviation ``sigma_m`` per axis.
    Clutter: Poisson(``clutter_per_scan``) points per scan, uniform over the area.
    """
    rng = np.random.default_rng(seed)
    n = int(n_targets)
    speed = rng.uniform(speed_min_mps, speed_max_mps, n)
    heading = rng.uniform(0.0, 2.0 * np.pi, n)  # clockwise from north
    vel0 = np.stack([speed * np.sin(heading), speed * np.cos(heading)], axis=-1)  # (n, 2) east, north

    # Relative trajectory with the discrete nearly-CV model, both axes at once.
    f = np.array([[1.0, dt_s], [0.0, 1.0]])
    qb = q * np.array([[dt_s**3 / 3.0, dt_s**2 / 2.0], [dt_s**2 / 2.0, dt_s]])
    chol = np.linalg.cholesky(qb) if q > 0 else np.zeros((2, 2))
    state = np.zeros((n, 2, 2))  # (target, axis, [pos, vel])
    state[:, :, 1] = vel0
    rel_pos = np.empty((n_scans, n, 2))
    vel = np.empty((n_scans, n, 2))
    for k in range(n_scans):
        if k > 0:
            noise = rng.standard_normal((n, 2, 2)) @ chol.T
            state = state @ f.T + noise
        rel_pos[k] = state[:, :, 0]
        vel[k] = state[:, :, 1]
    lo = rel_pos.min(axis=0)  # (n, 2)
    hi = rel_pos.max(axis=0)
    start_lo = -lo
    start_hi = area_m - hi
    if np.any(start_hi < start_lo):
        raise ValueError("area too small for the target speeds and scan count")
    start = rng.uniform(start_lo, start_hi)
    truth_xy = rel_pos + start[None, :, :]

    det_scan, det_xy, det_truth = _detections(truth_xy, rng, area_m, sigma_m, pd, clutter_per_scan)
    times = EPOCH_S + dt_s * np.arange(n_scans)
    return CVScenario(
        n_targets=n,
        seed=seed,
        n_scans=n_scans,
        dt_s=dt_s,
        area_m=area_m,
        sigma_m=sigma_m,
        pd=pd,
        clutter_per_scan=clutter_per_scan,
        q=q,
        times_s=times,
        truth_xy=truth_xy,
        truth_vel=vel,
        det_scan=det_scan,
        det_xy=det_xy,
        det_truth=det_truth,
        params=dict(
            n_targets=n, seed=seed, n_scans=n_scans, dt_s=dt_s, area_m=area_m,
            speed_mps=[speed_min_mps, speed_max_mps], q_m2ps3=q, sigma_m=sigma_m, pd=pd,
            clutter_per_scan=clutter_per_scan,
        ),
    )


def _detections(truth_xy, rng, area_m, sigma_m, pd, clutter_per_scan):
    """Detections of ``truth_xy`` (n_scans, n, 2) in ``[0, area]^2``: each target detected with
    probability ``pd`` per scan at its position plus N(0, sigma^2) per axis, and
    Poisson(``clutter_per_scan``) clutter points uniform over the area, shuffled per scan.
    Returns (det_scan, det_xy, det_truth) sorted by scan."""
    n_scans, n = truth_xy.shape[:2]
    det_scan_parts, det_xy_parts, det_truth_parts = [], [], []
    detected = rng.random((n_scans, n)) < pd
    n_clutter = rng.poisson(clutter_per_scan, n_scans)
    for k in range(n_scans):
        idx = np.flatnonzero(detected[k])
        meas = truth_xy[k, idx] + rng.normal(0.0, sigma_m, (idx.size, 2))
        clut = rng.uniform(0.0, area_m, (n_clutter[k], 2))
        xy = np.concatenate([meas, clut])
        tid = np.concatenate([idx, np.full(n_clutter[k], -1)])
        order = rng.permutation(xy.shape[0])  # trackers must not learn anything from the order
        det_xy_parts.append(xy[order])
        det_truth_parts.append(tid[order])
        det_scan_parts.append(np.full(xy.shape[0], k))
    return (
        np.concatenate(det_scan_parts).astype(np.int64),
        np.concatenate(det_xy_parts),
        np.concatenate(det_truth_parts).astype(np.int64),
    )


def make_trajectory_scenario(
    path,
    n_targets: int,
    seed: int,
    *,
    n_scans: int = 100,
    dt_s: float = 1.0,
    area_m: float = 100_000.0,
    q: float = 0.5,
    sigma_m: float = 50.0,
    pd: float = 0.9,
    clutter_per_scan: float = 5.0,
) -> CVScenario:
    """The side-by-side benchmark on REAL trajectories: the same sensing model as
    :func:`make_cv_scenario` (2D position, ``sigma_m`` noise, ``pd``, Poisson clutter), but the
    truth is recorded aircraft (traffic JSON/Parquet or OpenSky state-vector CSV, read by
    :func:`siap.scenario.load_trajectories`).

    Window and area (seeded): a start time is drawn among the times at which the most flights
    are airborne; the area is the ``area_m`` square centred on the median position of the
    flights then; the targets are up to ``n_targets`` flights (seeded choice) that stay inside
    the area for all ``n_scans`` scans. Their positions are projected on the local east/north
    plane of the area's centre (siap.geo, pyproj). ``n_targets`` in the result is the number
    actually found. ``q`` is only what the trackers are told (real aircraft manoeuvre)."""
    from siap.scenario import load_trajectories

    rng = np.random.default_rng(seed)
    flights = load_trajectories(path).flights
    if not flights:
        raise ValueError(f"{path}: no airborne flights")
    span = n_scans * dt_s
    starts = np.array([f.time_s[0] for f in flights])
    ends = np.array([f.time_s[-1] for f in flights])
    grid = np.arange(starts.min(), ends.max() - span, 10.0)
    if grid.size == 0:
        raise ValueError(f"{path}: no flight lasts {span:.0f} s")
    alive = ((starts[None, :] <= grid[:, None]) & (ends[None, :] >= grid[:, None] + span)).sum(axis=1)
    best = np.flatnonzero(alive >= 0.8 * alive.max())
    t0 = float(grid[rng.choice(best)])
    times = t0 + dt_s * np.arange(n_scans)
    live = [f for f in flights if f.time_s[0] <= t0 and f.time_s[-1] >= times[-1]]
    lat0 = np.median([f.interpolate(t0)[0][0] for f in live])
    lon0 = np.median([f.interpolate(t0)[1][0] for f in live])
    frame = geo.LocalFrame(float(lat0), float(lon0), 0.0)
    xy_all, vel_all = [], []
    for f in live:
        lat, lon, alt, vel, _ = f.interpolate(times)
        enu = frame.geodetic_to_enu(lat, lon, np.zeros_like(alt))
        xy = enu[:, :2] + area_m / 2.0
        if np.all((xy >= 0.0) & (xy <= area_m)):
            xy_all.append(xy)
            vel_all.append(vel[:, :2])
    if not xy_all:
        raise ValueError(f"{path}: no flight stays in a {area_m / 1000:.0f} km square for {span:.0f} s")
    pick = np.sort(rng.choice(len(xy_all), size=min(n_targets, len(xy_all)), replace=False))
    truth_xy = np.stack([xy_all[i] for i in pick], axis=1)
    vel = np.stack([vel_all[i] for i in pick], axis=1)
    det_scan, det_xy, det_truth = _detections(truth_xy, rng, area_m, sigma_m, pd, clutter_per_scan)
    n = truth_xy.shape[1]
    return CVScenario(
        n_targets=n, seed=seed, n_scans=n_scans, dt_s=dt_s, area_m=area_m, sigma_m=sigma_m, pd=pd,
        clutter_per_scan=clutter_per_scan, q=q, times_s=EPOCH_S + dt_s * np.arange(n_scans),
        truth_xy=truth_xy, truth_vel=vel, det_scan=det_scan, det_xy=det_xy, det_truth=det_truth,
        params=dict(
            trajectories=str(path), n_targets_requested=int(n_targets), n_targets=n, seed=seed,
            n_scans=n_scans, dt_s=dt_s, area_m=area_m, centre_lat_lon_deg=[float(lat0), float(lon0)],
            start_time_s=t0, q_m2ps3=q, sigma_m=sigma_m, pd=pd, clutter_per_scan=clutter_per_scan,
        ),
    )


def detections_to_plots(
    scn: CVScenario,
    frame: geo.LocalFrame,
    alt_m: float = 10_000.0,
    sigma_alt_m: float = 10.0,
) -> np.ndarray:
    """The scenario's detections as siap ``ADSB`` position plots (PLOT_DTYPE), time-sorted.

    Local (x east, y north) around ``frame``'s origin, at a constant ENU up of ``alt_m``, are
    converted to WGS84 with :meth:`siap.geo.LocalFrame.enu_to_geodetic`; ``cov`` is
    diag(sigma^2, sigma^2, sigma_alt^2) in ENU. No identity: ``mode_s_address = -1``.
    ``truth_id`` is filled (analysis only; trackers never read it).
    """
    n = scn.det_xy.shape[0]
    plots = empty_plots(n)
    enu = np.column_stack([scn.det_xy, np.full(n, alt_m)])
    lat, lon, alt = frame.enu_to_geodetic(enu)
    plots["time_s"] = scn.times_s[scn.det_scan]
    plots["plot_id"] = np.arange(n)
    plots["sensor_id"] = "bench-cv"
    plots["partner"] = "JPN"
    plots["kind"] = MeasurementKind.ADSB
    plots["lat_deg"] = lat
    plots["lon_deg"] = lon
    plots["alt_m"] = alt
    plots["cov"] = np.diag([scn.sigma_m**2, scn.sigma_m**2, sigma_alt_m**2])
    plots["truth_id"] = scn.det_truth
    return plots


def ecef_to_local_xy(pos_ecef_m: np.ndarray, frame: geo.LocalFrame) -> np.ndarray:
    """ECEF positions (N, 3) to the benchmark's local (east, north) metres, shape (N, 2)."""
    if len(pos_ecef_m) == 0:
        return np.zeros((0, 2))
    return frame.ecef_to_enu(pos_ecef_m)[:, :2]


def gospa(est_xy: np.ndarray, truth_xy: np.ndarray, c: float = 500.0, p: float = 1.0) -> dict:
    """GOSPA with alpha = 2 between two point sets (rows are points), with its decomposition.

    Rahmathullah, Garcia-Fernandez & Svensson, "Generalized optimal sub-pattern assignment
    metric", FUSION 2017 (arXiv:1601.05585), Proposition 1: for alpha = 2,
    ``d^p = min_gamma sum_{(i,j) in gamma} d(x_i, y_j)^p + c^p/2 (|X| + |Y| - 2|gamma|)``
    over assignments gamma using only pairs with ``d < c``. Equivalently: an optimal 2D
    assignment on ``min(d, c)^p`` where a pair at the cut-off counts as one missed and one
    false target. The decomposition (localisation, missed, false) is the one Stone Soup's
    ``GOSPAMetric`` reports (each term in units of distance^p); ``distance`` is ``d``.
    """
    est = np.asarray(est_xy, dtype=float)
    tru = np.asarray(truth_xy, dtype=float)
    dim = next((a.shape[-1] for a in (tru, est) if a.ndim == 2 and a.size), 2)
    est, tru = est.reshape(-1, dim), tru.reshape(-1, dim)
    half = c**p / 2.0
    n_est, n_tru = len(est), len(tru)
    if n_est == 0 or n_tru == 0:
        missed = half * n_tru
        false = half * n_est
        return dict(distance=float((missed + false) ** (1.0 / p)), localisation=0.0,
                    missed=float(missed), false=float(false), n_assigned=0)
    d = np.sqrt(((tru[:, None, :] - est[None, :, :]) ** 2).sum(-1))
    cost = np.minimum(d, c) ** p
    rows, cols = linear_sum_assignment(cost)
    real = d[rows, cols] < c
    loc = float(cost[rows[real], cols[real]].sum())
    n_ass = int(real.sum())
    missed = half * (n_tru - n_ass)
    false = half * (n_est - n_ass)
    return dict(distance=float((loc + missed + false) ** (1.0 / p)), localisation=loc,
                missed=float(missed), false=float(false), n_assigned=n_ass)


# --------------------------------------------------------------------------------------------
# Radar network scenario for the scale benchmark
# --------------------------------------------------------------------------------------------


@dataclass
class RadarSite:
    sensor_id: str
    lat_deg: float
    lon_deg: float
    alt_m: float
    period_s: float  # antenna rotation period
    az0_rad: float  # beam azimuth at EPOCH_S
    max_range_m: float
    pd: float
    sigma_range_m: float
    sigma_az_rad: float
    sigma_el_rad: float
    false_per_scan: float


@dataclass
class RadarNetworkScenario:
    plots: np.ndarray  # PLOT_DTYPE, time-sorted
    sites: list[RadarSite]
    n_targets: int
    duration_s: float
    origin: geo.LocalFrame
    coverage_hist: dict  # number of radars covering a target at t0 -> fraction of targets
    params: dict
    targets: dict  # lat0_deg, lon0_deg, alt_m, ve_mps, vn_mps arrays (truth; analysis only)

    def truth_ecef(self, truth_id: np.ndarray, time_s: np.ndarray) -> np.ndarray:
        """True ECEF positions (N, 3) of targets ``truth_id`` at Unix times ``time_s``."""
        i = np.asarray(truth_id)
        g = self.targets
        return geo.geodetic_to_ecef(*_target_geodetic(
            g["lat0_deg"][i], g["lon0_deg"][i], g["alt_m"][i], g["ve_mps"][i], g["vn_mps"][i],
            np.asarray(time_s, dtype=float) - EPOCH_S))


_RM = geo.EARTH_MEAN_RADIUS_M


def _target_geodetic(lat0, lon0, alt, ve, vn, t):
    """Great-circle-free local straight flight: lat/lon advanced by the ENU velocity (deg).

    A simple truth model (flat over the 3 minutes of flight; ~45 km at most)."""
    lat = lat0 + np.degrees(vn * t / _RM)
    lon = lon0 + np.degrees(ve * t / (_RM * np.cos(np.radians(lat0))))
    return lat, lon, alt


def make_radar_network_scenario(
    n_targets: int,
    seed: int,
    *,
    duration_s: float = 150.0,
    n_radars: int = 20,
    origin_lat_deg: float = 35.0,
    origin_lon_deg: float = 135.0,
    grid_spacing_m: float = 230_000.0,
) -> RadarNetworkScenario:
    """Thousands of targets seen by ``n_radars`` rotating 3D ground radars (RADAR_3D plots).

    Layout: radars on a 5 x 4 grid (``grid_spacing_m`` apart, jittered by +-20 km) around the
    origin, each with a rotation period uniform in [4, 12] s, instrumented range uniform in
    [200, 280] km, Pd uniform in [0.85, 0.95], range sigma in [30, 80] m, azimuth sigma in
    [0.1, 0.2] deg, elevation sigma in [0.3, 0.6] deg and 20 false alarms per scan (Poisson),
    uniform in ground area and azimuth, elevation uniform in [0, 10] deg. Targets fly straight
    at 100-300 m/s, random heading, altitude uniform in [1, 12] km, start points uniform over
    the grid's bounding box shrunk by 100 km, so most targets are covered by 2-4 radars
    (the realised histogram is returned in ``coverage_hist``).

    Each plot is time-stamped when the beam passes the target: for each revolution the beam
    time is found for the target's azimuth, and refined five times with the azimuth at that time
    (unwrapped, so a target near north is not thrown into the next revolution)
    (fixed-point iteration; targets move far slower in azimuth than the beam). A target is
    visible if inside the instrumented range, above the 4/3-earth radar horizon
    (:func:`siap.geo.radar_horizon_range_m`) and at positive elevation.
    """
    rng = np.random.default_rng(seed)
    origin = geo.LocalFrame(origin_lat_deg, origin_lon_deg, 0.0)
    nx, ny = 5, 4
    gx = (np.arange(nx) - (nx - 1) / 2) * grid_spacing_m
    gy = (np.arange(ny) - (ny - 1) / 2) * grid_spacing_m
    gxx, gyy = np.meshgrid(gx, gy)
    site_e = gxx.ravel()[:n_radars] + rng.uniform(-20e3, 20e3, n_radars)
    site_n = gyy.ravel()[:n_radars] + rng.uniform(-20e3, 20e3, n_radars)
    site_lat = origin_lat_deg + np.degrees(site_n / _RM)
    site_lon = origin_lon_deg + np.degrees(site_e / (_RM * np.cos(np.radians(origin_lat_deg))))
    sites = [
        RadarSite(
            sensor_id=f"R{i:02d}",
            lat_deg=float(site_lat[i]),
            lon_deg=float(site_lon[i]),
            alt_m=float(rng.uniform(20.0, 500.0)),
            period_s=float(rng.uniform(4.0, 12.0)),
            az0_rad=float(rng.uniform(0, 2 * np.pi)),
            max_range_m=float(rng.uniform(200e3, 280e3)),
            pd=float(rng.uniform(0.85, 0.95)),
            sigma_range_m=float(rng.uniform(30.0, 80.0)),
            sigma_az_rad=float(np.radians(rng.uniform(0.1, 0.2))),
            sigma_el_rad=float(np.radians(rng.uniform(0.3, 0.6))),
            false_per_scan=20.0,
        )
        for i in range(n_radars)
    ]

    # Targets.
    n = int(n_targets)
    half_e = gx.max() + 0.5 * grid_spacing_m - 100e3
    half_n = gy.max() + 0.5 * grid_spacing_m - 100e3
    e0 = rng.uniform(-half_e, half_e, n)
    n0 = rng.uniform(-half_n, half_n, n)
    lat0 = origin_lat_deg + np.degrees(n0 / _RM)
    lon0 = origin_lon_deg + np.degrees(e0 / (_RM * np.cos(np.radians(origin_lat_deg))))
    alt = rng.uniform(1_000.0, 12_000.0, n)
    speed = rng.uniform(100.0, 300.0, n)
    hdg = rng.uniform(0, 2 * np.pi, n)
    ve, vn = speed * np.sin(hdg), speed * np.cos(hdg)

    parts = []
    cover = np.zeros(n, dtype=int)
    for s in sites:
        pos0 = geo.geodetic_to_ecef(*_target_geodetic(lat0, lon0, alt, ve, vn, 0.0))
        r0, _, el0 = geo.ecef_to_polar(pos0, s.lat_deg, s.lon_deg, s.alt_m)
        horizon = geo.radar_horizon_range_m(s.alt_m, alt)
        cover += (r0 < np.minimum(s.max_range_m, horizon)) & (el0 > 0)
        # Candidates: targets that can come within range during the run.
        cand = np.flatnonzero(r0 < s.max_range_m + speed * duration_s + 1e3)
        n_rev = int(np.ceil(duration_s / s.period_s)) + 1
        omega = 2 * np.pi / s.period_s
        for k in range(n_rev):
            rev_start = EPOCH_S + k * s.period_s - (s.az0_rad / omega)  # beam at az 0
            idx = cand
            t_rel = np.full(idx.size, rev_start - EPOCH_S + 0.5 * s.period_s)
            az_u = None  # azimuth unwrapped around the previous iterate (no revolution jumps)
            for _ in range(6):
                p = geo.geodetic_to_ecef(*_target_geodetic(lat0[idx], lon0[idx], alt[idx], ve[idx], vn[idx], t_rel))
                _, az, _ = geo.ecef_to_polar(p, s.lat_deg, s.lon_deg, s.alt_m)
                az_u = az if az_u is None else az_u + np.angle(np.exp(1j * (az - az_u)))
                t_rel = (rev_start - EPOCH_S) + az_u / omega
            # The crossing belongs to this revolution only if its azimuth is in [0, 2 pi);
            # otherwise the neighbouring revolution finds it (no duplicates, none lost).
            keep = (t_rel >= 0) & (t_rel < duration_s) & (az_u >= 0) & (az_u < 2 * np.pi)
            idx, t_rel = idx[keep], t_rel[keep]
            if idx.size == 0:
                continue
            p = geo.geodetic_to_ecef(*_target_geodetic(lat0[idx], lon0[idx], alt[idx], ve[idx], vn[idx], t_rel))
            r, az, el = geo.ecef_to_polar(p, s.lat_deg, s.lon_deg, s.alt_m)
            hz = geo.radar_horizon_range_m(s.alt_m, alt[idx])
            vis = (r < s.max_range_m) & (r < hz) & (el > 0) & (rng.random(idx.size) < s.pd)
            idx, t_rel, r, az, el = idx[vis], t_rel[vis], r[vis], az[vis], el[vis]
            m = idx.size
            r = r + rng.normal(0, s.sigma_range_m, m)
            az = np.mod(az + rng.normal(0, s.sigma_az_rad, m), 2 * np.pi)
            el = el + rng.normal(0, s.sigma_el_rad, m)
            # False alarms of this revolution.
            nf = rng.poisson(s.false_per_scan)
            faz = rng.uniform(0, 2 * np.pi, nf)
            ft = (rev_start - EPOCH_S) + faz / omega
            fr = s.max_range_m * np.sqrt(rng.uniform((2e3 / s.max_range_m) ** 2, 1.0, nf))
            fel = np.radians(rng.uniform(0.0, 10.0, nf))
            fk = (ft >= 0) & (ft < duration_s)
            faz, ft, fr, fel = faz[fk], ft[fk], fr[fk], fel[fk]
            tot = m + faz.size
            pl = empty_plots(tot)
            pl["time_s"] = EPOCH_S + np.concatenate([t_rel, ft])
            pl["sensor_id"] = s.sensor_id
            pl["partner"] = "JPN"
            pl["kind"] = MeasurementKind.RADAR_3D
            pl["sensor_lat_deg"] = s.lat_deg
            pl["sensor_lon_deg"] = s.lon_deg
            pl["sensor_alt_m"] = s.alt_m
            pl["range_m"] = np.concatenate([r, fr])
            pl["azimuth_rad"] = np.concatenate([az, faz])
            pl["elevation_rad"] = np.concatenate([el, fel])
            pl["cov"] = np.diag([s.sigma_range_m**2, s.sigma_az_rad**2, s.sigma_el_rad**2])
            pl["truth_id"] = np.concatenate([idx, np.full(faz.size, -1)])
            parts.append(pl)
    plots = np.concatenate(parts) if parts else empty_plots(0)
    plots = plots[np.argsort(plots["time_s"], kind="stable")]
    plots["plot_id"] = np.arange(len(plots))
    vals, counts = np.unique(cover, return_counts=True)
    hist = {int(v): float(c / n) for v, c in zip(vals, counts, strict=True)}
    return RadarNetworkScenario(
        plots=plots,
        sites=sites,
        n_targets=n,
        duration_s=duration_s,
        origin=origin,
        coverage_hist=hist,
        params=dict(n_targets=n, seed=seed, duration_s=duration_s, n_radars=n_radars,
                    grid_spacing_m=grid_spacing_m, origin=[origin_lat_deg, origin_lon_deg]),
        targets=dict(lat0_deg=lat0, lon0_deg=lon0, alt_m=alt, ve_mps=ve, vn_mps=vn),
    )


def siap_radar_network_scenario(n_targets: int, seed: int, *, duration_s: float = 150.0,
                                n_radars: int = 20, origin_lat_deg: float = 35.0,
                                origin_lon_deg: float = 135.0, grid_spacing_m: float = 230_000.0):
    """The same radar network as :func:`make_radar_network_scenario`, as a ``siap.scenario``
    :class:`Scenario` (20 primary-only 3D ground radars, no SSR, so no identity evidence) with
    ``n_targets`` non-cooperative aircraft of a ``traffic`` population crossing the network's
    area (siap.scenario.traffic: 90-280 m/s, 150-12,000 m, legs of 150-300 km), simulated by
    :func:`siap.simulation.simulate`. Returns (scenario, simulation result)."""
    from siap.scenario.models import Scenario
    from siap.simulation import simulate

    rng = np.random.default_rng(seed)
    nx, ny = 5, 4
    gx = (np.arange(nx) - (nx - 1) / 2) * grid_spacing_m
    gy = (np.arange(ny) - (ny - 1) / 2) * grid_spacing_m
    gxx, gyy = np.meshgrid(gx, gy)
    site_e = gxx.ravel()[:n_radars] + rng.uniform(-20e3, 20e3, n_radars)
    site_n = gyy.ravel()[:n_radars] + rng.uniform(-20e3, 20e3, n_radars)
    coslat = np.cos(np.radians(origin_lat_deg))
    sensors = []
    for i in range(n_radars):
        max_range_km = float(rng.uniform(200.0, 280.0))
        sensors.append(dict(
            id=f"R{i:02d}", type="ground_radar", partner="JPN",
            lat_deg=float(origin_lat_deg + np.degrees(site_n[i] / _RM)),
            lon_deg=float(origin_lon_deg + np.degrees(site_e[i] / (_RM * coslat))),
            alt_m=float(rng.uniform(20.0, 500.0)), dimension="3d",
            scan_period_s=float(rng.uniform(4.0, 12.0)),
            start_azimuth_deg=float(rng.uniform(0.0, 360.0)),
            max_range_km=max_range_km,
            range_sigma_m=float(rng.uniform(30.0, 80.0)),
            azimuth_sigma_deg=float(rng.uniform(0.1, 0.2)),
            elevation_sigma_deg=float(rng.uniform(0.3, 0.6)),
            detection=dict(pd_at_ref_range=0.9, ref_range_km=0.85 * max_range_km, pfa=1e-6),
            false_alarms_per_scan=20.0,
        ))
    half_e = gx.max() + 0.5 * grid_spacing_m - 100e3
    half_n = gy.max() + 0.5 * grid_spacing_m - 100e3
    area = dict(
        lat_min_deg=float(origin_lat_deg - np.degrees(half_n / _RM)),
        lat_max_deg=float(origin_lat_deg + np.degrees(half_n / _RM)),
        lon_min_deg=float(origin_lon_deg - np.degrees(half_e / (_RM * coslat))),
        lon_max_deg=float(origin_lon_deg + np.degrees(half_e / (_RM * coslat))),
    )
    targets = []
    left, k = int(n_targets), 0
    while left > 0:
        m = min(left, 5000)
        targets.append(dict(type="traffic", airports=["RJTT", "RJBB"], airliners=0,
                            non_cooperative=m, manoeuvring=0, area=area, seed_offset=k))
        left -= m
        k += 1
    scenario = Scenario.model_validate(dict(
        name=f"bench-scale-{n_targets}", start_time_utc="2026-01-01T00:00:00Z",
        duration_s=duration_s, seed=seed, truth_step_s=1.0,
        origin=dict(lat_deg=origin_lat_deg, lon_deg=origin_lon_deg, alt_m=0.0),
        partners=[dict(id="JPN")], sensors=sensors, targets=targets,
    ))
    return scenario, simulate(scenario)
