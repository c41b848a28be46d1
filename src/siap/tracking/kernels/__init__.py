"""Compiled (numba) kernels of the tracker's hot loops, one module per topic; each call does a
batch of pairs, plots or tracks. Import from the topic module:

* :mod:`.imm_ekf` -- the IMM-EKF update: mixing and prediction, measurement functions,
  innovation statistics, Joseph-form gain, mode combination; pair scores, pair updates and the
  out-of-sequence update;
* :mod:`.association` -- gating (uniform grid, horizontal prefilter, gate radii) and the direct
  assignment of pairs alone in their cluster;
* :mod:`.management` -- which sensors have seen a track, coverage-aware and score deletion;
* :mod:`.output` -- snapshot states in ECEF and the text fields of TRACK_DTYPE;
* :mod:`.plots` -- plot validation codes, conversion to the local frame, radar sites;
* :mod:`._common` -- kind codes, fused multiply-add, the no-reference-counting option.

Kernels are compiled on first use and cached on disk (``cache=True``).
"""
