"""Seeded random traffic: airliners on a route network, non-cooperative and manoeuvring aircraft.

Everything is drawn from one ``numpy.random.Generator`` so a (scenario seed, seed_offset) pair
always gives the same population.

* Airliners fly the geodesic between two airports of the network (ordered pairs whose distance
  lies in [min_route_km, max_route_km]) with a climb to cruise (FL300-FL410, 430-490 kt ground
  speed, no wind) within the first ~200 km and a descent over the last ~220 km. Most are
  already airborne at the start, at a uniformly drawn point of their route; a fraction
  ``departing_fraction`` takes off during the scenario. All are cooperative (Mode S address,
  Mode 3/A, Mode C); ``adsb_fraction`` of them broadcast ADS-B with NACp 8-11.
* Non-cooperative aircraft (no transponder) cross the area on three-waypoint routes at random
  altitudes (150 m to 12 km) and speeds (90-280 m/s).
* Manoeuvring aircraft fly orbits, racetracks or weaves (zig-zags with altitude changes) at up
  to 60 degrees of bank; half of them squawk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siap.scenario.airports import AIRPORTS
from siap.scenario.kinematics import GEOD, FlightPlan, orbit_waypoints, racetrack_waypoints
from siap.scenario.models import FT_TO_M, KT_TO_MPS, TrafficTarget

__all__ = ["Identity", "generate_traffic", "random_identity"]

_AIRLINES = ["JAL", "ANA", "KAL", "AAR", "CPA", "EVA", "CAL", "UAL", "DAL", "QFA", "PAL", "APJ", "SKY", "JJA", "CES"]


@dataclass
class Identity:
    name: str
    cooperative: bool
    adsb_equipped: bool
    mode_s_address: int
    mode_3a: int
    callsign: str
    nacp: int


def random_identity(rng: np.random.Generator, name: str, cooperative: bool, adsb: bool, callsign: str | None = None) -> Identity:
    if not cooperative:
        return Identity(name, False, False, -1, -1, "", 0)
    addr = int(rng.integers(0x400000, 0xB00000))
    while True:
        code = int(rng.integers(0o0100, 0o7777))
        if code not in (0o7500, 0o7600, 0o7700, 0o7000, 0o2000, 0o1200):
            break
    nacp = int(rng.choice([8, 9, 10, 11], p=[0.1, 0.5, 0.3, 0.1]))
    if callsign is None:
        callsign = f"{_AIRLINES[int(rng.integers(len(_AIRLINES)))]}{int(rng.integers(1, 9999))}"
    return Identity(name, True, bool(adsb), addr, code, callsign[:8], nacp)


def _routes(spec: TrafficTarget) -> list[tuple[str, str, float]]:
    out = []
    codes = spec.airports
    for a in codes:
        for b in codes:
            if a == b:
                continue
            _, la1, lo1, _ = AIRPORTS[a]
            _, la2, lo2, _ = AIRPORTS[b]
            _, _, d = GEOD.inv(lo1, la1, lo2, la2)
            if spec.min_route_km * 1e3 <= d <= spec.max_route_km * 1e3:
                out.append((a, b, d))
    return out


def _airliner(rng, a: str, b: str, dist: float, duration_s: float, departing: bool) -> FlightPlan:
    _, la1, lo1, el1 = AIRPORTS[a]
    _, la2, lo2, el2 = AIRPORTS[b]
    az, _, _ = GEOD.inv(lo1, la1, lo2, la2)
    cruise_alt = float(rng.integers(30, 42)) * 1000 * FT_TO_M
    cruise_spd = float(rng.uniform(430, 490)) * KT_TO_MPS
    toc = min(200e3, 0.35 * dist)
    tod = min(220e3, 0.35 * dist)
    d_wp = np.array([0.0, min(30e3, 0.1 * dist), toc, dist - tod, dist - min(40e3, 0.1 * dist), dist])
    # intermediate en-route points every ~400 km keep the path on the geodesic
    extra = np.arange(toc + 400e3, dist - tod - 100e3, 400e3)
    d_all = np.sort(np.concatenate([d_wp, extra]))
    alt = np.interp(d_all, d_wp, [el1, 3000.0, cruise_alt, cruise_alt, 2500.0, el2])
    spd = np.interp(d_all, d_wp, [80.0, 150.0, cruise_spd, cruise_spd, 140.0, 75.0])
    lo, la, _ = GEOD.fwd(np.full(len(d_all), lo1), np.full(len(d_all), la1), np.full(len(d_all), az), d_all)
    lo, la = np.asarray(lo), np.asarray(la)
    lo[-1], la[-1] = lo2, la2
    plan = FlightPlan(la, lo, alt, spd, bank_deg=25.0, accel_mps2=1.0, climb_mps=12.0, descent_mps=10.0)
    if departing:
        plan.start_s = float(rng.uniform(0, 0.9 * duration_s))
    else:
        s = float(rng.uniform(0.03, 0.97)) * dist
        nxt = int(np.searchsorted(d_all, s, side="right"))
        nxt = min(max(nxt, 1), len(d_all) - 1)
        lon0, lat0, _ = GEOD.fwd(lo1, la1, az, s)
        hd, _, _ = GEOD.inv(lon0, lat0, lo[nxt], la[nxt])
        plan.init = (
            float(lat0),
            float(lon0),
            float(np.interp(s, d_all, alt)),
            float(hd % 360),
            float(np.interp(s, d_all, spd)),
            nxt,
        )
    return plan


def _area_point(rng, spec: TrafficTarget):
    a = spec.area
    return float(rng.uniform(a.lat_min_deg, a.lat_max_deg)), float(rng.uniform(a.lon_min_deg, a.lon_max_deg))


def _chain(rng, lat, lon, heading, legs_m, turns_deg):
    la, lo, h = [lat], [lon], heading
    for d, t in zip(legs_m, turns_deg, strict=True):
        h = h + t
        x, y, _ = GEOD.fwd(lo[-1], la[-1], h, d)
        la.append(float(y))
        lo.append(float(x))
    return np.array(la), np.array(lo)


def generate_traffic(spec: TrafficTarget, rng: np.random.Generator, duration_s: float) -> list[tuple[FlightPlan, Identity]]:
    """Expand a ``traffic`` target into flight plans and identities (see module docstring)."""
    out: list[tuple[FlightPlan, Identity]] = []
    routes = _routes(spec)
    if spec.airliners and not routes:
        raise ValueError("no airport pair in the route length range")
    for i in range(spec.airliners):
        a, b, d = routes[int(rng.integers(len(routes)))]
        departing = bool(rng.random() < spec.departing_fraction)
        plan = _airliner(rng, a, b, d, duration_s, departing)
        ident = random_identity(rng, f"airliner-{i} {a}-{b}", True, rng.random() < spec.adsb_fraction)
        out.append((plan, ident))
    for i in range(spec.non_cooperative):
        lat, lon = _area_point(rng, spec)
        h = float(rng.uniform(0, 360))
        la, lo = _chain(rng, lat, lon, h, rng.uniform(150e3, 300e3, 3), np.concatenate([[0.0], rng.uniform(-60, 60, 2)]))
        alt = rng.uniform(150.0, 12000.0, 4)
        alt[1:] = np.where(rng.random(3) < 0.6, alt[0], alt[1:])
        spd = np.full(4, rng.uniform(90, 280))
        plan = FlightPlan(la, lo, alt, spd, bank_deg=float(rng.uniform(25, 45)), accel_mps2=2.0, climb_mps=20, descent_mps=20)
        out.append((plan, random_identity(rng, f"noncoop-{i}", False, False)))
    for i in range(spec.manoeuvring):
        lat, lon = _area_point(rng, spec)
        kind = int(rng.integers(3))
        spd_v = float(rng.uniform(120, 250))
        alt_v = float(rng.uniform(1500, 10000))
        bank = float(rng.uniform(30, 60))
        if kind == 0:
            la, lo = orbit_waypoints(lat, lon, rng.uniform(10e3, 40e3), rng.uniform(0, 360), "right" if rng.random() < 0.5 else "left")
            loop = True
            name = "orbit"
        elif kind == 1:
            la, lo = racetrack_waypoints(lat, lon, rng.uniform(0, 360), rng.uniform(40e3, 100e3), rng.uniform(10e3, 20e3), "right" if rng.random() < 0.5 else "left")
            loop = True
            name = "racetrack"
        else:
            n = 10
            turns = np.concatenate([[0.0], np.where(np.arange(n - 1) % 2 == 0, 1, -1) * rng.uniform(60, 100, n - 1)])
            la, lo = _chain(rng, lat, lon, rng.uniform(0, 360), rng.uniform(20e3, 40e3, n), turns)
            loop = False
            name = "weave"
        w = len(la)
        alt = np.full(w, alt_v)
        if name == "weave":
            alt = np.clip(alt_v + rng.uniform(-1500, 1500, w), 300, 12000)
        plan = FlightPlan(la, lo, alt, np.full(w, spd_v), loop=loop, bank_deg=bank, accel_mps2=3.0, climb_mps=25, descent_mps=25)
        if name in ("orbit", "racetrack"):
            plan.init = (float(la[0]), float(lo[0]), alt_v, float(GEOD.inv(lo[0], la[0], lo[1], la[1])[0] % 360), spd_v, 1)
        coop = bool(rng.random() < 0.5)
        out.append((plan, random_identity(rng, f"{name}-{i}", coop, coop and rng.random() < 0.5)))
    return out
