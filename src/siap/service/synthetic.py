"""Synthetic pictures for load tests and benchmarks of the service: ``n`` tracks flying
straight and level over the Pacific scenario's area, a picture every ``step_s`` seconds.

Labels are taken from the policy so that releasability matters: about a third of the tracks
carry the label of the partner's most restricted sensor (e.g. JPN's ``REL TO JPN, USA``
radars), the rest the partner's track label; every fourth track carries a Mode S address and
callsign. Used by ``bench/bench_service.py`` and the browser test (2,000 tracks).
"""

from __future__ import annotations

import numpy as np

from siap import geo, records

__all__ = ["synthetic_pictures"]


def synthetic_pictures(
    n_tracks: int,
    n_times: int,
    partners,
    policy,
    *,
    start_s: float = 1_772_420_400.0,
    step_s: float = 1.0,
    seed: int = 0,
    centre: tuple[float, float] = (31.0, 131.0),
    spread_deg: float = 7.0,
) -> dict[str, np.ndarray]:
    """Per partner, ``n_times`` pictures of ``n_tracks`` tracks (TRACK_DTYPE rows)."""
    rng = np.random.default_rng(seed)
    lat0 = centre[0] + rng.uniform(-spread_deg, spread_deg, n_tracks) * 0.7
    lon0 = centre[1] + rng.uniform(-spread_deg, spread_deg, n_tracks)
    alt = rng.choice([3_000.0, 6_000.0, 9_000.0, 10_500.0, 11_500.0], n_tracks) + rng.normal(0, 100, n_tracks)
    speed = rng.uniform(120.0, 260.0, n_tracks)
    heading = rng.uniform(0, 2 * np.pi, n_tracks)
    ve, vn = speed * np.sin(heading), speed * np.cos(heading)
    out = {}
    for k, partner in enumerate(partners):
        own = policy.partner(partner)
        restricted = min(  # the sensor label releasable to the fewest partners
            (s.label for s in own.sensors.values()),
            key=lambda lab: (sum(policy.releasable(lab, p) for p in policy.partners), lab),
            default=own.track_label,
        )
        labels = np.where(np.arange(n_tracks) % 3 == 0, restricted, own.track_label)
        rows = records.empty_tracks(n_tracks * n_times)
        for j in range(n_times):
            dt = j * step_s
            lat = lat0 + vn * dt / 111_320.0
            lon = lon0 + ve * dt / (111_320.0 * np.cos(np.radians(lat0)))
            r = rows[j * n_tracks : (j + 1) * n_tracks]
            r["time_s"] = start_s + dt
            r["track_id"] = (k + 1) * 10_000_000 + np.arange(n_tracks)
            r["status"] = records.TrackStatus.CONFIRMED
            r["lat_deg"], r["lon_deg"], r["alt_m"] = lat, lon, alt
            r["pos_ecef_m"] = geo.geodetic_to_ecef(lat, lon, alt)
            rot = geo.enu_rotation(lat, lon)  # ENU = R @ ECEF, so ECEF = R^T @ ENU
            v_enu = np.stack([ve, vn, np.zeros(n_tracks)], axis=1)
            r["vel_ecef_mps"] = np.einsum("nji,nj->ni", rot, v_enu)
            cov = np.zeros((n_tracks, 6, 6))
            cov[:, [0, 1, 2], [0, 1, 2]] = 150.0**2
            cov[:, [3, 4, 5], [3, 4, 5]] = 5.0**2
            r["cov_ecef"] = cov
            r["model_prob"] = (1.0, 0.0)
            r["n_updates"] = 10 + j
            coop = np.arange(n_tracks) % 4 == 0
            r["mode_s_address"] = np.where(coop, 0x840000 + np.arange(n_tracks), -1)
            r["mode_3a"] = -1
            r["callsign"] = np.where(coop, np.char.add("SYN", (np.arange(n_tracks) % 10000).astype("U4")), "")
            r["partner"] = ""
            r["label"] = labels
            r["sources"] = f"{partner}:1"
            r["sensors"] = ",".join(sorted(own.sensors)) if own.sensors else partner
        out[partner] = rows
    return out
