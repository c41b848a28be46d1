"""Coordinate frames: WGS84 geodetic, ECEF, local east-north-up (ENU) and sensor polar.

Geodetic <-> ECEF is done by pyproj (PROJ's ``cart`` conversion, EPSG:4979 <-> EPSG:4978).
ECEF <-> ENU is the exact rotation about the frame origin (e.g. Bar-Shalom et al. or any
geodesy text: rows of the rotation are the local east, north and up unit vectors in ECEF);
it is tested against PROJ's ``topocentric`` conversion. Polar is range, azimuth (clockwise
from true north) and elevation (above the local horizontal plane of the sensor) in the
sensor's own ENU frame.

All functions are vectorised: pass arrays of shape (N,) or (N, 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pyproj import Transformer

__all__ = [
    "EARTH_MEAN_RADIUS_M",
    "EFFECTIVE_EARTH_FACTOR",
    "geodetic_to_ecef",
    "ecef_to_geodetic",
    "enu_rotation",
    "LocalFrame",
    "enu_to_polar",
    "polar_to_enu",
    "polar_to_ecef",
    "ecef_to_polar",
    "radar_horizon_range_m",
]

EARTH_MEAN_RADIUS_M = 6_371_008.8  # IUGG mean radius
EFFECTIVE_EARTH_FACTOR = 4.0 / 3.0  # standard-atmosphere refraction model for radar horizons


@lru_cache(maxsize=1)
def _to_ecef() -> Transformer:
    return Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


@lru_cache(maxsize=1)
def _to_geodetic() -> Transformer:
    return Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def geodetic_to_ecef(lat_deg, lon_deg, alt_m) -> np.ndarray:
    """WGS84 latitude, longitude (deg) and ellipsoidal height (m) to ECEF (m), shape (N, 3)."""
    lat = np.atleast_1d(np.asarray(lat_deg, dtype=float))
    lon = np.atleast_1d(np.asarray(lon_deg, dtype=float))
    alt = np.atleast_1d(np.asarray(alt_m, dtype=float))
    if not lat.shape == lon.shape == alt.shape:
        lat, lon, alt = np.broadcast_arrays(lat, lon, alt)
    x, y, z = _to_ecef().transform(lon, lat, alt)
    out = np.empty((*np.shape(x), 3))
    out[..., 0], out[..., 1], out[..., 2] = x, y, z
    return out


def ecef_to_geodetic(pos_ecef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECEF (m), shape (N, 3), to WGS84 (lat_deg, lon_deg, alt_m), each shape (N,)."""
    p = np.atleast_2d(np.asarray(pos_ecef, dtype=float))
    lon, lat, alt = _to_geodetic().transform(p[:, 0], p[:, 1], p[:, 2])
    return np.asarray(lat), np.asarray(lon), np.asarray(alt)


