"""Sensor models that turn truth into plots: rotating ground and airborne radars (with SSR)
and ADS-B receivers. See :mod:`siap.sensors.radar` and :mod:`siap.sensors.adsb`."""

from __future__ import annotations

from siap.sensors.adsb import adsb_info, simulate_adsb
from siap.sensors.base import SensorInfo, coverage_radius_m, nacp_sigma_m, swerling1_pd
from siap.sensors.radar import radar_info, simulate_radar

__all__ = [
    "SensorInfo",
    "adsb_info",
    "coverage_radius_m",
    "nacp_sigma_m",
    "radar_info",
    "simulate_adsb",
    "simulate_radar",
    "swerling1_pd",
]
