"""Multi-sensor tracking: IMM-EKF filters batched over tracks, chi-square gating with a
k-d tree, global nearest-neighbour assignment per cluster, and track management.

Public API::

    from siap.tracking import Tracker, TrackerConfig, track
    trk = Tracker(TrackerConfig(origin_lat_deg=35.0, origin_lon_deg=135.0))
    trk.process(plots); trk.flush(); tracks = trk.snapshot(t)
"""

from __future__ import annotations

from .config import TrackerConfig
from .tracker import PlotCorrector, Tracker, track, track_with_stats

__all__ = ["Tracker", "TrackerConfig", "track", "track_with_stats", "PlotCorrector"]
