"""Synthetic local tracks for tests, benchmarks and the docs: partners' estimates of the same
objects with independent errors plus an error common to all partners (the correlated part that
makes naive fusion overconfident).

The error model for object ``k`` and partner ``i`` is ``e_ik = c_k + u_ik`` with the common
error ``c_k ~ N(0, Pc)`` and the partner's own error ``u_ik ~ N(0, P_i)``; partner ``i`` reports
the covariance ``Pc + P_i`` (correct marginally, cross-covariance ``Pc`` with every other
partner, which a federated fuser does not know).
"""

from __future__ import annotations

import numpy as np

from siap import records
from siap.geo import enu_rotation, geodetic_to_ecef

__all__ = ["random_rotation", "anisotropic_cov", "objects_on_grid", "make_local_tracks", "draw"]


def random_rotation(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random 3x3 rotations (QR of Gaussian matrices, sign-fixed)."""
    a = rng.normal(size=(n, 3, 3))
    q, r = np.linalg.qr(a)
    s = np.sign(np.einsum("nii->ni", r))
    return q * s[:, None, :]


def anisotropic_cov(
    rng: np.random.Generator,
    n: int,
    sigma_pos_m: tuple[float, float],
    sigma_vel_mps: tuple[float, float],
) -> np.ndarray:
    """``n`` 6x6 covariances: randomly oriented ellipsoids with axes drawn uniformly within the
    given (min, max) standard deviations for position and velocity; no pos-vel correlation."""
    R = random_rotation(rng, n)
    sp = rng.uniform(*sigma_pos_m, size=(n, 3))
    sv = rng.uniform(*sigma_vel_mps, size=(n, 3))
    P = np.zeros((n, 6, 6))
    P[:, :3, :3] = np.einsum("nij,nj,nkj->nik", R, sp**2, R)
    P[:, 3:, 3:] = np.einsum("nij,nj,nkj->nik", R, sv**2, R)
    return 0.5 * (P + np.swapaxes(P, 1, 2))


def objects_on_grid(
    n: int,
    lat_deg: float = 35.0,
    lon_deg: float = 135.0,
    alt_m: float = 9000.0,
    spacing_m: float = 20_000.0,
    speed_mps: float = 220.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """ECEF positions and velocities (each (n, 3)) of ``n`` level-flying objects on a square
    grid of the given spacing around (lat, lon), headings random."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    ix, iy = np.divmod(np.arange(n), side)
    east = (ix - side / 2) * spacing_m
    north = (iy - side / 2) * spacing_m
    rot = enu_rotation(lat_deg, lon_deg)
    origin = geodetic_to_ecef(lat_deg, lon_deg, alt_m)[0]
    enu = np.stack([east, north, np.zeros(n)], axis=1)
    pos = origin + enu @ rot
    hdg = rng.uniform(0, 2 * np.pi, n)
    vel_enu = np.stack([speed_mps * np.sin(hdg), speed_mps * np.cos(hdg), np.zeros(n)], axis=1)
    return pos, vel_enu @ rot


def make_local_tracks(
    truth_pos: np.ndarray,
    truth_vel: np.ndarray,
    partner: str,
    track_ids,
    time_s: float,
    own_cov: np.ndarray,
    own_err: np.ndarray | None = None,
    common_cov: np.ndarray | None = None,
    common_err: np.ndarray | None = None,
    mode_s=None,
    label: str = "",
    callsign=None,
    mode_3a=None,
    status: int = int(records.TrackStatus.CONFIRMED),
    n_updates: int = 10,
) -> np.ndarray:
    """Local tracks of ``partner`` for the given truth states: estimate = truth + common_err +
    own_err, reported covariance = common_cov + own_cov (see the module doc). Errors are
    (n, 6) arrays, covariances (n, 6, 6) or (6, 6); None means zero. ``n_updates``: the
    filters' update count; the information-matrix fuser takes a row as new information only
    when it changed (or is <= 0, unknown), so a stream of fresh estimates should raise it."""
    n = len(truth_pos)
    out = records.empty_tracks(n)
    err = np.zeros((n, 6))
    if own_err is not None:
        err += own_err
    if common_err is not None:
        err += common_err
    cov = np.broadcast_to(own_cov, (n, 6, 6)).copy()
    if common_cov is not None:
        cov += np.broadcast_to(common_cov, (n, 6, 6))
    out["time_s"] = time_s
    out["track_id"] = np.asarray(track_ids, dtype=np.int64)
    out["status"] = status
    out["pos_ecef_m"] = truth_pos + err[:, :3]
    out["vel_ecef_mps"] = truth_vel + err[:, 3:]
    out["cov_ecef"] = cov
    out["model_prob"] = (1.0, 0.0)
    out["n_updates"] = n_updates
    out["partner"] = partner
    out["label"] = label
    out["sources"] = f"{partner}-net"
    if mode_s is not None:
        out["mode_s_address"] = mode_s
    if callsign is not None:
        out["callsign"] = callsign
    if mode_3a is not None:
        out["mode_3a"] = mode_3a
    return out


def draw(rng: np.random.Generator, cov: np.ndarray) -> np.ndarray:
    """One Gaussian draw per covariance of a (n, 6, 6) stack."""
    L = np.linalg.cholesky(cov)
    return np.einsum("nij,nj->ni", L, rng.normal(size=cov.shape[:2]))
