"""Physically sane plot and track batches for the sharing tests (the verifier rejects anything
non-finite or impossible, see siap.sharing.content)."""

from __future__ import annotations

import numpy as np

from siap.geo import geodetic_to_ecef
from siap.records import MeasurementKind, TrackStatus, empty_plots, empty_tracks


def sane_tracks(n: int, t: float, partner: str, sources: str, label: str, first_id: int = 100) -> np.ndarray:
    """``n`` confirmed tracks over Japan at ``t``: consistent ECEF and geodetic positions (pyproj),
    200 m/s, a diagonal covariance."""
    b = empty_tracks(n)
    b["time_s"] = t
    b["track_id"] = np.arange(first_id, first_id + n)
    b["status"] = int(TrackStatus.CONFIRMED)
    b["partner"] = partner
    b["sources"] = sources
    b["label"] = label
    b["lat_deg"] = 35.0 + 0.01 * (np.arange(n) % 500)
    b["lon_deg"] = 135.0 + 0.05 * (np.arange(n) % 100)
    b["alt_m"] = 9000.0
    b["pos_ecef_m"] = geodetic_to_ecef(b["lat_deg"], b["lon_deg"], b["alt_m"])
    b["vel_ecef_mps"] = [150.0, -100.0, 80.0]
    b["cov_ecef"] = np.diag([400.0, 400.0, 900.0, 25.0, 25.0, 36.0])
    b["model_prob"] = [0.9, 0.1]
    b["n_updates"] = 5
    return b


def sane_plots(n: int, t: float, sensor: str, partner: str, label: str) -> np.ndarray:
    """``n`` 3D radar plots of a sensor at 35 N 135 E."""
    b = empty_plots(n)
    b["time_s"] = t
    b["plot_id"] = np.arange(n)
    b["sensor_id"] = sensor
    b["partner"] = partner
    b["kind"] = int(MeasurementKind.RADAR_3D)
    b["sensor_lat_deg"], b["sensor_lon_deg"], b["sensor_alt_m"] = 35.0, 135.0, 50.0
    b["range_m"] = np.linspace(1e4, 2e4, n)
    b["azimuth_rad"] = 0.5
    b["elevation_rad"] = 0.05
    b["cov"] = np.diag([2500.0, 1e-6, 1e-6])
    b["label"] = label
    return b