def enu_rotation(lat_deg, lon_deg) -> np.ndarray:
    """Rotation(s) from ECEF vectors to local ENU vectors at geodetic (lat, lon).

    Returns shape (3, 3) for scalar input, (N, 3, 3) for arrays; ``enu = R @ ecef``.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=float))
    lon = np.radians(np.asarray(lon_deg, dtype=float))
    sl, cl = np.sin(lat), np.cos(lat)
    so, co = np.sin(lon), np.cos(lon)
    rot = np.empty((*np.broadcast_shapes(lat.shape, lon.shape), 3, 3))
    rot[..., 0, 0], rot[..., 0, 1], rot[..., 0, 2] = -so, co, 0.0
    rot[..., 1, 0], rot[..., 1, 1], rot[..., 1, 2] = -sl * co, -sl * so, cl
    rot[..., 2, 0], rot[..., 2, 1], rot[..., 2, 2] = cl * co, cl * so, sl
    return rot


@dataclass(frozen=True)
class LocalFrame:
    """A local tangent-plane (ENU) frame with its origin at a WGS84 point."""

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0

    @property
    def origin_ecef(self) -> np.ndarray:
        return geodetic_to_ecef(self.lat_deg, self.lon_deg, self.alt_m)[0]

    @property
    def rotation(self) -> np.ndarray:
        """3x3 rotation taking ECEF vectors to ENU vectors."""
        return enu_rotation(self.lat_deg, self.lon_deg)

    def ecef_to_enu(self, pos_ecef) -> np.ndarray:
        p = np.atleast_2d(np.asarray(pos_ecef, dtype=float))
        return (p - self.origin_ecef) @ self.rotation.T

    def enu_to_ecef(self, pos_enu) -> np.ndarray:
        p = np.atleast_2d(np.asarray(pos_enu, dtype=float))
        return p @ self.rotation + self.origin_ecef

    def vec_ecef_to_enu(self, vec_ecef) -> np.ndarray:
        return np.atleast_2d(np.asarray(vec_ecef, dtype=float)) @ self.rotation.T

    def vec_enu_to_ecef(self, vec_enu) -> np.ndarray:
        return np.atleast_2d(np.asarray(vec_enu, dtype=float)) @ self.rotation

    def geodetic_to_enu(self, lat_deg, lon_deg, alt_m) -> np.ndarray:
        return self.ecef_to_enu(geodetic_to_ecef(lat_deg, lon_deg, alt_m))

    def enu_to_geodetic(self, pos_enu) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return ecef_to_geodetic(self.enu_to_ecef(pos_enu))


def enu_to_polar(enu) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ENU (m), shape (N, 3), to (range_m, azimuth_rad in [0, 2 pi), elevation_rad)."""
    e = np.atleast_2d(np.asarray(enu, dtype=float))
    x, y, z = e[:, 0], e[:, 1], e[:, 2]
    ground = np.hypot(x, y)
    rng = np.sqrt(ground**2 + z**2)
    az = np.mod(np.arctan2(x, y), 2 * np.pi)
    el = np.arctan2(z, ground)
    return rng, az, el


def polar_to_enu(range_m, azimuth_rad, elevation_rad) -> np.ndarray:
    """(range, azimuth clockwise from north, elevation) to ENU (m), shape (N, 3)."""
    r = np.atleast_1d(np.asarray(range_m, dtype=float))
    az = np.atleast_1d(np.asarray(azimuth_rad, dtype=float))
    el = np.atleast_1d(np.asarray(elevation_rad, dtype=float))
    ce = np.cos(el)
    return np.stack([r * ce * np.sin(az), r * ce * np.cos(az), r * np.sin(el)], axis=-1)


def ecef_to_polar(pos_ecef, sensor_lat_deg, sensor_lon_deg, sensor_alt_m):
    """Target ECEF positions seen from sensors at the given geodetic positions (per row)."""
    p = np.atleast_2d(np.asarray(pos_ecef, dtype=float))
    site = geodetic_to_ecef(sensor_lat_deg, sensor_lon_deg, sensor_alt_m)
    rot = enu_rotation(np.broadcast_to(sensor_lat_deg, len(p)), np.broadcast_to(sensor_lon_deg, len(p)))
    enu = np.einsum("nij,nj->ni", rot, p - site)
    return enu_to_polar(enu)


def polar_to_ecef(range_m, azimuth_rad, elevation_rad, sensor_lat_deg, sensor_lon_deg, sensor_alt_m):
    """Polar measurements from sensors at the given geodetic positions to ECEF (m), (N, 3)."""
    enu = polar_to_enu(range_m, azimuth_rad, elevation_rad)
    n = len(enu)
    site = geodetic_to_ecef(sensor_lat_deg, sensor_lon_deg, sensor_alt_m)
    rot = enu_rotation(np.broadcast_to(sensor_lat_deg, n), np.broadcast_to(sensor_lon_deg, n))
    return np.einsum("nji,nj->ni", rot, enu) + site


def radar_horizon_range_m(sensor_alt_m, target_alt_m, k: float = EFFECTIVE_EARTH_FACTOR):
    """Greatest range (m) at which a target at ``target_alt_m`` is above the radar horizon of a
    sensor at ``sensor_alt_m``, for a k-earth refraction model (k = 4/3 standard atmosphere):
    ``d = sqrt(2 k R h_s) + sqrt(2 k R h_t)`` (Skolnik, *Introduction to Radar Systems*, 3rd ed.,
    sec. 8.2). Heights below zero are treated as zero."""
    ke = k * EARTH_MEAN_RADIUS_M
    hs = np.maximum(np.asarray(sensor_alt_m, dtype=float), 0.0)
    ht = np.maximum(np.asarray(target_alt_m, dtype=float), 0.0)
    return np.sqrt(2 * ke * hs) + np.sqrt(2 * ke * ht)
