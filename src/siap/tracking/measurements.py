"""Plot validation, conversion into the tracker frame and the measurement models (batched).

Every plot becomes a uniform 3-vector measurement ``z`` with covariance ``R`` (3x3):

* ``RADAR_3D``: ``z = (range_m, azimuth_rad, elevation_rad)`` measured in the sensor's own ENU
  frame, ``h(x) = polar(T_s (p - s))`` where ``s`` is the sensor site and ``T_s`` the rotation
  from the tracker ENU frame to the sensor ENU frame (Bar-Shalom, Li & Kirubarajan 2001,
  *Estimation with Applications to Tracking and Navigation* (BLK), sec. 10.3.2: EKF with a polar
  measurement; the Jacobian is that of eq. 10.3.2-3 extended to 3D).
* ``RADAR_2D``: ``z = (range_m, azimuth_rad, alt_m)``; the third row is the Mode C altitude
  ``h_3(x) = |p + (0, 0, R_c)| - R_e`` (height above a sphere of the local Gaussian radius
  ``R_e`` through the origin, ``R_c = R_e + h_0``). Without Mode C the third row is switched
  off: ``z_3 = h_3 = 0``, ``H_3 = 0``, ``R_33 = 1``, so it adds exactly nothing to the gain,
  the Mahalanobis distance, or the likelihood ratio between IMM models.
* ``ADSB``: the geodetic report converted to the tracker ENU frame, ``h(x) = p`` (linear),
  with the reported ENU covariance rotated into the tracker frame: ``R = A C A^T``,
  ``A = E_t E_p^T`` (``E`` = ECEF-to-ENU rotations at the tracker origin and at the report).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from siap.geo import LocalFrame, enu_rotation, geodetic_to_ecef
from siap.records import MeasurementKind

from .kernels.plots import REASONS, plots_to_local, radar_sites, validate_codes

logger = logging.getLogger("siap.tracking")

RADAR_3D = int(MeasurementKind.RADAR_3D)
RADAR_2D = int(MeasurementKind.RADAR_2D)
ADSB = int(MeasurementKind.ADSB)

WGS84_A = 6_378_137.0
WGS84_E2 = 6.694379990141317e-3


def gaussian_radius_m(lat_deg: float) -> float:
    """Gaussian mean radius of curvature sqrt(M N) of the WGS84 ellipsoid at a latitude (m)."""
    s2 = np.sin(np.radians(lat_deg)) ** 2
    return float(WGS84_A * np.sqrt(1.0 - WGS84_E2) / (1.0 - WGS84_E2 * s2))


def validate(plots: np.ndarray, cfg) -> tuple[np.ndarray, dict[str, int]]:
    """Boolean mask of usable plots and the count of rejected plots per reason.

    Reasons: ``unknown_kind``, ``nan``, ``inf`` (a required field is NaN / infinite),
    ``negative_range``, ``impossible_range`` (zero or beyond ``max_range_m``),
    ``impossible_angle`` (|elevation| > 90 deg), ``impossible_position`` (latitude beyond 90 deg
    or longitude beyond 180 deg, of the report or of the radar; the report's altitude or the
    radar's own altitude outside [min_altitude_m, max_altitude_m]), ``bad_covariance`` (the covariance
    block in use is not symmetric positive definite).
    """
    codes = validate_codes(
        plots["kind"], plots["time_s"], plots["sensor_lat_deg"], plots["sensor_lon_deg"],
        plots["sensor_alt_m"], plots["range_m"], plots["azimuth_rad"], plots["elevation_rad"],
        plots["lat_deg"], plots["lon_deg"], plots["alt_m"], plots["cov"],
        float(cfg.max_range_m), float(cfg.min_altitude_m), float(cfg.max_altitude_m),
    )  # fmt: skip
    ok = codes == 0
    if ok.all():
        return ok, {}
    per = np.bincount(codes, minlength=len(REASONS) + 1)
    counts = {REASONS[i - 1]: int(per[i]) for i in range(1, len(per)) if per[i]}
    if logger.isEnabledFor(logging.DEBUG):
        for i in range(1, len(per)):
            if per[i]:
                ids = plots["plot_id"][codes == i][:5].tolist()
                logger.debug(
                    "rejected %d plot(s) for %s (first plot ids %s)", int(per[i]), REASONS[i - 1], ids
                )
    return ok, counts


PREP_DTYPE = np.dtype(
    [
        ("time_s", "f8"),
        ("plot_id", "i8"),
        ("sensor", "i8"),
        ("kind", "i8"),
        ("has_alt", "?"),
        ("dim", "i8"),
        ("z", "f8", (3,)),
        ("R", "f8", (3, 3)),
        ("site", "f8", (3,)),
        ("rot", "f8", (3, 3)),
        ("pos", "f8", (3,)),
        ("pos_cov", "f8", (3, 3)),
        ("mode_s", "i8"),
        ("mode_3a", "i8"),
        ("callsign", "U8"),
    ]
)
"""Compact internal form of a validated plot, already in the tracker frame (buffered, sorted)."""


@dataclass
class PreparedPlots:
    """Plots converted to the tracker frame (struct of arrays, one row per plot)."""

    time_s: np.ndarray  # (M,)
    kind: np.ndarray  # (M,) int
    has_alt: np.ndarray  # (M,) bool: RADAR_2D with Mode C
    dim: np.ndarray  # (M,) measurement dimension (2 or 3)
    z: np.ndarray  # (M, 3)
    R: np.ndarray  # (M, 3, 3)
    site: np.ndarray  # (M, 3) sensor site in tracker ENU (0 for ADS-B)
    rot: np.ndarray  # (M, 3, 3) tracker ENU -> sensor ENU (identity for ADS-B)
    pos: np.ndarray  # (M, 3) plot position in tracker ENU
    pos_cov: (
        np.ndarray
    )  # (M, 3, 3) its covariance (first-order), used for gating radii and initiation
    mode_s: np.ndarray  # (M,) i4
    mode_3a: np.ndarray  # (M,) i2
    callsign: np.ndarray  # (M,) U8
    sensor: np.ndarray  # (M,) sensor index in the tracker's registry

    @classmethod
    def from_array(cls, a: np.ndarray) -> PreparedPlots:
        """Contiguous columns of a PREP_DTYPE array."""
        return cls(**{f: np.ascontiguousarray(a[f]) for f in PREP_DTYPE.names if f != "plot_id"})


class Geometry:
    """The tracker frame and the curvature model used by the altitude measurement."""

    def __init__(self, cfg) -> None:
        self.frame = LocalFrame(cfg.origin_lat_deg, cfg.origin_lon_deg, cfg.origin_alt_m)
        self.E = self.frame.rotation  # ECEF -> tracker ENU
        self.origin_ecef = self.frame.origin_ecef
        self.re = gaussian_radius_m(cfg.origin_lat_deg)
        self.rc = self.re + cfg.origin_alt_m
        self.default_alt = cfg.default_altitude_m
        self.default_alt_var = cfg.default_altitude_std_m**2

    def altitude(self, p: np.ndarray) -> np.ndarray:
        """Height above the local sphere of points p (tracker ENU, (..., 3))."""
        return np.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2 + (self.rc + p[..., 2]) ** 2) - self.re

    def prepare(self, plots: np.ndarray, sensor_index: np.ndarray) -> np.ndarray:
        """Convert validated plots to the compact internal form (PREP_DTYPE).

        pyproj converts the distinct radar sites and the ADS-B reports to ECEF; one compiled
        pass (:func:`.kernels.plots.plots_to_local`) does the rest and writes straight into the
        output records."""
        m = len(plots)
        out = np.empty(m, PREP_DTYPE)
        out["time_s"] = plots["time_s"]
        out["plot_id"] = plots["plot_id"]
        out["sensor"] = sensor_index
        kind = plots["kind"]
        out["kind"] = kind
        out["mode_s"] = plots["mode_s_address"]
        out["mode_3a"] = plots["mode_3a"]
        out["callsign"] = plots["callsign"]
        lat, lon, alt = plots["lat_deg"], plots["lon_deg"], plots["alt_m"]
        # Sites are few (ground radars) or move slowly (airborne): convert each distinct one.
        sites, inv = radar_sites(
            kind, plots["sensor_lat_deg"], plots["sensor_lon_deg"], plots["sensor_alt_m"]
        )
        if len(sites):
            site_ecef = geodetic_to_ecef(sites[:, 0], sites[:, 1], sites[:, 2])
            site_u = (site_ecef - self.origin_ecef) @ self.E.T
            T_u = enu_rotation(sites[:, 0], sites[:, 1]) @ self.E.T  # tracker ENU -> sensor ENU
        else:
            site_u, T_u = np.zeros((0, 3)), np.zeros((0, 3, 3))
        if len(sites) == 0:  # ADS-B only
            ecef = geodetic_to_ecef(lat, lon, alt)
        else:
            ia = np.flatnonzero(inv < 0)
            ecef = geodetic_to_ecef(lat[ia], lon[ia], alt[ia]) if len(ia) else np.zeros((0, 3))
        plots_to_local(
            kind, plots["range_m"], plots["azimuth_rad"], plots["elevation_rad"], alt,
            plots["sensor_alt_m"], plots["cov"], lat, lon, inv, site_u, T_u, ecef,
            self.origin_ecef, self.E, self.re, self.default_alt, self.default_alt_var,
            out["has_alt"], out["dim"], out["z"], out["R"], out["site"], out["rot"], out["pos"],
            out["pos_cov"],
        )  # fmt: skip
        return out

    def h(
        self,
        p: np.ndarray,
        kind: np.ndarray,
        has_alt: np.ndarray,
        site: np.ndarray,
        rot: np.ndarray,
    ):
        """Predicted measurement and its Jacobian with respect to position, batched.

        ``p`` (K, 3) positions in tracker ENU; returns ``hz`` (K, 3) and ``Hp`` (K, 3, 3). The
        velocity columns of the full Jacobian are zero (none of the sensors measures Doppler).
        """
        k = len(p)
        isa = kind == ADSB
        hz = np.empty((k, 3))
        Hp = np.empty((k, 3, 3))
        if isa.all():
            hz[:] = p
            Hp[:] = np.eye(3)
            return hz, Hp
        ir = np.flatnonzero(~isa)
        rot_r = rot[ir]
        d = (rot_r @ (p[ir] - site[ir])[:, :, None])[:, :, 0]
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        rho2 = np.maximum(dx * dx + dy * dy, 1e-6)
        rho = np.sqrt(rho2)
        r2 = rho2 + dz * dz
        r = np.sqrt(r2)
        hr = np.empty((len(ir), 3))
        hr[:, 0] = r
        hr[:, 1] = np.arctan2(dx, dy)
        hr[:, 2] = np.arctan2(dz, rho)
        Jd = np.empty((len(ir), 3, 3))
        Jd[:, 0, 0], Jd[:, 0, 1], Jd[:, 0, 2] = dx / r, dy / r, dz / r
        Jd[:, 1, 0], Jd[:, 1, 1], Jd[:, 1, 2] = dy / rho2, -dx / rho2, 0.0
        f = dz / (r2 * rho)
        Jd[:, 2, 0], Jd[:, 2, 1], Jd[:, 2, 2] = -dx * f, -dy * f, rho / r2
        Hr = Jd @ rot_r
        is2 = kind[ir] == RADAR_2D
        if is2.any():
            i2 = np.flatnonzero(is2)
            q = p[ir[i2]]
            v = np.stack([q[:, 0], q[:, 1], self.rc + q[:, 2]], axis=1)
            nv = np.linalg.norm(v, axis=1)
            ha = has_alt[ir[i2]]
            hr[i2, 2] = np.where(ha, nv - self.re, 0.0)
            Hr[i2, 2, :] = np.where(ha[:, None], v / nv[:, None], 0.0)
        hz[ir] = hr
        Hp[ir] = Hr
        if isa.any():
            ia = np.flatnonzero(isa)
            hz[ia] = p[ia]
            Hp[ia] = np.eye(3)
        return hz, Hp

    def innovation(self, z: np.ndarray, hz: np.ndarray, kind: np.ndarray) -> np.ndarray:
        """z - h(x) with the azimuth difference wrapped into [-pi, pi) for radar plots."""
        nu = z - hz
        radar = kind != ADSB
        if radar.any():
            nu[:, 1] = np.where(radar, np.mod(nu[:, 1] + np.pi, 2 * np.pi) - np.pi, nu[:, 1])
        return nu
