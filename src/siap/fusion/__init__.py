"""Coalition track-to-track association and fusion (see docs/fusion.md).

Public API: :class:`TrackFuser`, :class:`FusionConfig`, the CTN encoding helpers
(:func:`local_key`, :func:`decode_ctn`) and the batch estimation functions.
"""

from .config import FusionConfig
from .ctn import decode_ctn, local_key, partner_code
from .estimation import fast_ci_weights, fuse_stack, pair_statistic, predict_cv
from .fuser import TrackFuser, format_sensor_union, format_sources, same_label_or_empty

__all__ = [
    "FusionConfig",
    "TrackFuser",
    "decode_ctn",
    "local_key",
    "partner_code",
    "fast_ci_weights",
    "fuse_stack",
    "pair_statistic",
    "predict_cv",
    "format_sources",
    "format_sensor_union",
    "same_label_or_empty",
]
