"""Synthetic aircraft kinematics and the truth grid that sensors sample.

Flight model (vectorised over all targets, one time step at a time):

* Lateral guidance flies fly-by waypoints: the heading turns toward the bearing of the next
  waypoint at most at the coordinated-turn rate ``omega = g tan(bank) / v`` (level coordinated
  turn; e.g. Stevens & Lewis, *Aircraft Control and Simulation*, eq. 2.5-15). The waypoint is
  passed (the next one becomes active) when it is closer than the turn anticipation distance
  ``R tan(dpsi / 2)``, ``R = v^2 / (g tan bank)``, so turns are circular arcs tangent to both legs.
* Speed changes toward the waypoint's speed at a bounded acceleration; altitude follows the
  straight climb/descent line to the waypoint's altitude at a bounded vertical rate.
* Positions are integrated on the WGS84 ellipsoid in geodetic coordinates with the meridian
  and prime-vertical radii of curvature (dead reckoning), trapezoidal in velocity, so that the
  recorded velocities are the derivatives of the recorded positions to second order.

:class:`TruthGrid` holds every target on a regular time grid in ECEF (positions and velocities)
and interpolates between grid points with cubic Hermite polynomials (position and velocity
continuous), which is how sensors ask "where was target i at time t".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import Geod

from siap import geo
from siap.records import TRUTH_DTYPE, empty_truth

__all__ = ["GEOD", "FlightPlan", "integrate_plans", "TruthGrid", "racetrack_waypoints", "orbit_waypoints"]

GEOD = Geod(ellps="WGS84")
G0 = 9.80665
_WGS84_A = 6378137.0
_WGS84_E2 = 6.69437999014e-3


def _wrap_pi(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def _radii(lat_rad):
    """Meridian (M) and prime-vertical (N) radii of curvature of WGS84 at latitude."""
    s2 = np.sin(lat_rad) ** 2
    w = np.sqrt(1 - _WGS84_E2 * s2)
    n = _WGS84_A / w
    m = _WGS84_A * (1 - _WGS84_E2) / w**3
    return m, n


def _bearing_dist(lat1, lon1, lat2, lon2):
    """Initial great-circle bearing (rad, clockwise from north) and distance (m), sphere."""
    dlon = lon2 - lon1
    y = np.sin(dlon) * np.cos(lat2)
    x = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dlon)
    brg = np.arctan2(y, x)
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlon / 2) ** 2
    d = 2 * geo.EARTH_MEAN_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    return brg, d


@dataclass
class FlightPlan:
    """Waypoints (deg, m, m/s) of one synthetic target and how it flies them.

    The target appears ``start_s`` after the scenario start at ``init`` = (lat_deg, lon_deg,
    alt_m, heading_deg, speed_mps, next waypoint index), by default at the first waypoint
    heading for the second.
    """

    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_m: np.ndarray
    speed_mps: np.ndarray
    loop: bool = False
    bank_deg: float = 25.0
    start_s: float = 0.0
    accel_mps2: float = 1.0
    climb_mps: float = 12.0
    descent_mps: float = 12.0
    init: tuple[float, float, float, float, float, int] | None = None

    def initial_state(self) -> tuple[float, float, float, float, float, int]:
        if self.init is not None:
            return self.init
        az, _, _ = GEOD.inv(self.lon_deg[0], self.lat_deg[0], self.lon_deg[1], self.lat_deg[1])
        return (
            float(self.lat_deg[0]),
            float(self.lon_deg[0]),
            float(self.alt_m[0]),
            float(az % 360.0),
            float(self.speed_mps[0]),
            1,
        )


def racetrack_waypoints(lat_deg, lon_deg, heading_deg, leg_length_m, turn_radius_m, turn="right"):
    """Waypoints (lat, lon) of a racetrack whose first leg starts at (lat, lon) and flies
    ``heading_deg``; the turn ends are half circles sampled every 30 degrees."""
    s = 1.0 if turn == "right" else -1.0
    h = heading_deg
    lon1, lat1, _ = GEOD.fwd(lon_deg, lat_deg, h, leg_length_m)
    c1lon, c1lat, _ = GEOD.fwd(lon1, lat1, h + s * 90, turn_radius_m)
    c0lon, c0lat, _ = GEOD.fwd(lon_deg, lat_deg, h + s * 90, turn_radius_m)
    pts = [(lat1, lon1)]
    for k in range(1, 7):  # around C1 from bearing h - 90 s to h + 90 s
        b = h - s * 90 + s * 30 * k
        lo, la, _ = GEOD.fwd(c1lon, c1lat, b, turn_radius_m)
        pts.append((la, lo))
    for k in range(1, 7):  # around C0 from h + 90 s to h + 270 s
        b = h + s * 90 + s * 30 * k
        lo, la, _ = GEOD.fwd(c0lon, c0lat, b, turn_radius_m)
        pts.append((la, lo))
    arr = np.array(pts)
    return arr[:, 0], arr[:, 1]


def orbit_waypoints(lat_deg, lon_deg, radius_m, start_bearing_deg=0.0, turn="right", n=36):
    """``n`` points on a circle around (lat, lon), in flying order starting at
    ``start_bearing_deg`` from the centre."""
    s = 1.0 if turn == "right" else -1.0
    b = start_bearing_deg + s * 360.0 / n * np.arange(n)
    lo, la, _ = GEOD.fwd(np.full(n, lon_deg), np.full(n, lat_deg), b, np.full(n, radius_m))
    return np.asarray(la), np.asarray(lo)


def integrate_plans(plans: list[FlightPlan], t0_s: float, n_steps: int, dt_s: float, progress=None):
    """Fly all plans on the grid ``t0 + k dt``, k < n_steps. Returns (lat_deg, lon_deg, alt_m,
    vel_enu_mps (N, T, 3), alive (N, T))."""
    n = len(plans)
    shape = (n, n_steps)
    out_lat = np.full(shape, np.nan)
    out_lon = np.full(shape, np.nan)
    out_alt = np.full(shape, np.nan)
    out_vel = np.full((*shape, 3), np.nan)
    alive = np.zeros(shape, dtype=bool)
    if n == 0:
        return out_lat, out_lon, out_alt, out_vel, alive
    wmax = max(len(p.lat_deg) for p in plans)
    W_lat = np.zeros((n, wmax))
    W_lon = np.zeros((n, wmax))
    W_alt = np.zeros((n, wmax))
    W_spd = np.zeros((n, wmax))
    n_wp = np.zeros(n, dtype=int)
    loop = np.zeros(n, dtype=bool)
    tan_bank = np.zeros(n)
    accel = np.zeros(n)
    climb = np.zeros(n)
    descent = np.zeros(n)
    start_k = np.zeros(n, dtype=int)
    lat = np.zeros(n)
    lon = np.zeros(n)
    alt = np.zeros(n)
    psi = np.zeros(n)
    v = np.zeros(n)
    nxt = np.zeros(n, dtype=int)
    for i, p in enumerate(plans):
        w = len(p.lat_deg)
        n_wp[i] = w
        W_lat[i, :w] = np.radians(p.lat_deg)
        W_lon[i, :w] = np.radians(p.lon_deg)
        W_alt[i, :w] = p.alt_m
        W_spd[i, :w] = p.speed_mps
        W_lat[i, w:] = W_lat[i, w - 1]
        W_lon[i, w:] = W_lon[i, w - 1]
        W_alt[i, w:] = W_alt[i, w - 1]
        W_spd[i, w:] = W_spd[i, w - 1]
        loop[i] = p.loop
        tan_bank[i] = np.tan(np.radians(p.bank_deg))
        accel[i], climb[i], descent[i] = p.accel_mps2, p.climb_mps, p.descent_mps
        start_k[i] = int(np.ceil(p.start_s / dt_s - 1e-9))
        la, lo, al, hd, sp, nx = p.initial_state()
        lat[i], lon[i], alt[i], psi[i], v[i], nxt[i] = np.radians(la), np.radians(lo), al, np.radians(hd), sp, nx
    vz = np.zeros(n)
    rows = np.arange(n)
    finished = np.zeros(n, dtype=bool)
    report_every = max(1, n_steps // 20)
    for k in range(n_steps):
        active = (start_k <= k) & ~finished
        alive[active, k] = True
        out_lat[active, k] = lat[active]
        out_lon[active, k] = lon[active]
        out_alt[active, k] = alt[active]
        out_vel[active, k, 0] = v[active] * np.sin(psi[active])
        out_vel[active, k, 1] = v[active] * np.cos(psi[active])
        out_vel[active, k, 2] = vz[active]
        if progress is not None and k % report_every == 0:
            progress("truth", k / n_steps)
        # --- guidance toward waypoint nxt
        tl, tn = W_lat[rows, nxt], W_lon[rows, nxt]
        brg, dist = _bearing_dist(lat, lon, tl, tn)
        after = np.where(loop, (nxt + 1) % n_wp, np.minimum(nxt + 1, n_wp - 1))
        leg_brg, _ = _bearing_dist(tl, tn, W_lat[rows, after], W_lon[rows, after])
        dpsi = np.abs(_wrap_pi(leg_brg - brg))
        r_turn = v**2 / (G0 * tan_bank)
        lead = r_turn * np.tan(np.minimum(dpsi, np.radians(150)) / 2)
        last = ~loop & (nxt >= n_wp - 1)
        reached = dist < np.maximum(lead, v * dt_s)
        end_now = active & last & (dist < v * dt_s)
        finished |= end_now
        switch = reached & ~last
        nxt = np.where(switch, after, nxt)
        # --- heading: coordinated turn toward the bearing of the (possibly new) waypoint
        tl, tn = W_lat[rows, nxt], W_lon[rows, nxt]
        brg, dist = _bearing_dist(lat, lon, tl, tn)
        after = np.where(loop, (nxt + 1) % n_wp, np.minimum(nxt + 1, n_wp - 1))
        leg_brg, _ = _bearing_dist(tl, tn, W_lat[rows, after], W_lon[rows, after])
        last = ~loop & (nxt >= n_wp - 1)
        lead = np.where(last, 0.0, r_turn * np.tan(np.minimum(np.abs(_wrap_pi(leg_brg - brg)), np.radians(150)) / 2))
        omega = G0 * tan_bank / np.maximum(v, 1.0)
        dh = np.clip(_wrap_pi(brg - psi), -omega * dt_s, omega * dt_s)
        # --- speed and vertical speed
        v_new = v + np.clip(W_spd[rows, nxt] - v, -accel * dt_s, accel * dt_s)
        # reach the waypoint's altitude where the turn onto the next leg begins
        t_go = np.maximum((dist - lead) / np.maximum(v_new, 1.0), dt_s)
        d_alt = W_alt[rows, nxt] - alt
        # level off without overshoot: |vz| <= sqrt(2 a |d_alt|) with a = 1 m/s^2
        vz_cmd = np.sign(d_alt) * np.minimum(np.abs(d_alt) / t_go, np.sqrt(2.0 * np.abs(d_alt)))
        vz_cmd = np.clip(vz_cmd, -descent, climb)
        vz_new = vz + np.clip(vz_cmd - vz, -2.0 * dt_s, 2.0 * dt_s)
        psi_new = psi + dh
        ve0, vn0 = v * np.sin(psi), v * np.cos(psi)
        ve1, vn1 = v_new * np.sin(psi_new), v_new * np.cos(psi_new)
        m, nn = _radii(lat)
        upd = active & ~end_now
        lat = np.where(upd, lat + 0.5 * (vn0 + vn1) * dt_s / (m + alt), lat)
        lon = np.where(upd, lon + 0.5 * (ve0 + ve1) * dt_s / ((nn + alt) * np.cos(lat)), lon)
        alt = np.where(upd, alt + 0.5 * (vz + vz_new) * dt_s, alt)
        psi = np.where(upd, _wrap_pi(psi_new), psi)
        v = np.where(upd, v_new, v)
        vz = np.where(upd, vz_new, vz)
    lon_deg = (np.degrees(out_lon) + 180.0) % 360.0 - 180.0
    return np.degrees(out_lat), lon_deg, out_alt, out_vel, alive


@dataclass
class TruthGrid:
    """All targets on the regular grid ``t0_s + k dt_s`` (k < n_steps), ECEF, with identities.

    Arrays are (N targets, T steps[, 3]); ``alive[i, k]`` says target i exists at step k.
    """

    t0_s: float
    dt_s: float
    pos_ecef_m: np.ndarray
    vel_ecef_mps: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_m: np.ndarray
    alive: np.ndarray
    mode_s_address: np.ndarray
    mode_3a: np.ndarray
    callsign: np.ndarray
    cooperative: np.ndarray
    adsb_equipped: np.ndarray
    nacp: np.ndarray
    names: list[str] = field(default_factory=list)

    @property
    def n_targets(self) -> int:
        return self.alive.shape[0]

    @property
    def n_steps(self) -> int:
        return self.alive.shape[1]

    @property
    def times_s(self) -> np.ndarray:
        return self.t0_s + self.dt_s * np.arange(self.n_steps)

    @classmethod
    def from_geodetic(cls, t0_s, dt_s, lat_deg, lon_deg, alt_m, vel_enu_mps, alive, **ident):
        pos = np.full((*alive.shape, 3), np.nan)
        vel = np.full((*alive.shape, 3), np.nan)
        if alive.any():
            la, lo, al = lat_deg[alive], lon_deg[alive], alt_m[alive]
            pos[alive] = geo.geodetic_to_ecef(la, lo, al)
            rot = geo.enu_rotation(la, lo)
            vel[alive] = np.einsum("nji,nj->ni", rot, vel_enu_mps[alive])
        return cls(t0_s, dt_s, pos, vel, lat_deg, lon_deg, alt_m, alive, **ident)

    def interp(self, idx, t_s):
        """Cubic Hermite interpolation of target(s) ``idx`` at time(s) ``t_s``.

        Returns (pos_ecef_m (M, 3), vel_ecef_mps (M, 3), alt_m (M,), valid (M,)); ``valid`` is
        False where the target does not exist at that time (values are then NaN)."""
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        idx, t = np.broadcast_arrays(idx, t)
        x = (t - self.t0_s) / self.dt_s
        x = np.where(np.isfinite(x), x, -1.0)
        k = np.floor(x).astype(np.int64)
        inside = (x >= 0) & (x <= self.n_steps - 1)
        k = np.clip(k, 0, max(self.n_steps - 2, 0))
        u = np.clip(x - k, 0.0, 1.0)
        k1 = np.minimum(k + 1, self.n_steps - 1)
        valid = inside & self.alive[idx, k] & self.alive[idx, k1]
        p0, p1 = self.pos_ecef_m[idx, k], self.pos_ecef_m[idx, k1]
        v0, v1 = self.vel_ecef_mps[idx, k] * self.dt_s, self.vel_ecef_mps[idx, k1] * self.dt_s
        u2, u3 = u * u, u * u * u
        h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2
        d00, d10, d01, d11 = 6 * u2 - 6 * u, 3 * u2 - 4 * u + 1, -6 * u2 + 6 * u, 3 * u2 - 2 * u
        pos = h00[:, None] * p0 + h10[:, None] * v0 + h01[:, None] * p1 + h11[:, None] * v1
        vel = (d00[:, None] * p0 + d10[:, None] * v0 + d01[:, None] * p1 + d11[:, None] * v1) / self.dt_s
        alt = (1 - u) * self.alt_m[idx, k] + u * self.alt_m[idx, k1]
        pos[~valid] = np.nan
        vel[~valid] = np.nan
        alt = np.where(valid, alt, np.nan)
        return pos, vel, alt, valid

    def geodetic_interp(self, idx, t_s):
        """Interpolated (lat_deg, lon_deg, alt_m) (linear; for sensor platforms)."""
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        idx, t = np.broadcast_arrays(idx, t)
        x = np.clip(np.nan_to_num((t - self.t0_s) / self.dt_s), 0, self.n_steps - 1)
        k = np.clip(np.floor(x).astype(np.int64), 0, max(self.n_steps - 2, 0))
        k1 = np.minimum(k + 1, self.n_steps - 1)
        u = x - k
        dlon = (self.lon_deg[idx, k1] - self.lon_deg[idx, k] + 180.0) % 360.0 - 180.0
        return (
            (1 - u) * self.lat_deg[idx, k] + u * self.lat_deg[idx, k1],
            self.lon_deg[idx, k] + u * dlon,
            (1 - u) * self.alt_m[idx, k] + u * self.alt_m[idx, k1],
        )

    def lifetime_s(self) -> tuple[np.ndarray, np.ndarray]:
        """First and last time (s) each target exists (NaN if never)."""
        any_alive = self.alive.any(axis=1)
        first = np.argmax(self.alive, axis=1)
        last = self.n_steps - 1 - np.argmax(self.alive[:, ::-1], axis=1)
        t = self.times_s
        return np.where(any_alive, t[first], np.nan), np.where(any_alive, t[last], np.nan)

    def truth_records(self, step_s: float) -> np.ndarray:
        """Truth at every multiple of ``step_s`` from ``t0_s`` while each target exists, sorted by
        time then truth_id (records.TRUTH_DTYPE)."""
        stride = max(1, int(round(step_s / self.dt_s)))
        sub = self.alive[:, ::stride]
        kk, ii = np.nonzero(sub.T)  # time-major order: sorted by time then truth id
        k = kk * stride
        out = empty_truth(len(ii))
        if len(ii) == 0:
            return out
        out["time_s"] = self.t0_s + k * self.dt_s
        out["truth_id"] = ii
        out["pos_ecef_m"] = self.pos_ecef_m[ii, k]
        out["vel_ecef_mps"] = self.vel_ecef_mps[ii, k]
        out["lat_deg"] = self.lat_deg[ii, k]
        out["lon_deg"] = self.lon_deg[ii, k]
        out["alt_m"] = self.alt_m[ii, k]
        out["mode_s_address"] = self.mode_s_address[ii]
        out["mode_3a"] = self.mode_3a[ii]
        out["callsign"] = self.callsign[ii]
        out["cooperative"] = self.cooperative[ii]
        out["adsb_equipped"] = self.adsb_equipped[ii]
        assert out.dtype == TRUTH_DTYPE
        return out
