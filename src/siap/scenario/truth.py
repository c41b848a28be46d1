"""Turn a scenario's target declarations into a :class:`TruthGrid`.

Truth ids are assigned in declaration order (a ``traffic`` entry expands to airliners, then
non-cooperative, then manoeuvring aircraft; a ``trajectory_file`` to its flights sorted by
icao24 and time).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from siap.errors import InputError
from siap.scenario.kinematics import (
    GEOD,
    FlightPlan,
    TruthGrid,
    integrate_plans,
    orbit_waypoints,
    racetrack_waypoints,
)
from siap.scenario.models import (
    OrbitTarget,
    RacetrackTarget,
    RouteTarget,
    Scenario,
    TrafficTarget,
    TrajectoryFileTarget,
)
from siap.scenario.traffic import Identity, generate_traffic, random_identity
from siap.scenario.trajectories import load_trajectories

__all__ = ["build_truth", "grid_step_s", "resolve_path"]


def grid_step_s(truth_step_s: float) -> float:
    """Internal integration step: at most 1 s and an integer divisor of ``truth_step_s``."""
    return truth_step_s / max(1, math.ceil(truth_step_s - 1e-9))


def resolve_path(scenario: Scenario, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else scenario.base_dir / p


def _identity_of(spec, rng, index: int) -> Identity:
    ident = random_identity(rng, spec.name or f"{spec.type}-{index}", spec.cooperative, spec.adsb_equipped, spec.callsign)
    if spec.cooperative:
        if spec.mode_s_address is not None:
            ident.mode_s_address = int(spec.mode_s_address, 16)
        if spec.mode_3a is not None:
            ident.mode_3a = int(spec.mode_3a, 8)
        ident.nacp = spec.nacp
    return ident


def _plan_of(spec) -> FlightPlan:
    if isinstance(spec, RouteTarget):
        w = spec.waypoints
        return FlightPlan(
            np.array([p.lat_deg for p in w]),
            np.array([p.lon_deg for p in w]),
            np.array([p.alt_m for p in w]),
            np.array([p.spd_mps for p in w]),
            loop=spec.loop,
            bank_deg=spec.bank_deg,
            start_s=spec.start_s,
            accel_mps2=2.0,
            climb_mps=20.0,
            descent_mps=20.0,
        )
    if isinstance(spec, RacetrackTarget):
        la, lo = racetrack_waypoints(spec.lat_deg, spec.lon_deg, spec.heading_deg, spec.leg_length_km * 1e3, spec.turn_radius_km * 1e3, spec.turn)
        n = len(la)
        plan = FlightPlan(la, lo, np.full(n, spec.alt_m), np.full(n, spec.spd_mps), loop=True, bank_deg=spec.bank_deg, start_s=spec.start_s)
        plan.init = (spec.lat_deg, spec.lon_deg, spec.alt_m, spec.heading_deg, spec.spd_mps, 0)
        return plan
    if isinstance(spec, OrbitTarget):
        la, lo = orbit_waypoints(spec.lat_deg, spec.lon_deg, spec.radius_km * 1e3, spec.start_bearing_deg, spec.turn)
        n = len(la)
        plan = FlightPlan(la, lo, np.full(n, spec.alt_m), np.full(n, spec.spd_mps), loop=True, bank_deg=spec.bank_deg, start_s=spec.start_s)
        hd = GEOD.inv(lo[0], la[0], lo[1], la[1])[0] % 360
        plan.init = (float(la[0]), float(lo[0]), spec.alt_m, float(hd), spec.spd_mps, 1)
        return plan
    raise TypeError(type(spec))


def platform_plan(racetrack) -> FlightPlan:
    """Flight plan of an airborne sensor's racetrack platform."""
    la, lo = racetrack_waypoints(racetrack.lat_deg, racetrack.lon_deg, racetrack.heading_deg, racetrack.leg_length_km * 1e3, racetrack.turn_radius_km * 1e3, racetrack.turn)
    n = len(la)
    v = racetrack.spd_mps
    # bank so that the pattern's turn radius is flown: tan(phi) = v^2 / (g R)
    bank = math.degrees(math.atan(v * v / (9.80665 * racetrack.turn_radius_km * 1e3)))
    plan = FlightPlan(la, lo, np.full(n, racetrack.alt_m), np.full(n, v), loop=True, bank_deg=min(max(bank * 1.3, 5.0), 60.0))
    plan.init = (racetrack.lat_deg, racetrack.lon_deg, racetrack.alt_m, racetrack.heading_deg, v, 0)
    return plan


def build_truth(scenario: Scenario, progress=None) -> TruthGrid:
    """Every target of ``scenario`` on the internal time grid (see :func:`grid_step_s`)."""
    dt = grid_step_s(scenario.truth_step_s)
    n_steps = int(math.floor(scenario.duration_s / dt + 1e-9)) + 1
    t0 = scenario.start_time_s
    times = t0 + dt * np.arange(n_steps)
    seed = int(scenario.seed) & 0xFFFFFFFFFFFFFFFF
    # blocks in declaration order: ("plans", [indices into plans]) or ("real", arrays)
    plans: list[FlightPlan] = []
    idents: list[Identity] = []
    blocks: list[tuple] = []
    for ti, spec in enumerate(scenario.targets):
        rng = np.random.default_rng([seed, 104729, ti])
        if isinstance(spec, TrafficTarget):
            rng = np.random.default_rng([seed, 104729, ti, spec.seed_offset & 0xFFFFFFFF])
            items = generate_traffic(spec, rng, scenario.duration_s)
            start = len(plans)
            for p, ident in items:
                plans.append(p)
                idents.append(ident)
            blocks.append(("plans", list(range(start, len(plans)))))
        elif isinstance(spec, TrajectoryFileTarget):
            ts = load_trajectories(resolve_path(scenario, spec.path), format=spec.format, max_gap_s=spec.max_gap_s)
            loaded = len(ts)
            ts = ts.window(t0, times[-1])
            n = len(ts)
            if n == 0:
                why = (
                    f"none of its {loaded} flights overlaps the scenario window" if loaded
                    else f"no flight of 2+ usable points (dropped points: {ts.dropped or 'none'})"
                )
                raise InputError(
                    f"{resolve_path(scenario, spec.path)}: targets[{ti}]: expected trajectories with usable truth "
                    f"between {t0:.0f} and {float(times[-1]):.0f} (Unix s); {why}"
                )
            lat = np.full((n, n_steps), np.nan)
            lon = np.full((n, n_steps), np.nan)
            alt = np.full((n, n_steps), np.nan)
            vel = np.full((n, n_steps, 3), np.nan)
            alive = np.zeros((n, n_steps), dtype=bool)
            rid = []
            for j, f in enumerate(ts.flights):
                la, lo, al, ve, ok = f.interpolate(times)
                lat[j], lon[j], alt[j], vel[j], alive[j] = la, lo, al, ve, ok
                rid.append(
                    Identity(f"{f.callsign or f.icao24}", True, bool(rng.random() < spec.adsb_fraction), f.mode_s_address, f.squawk, f.callsign, spec.nacp)
                )
            blocks.append(("real", (lat, lon, alt, vel, alive, rid)))
        else:
            plans.append(_plan_of(spec))
            idents.append(_identity_of(spec, rng, ti))
            blocks.append(("plans", [len(plans) - 1]))
    sp = integrate_plans(plans, t0, n_steps, dt, progress=progress)
    parts_lat, parts_lon, parts_alt, parts_vel, parts_alive, all_ids = [], [], [], [], [], []
    for kind, data in blocks:
        if kind == "plans":
            ix = np.asarray(data, dtype=int)
            parts_lat.append(sp[0][ix])
            parts_lon.append(sp[1][ix])
            parts_alt.append(sp[2][ix])
            parts_vel.append(sp[3][ix])
            parts_alive.append(sp[4][ix])
            all_ids.extend(idents[i] for i in data)
        else:
            lat, lon, alt, vel, alive, rid = data
            parts_lat.append(lat)
            parts_lon.append(lon)
            parts_alt.append(alt)
            parts_vel.append(vel)
            parts_alive.append(alive)
            all_ids.extend(rid)
    lat = np.concatenate(parts_lat) if parts_lat else np.zeros((0, n_steps))
    lon = np.concatenate(parts_lon) if parts_lon else np.zeros((0, n_steps))
    alt = np.concatenate(parts_alt) if parts_alt else np.zeros((0, n_steps))
    vel = np.concatenate(parts_vel) if parts_vel else np.zeros((0, n_steps, 3))
    alive = np.concatenate(parts_alive) if parts_alive else np.zeros((0, n_steps), dtype=bool)
    return TruthGrid.from_geodetic(
        t0,
        dt,
        lat,
        lon,
        alt,
        vel,
        alive,
        mode_s_address=np.array([i.mode_s_address for i in all_ids], dtype=np.int32),
        mode_3a=np.array([i.mode_3a for i in all_ids], dtype=np.int16),
        callsign=np.array([i.callsign for i in all_ids], dtype="U8"),
        cooperative=np.array([i.cooperative for i in all_ids], dtype=bool),
        adsb_equipped=np.array([i.adsb_equipped for i in all_ids], dtype=bool),
        nacp=np.array([i.nacp for i in all_ids], dtype=np.int8),
        names=[i.name for i in all_ids],
    )
