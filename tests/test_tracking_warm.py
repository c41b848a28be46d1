"""The first call never stalls on a compile: constructing a Tracker loads (or compiles, the
first time) every numba specialisation that a run uses, including unusual shapes such as the
snapshot of exactly one track."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json
import numpy as np
from numba.core.registry import CPUDispatcher
from siap.geo import LocalFrame
from siap.tracking import Tracker, TrackerConfig, jpda
from siap.tracking.kernels import association, imm_ekf, management, output
from siap.tracking.kernels import plots as plot_kernels
from siap.tracking.synthetic import adsb_plots, cv_targets, radar_3d_plots

def signatures():
    out = {}
    for mod in (association, imm_ekf, management, output, plot_kernels, jpda):
        for name in dir(mod):
            f = getattr(mod, name)
            if isinstance(f, CPUDispatcher):
                out[mod.__name__ + "." + name] = sorted(str(s) for s in f.signatures)
    return out

T0 = 1_700_000_000.0
frame = LocalFrame(35.0, 135.0, 0.0)
Tracker(TrackerConfig())
warm = signatures()
rng = np.random.default_rng(1)
traj = cv_targets(6, rng, half_width_m=20_000.0, t0=T0)
plots = np.concatenate([
    radar_3d_plots(traj, 6, frame, [0, 0, 20], t0=T0, n_scans=12, scan_s=2.0, sigma_range_m=40,
                   sigma_az_rad=1e-3, sigma_el_rad=1e-3, pd=0.9, clutter_per_scan=4, rng=rng),
    adsb_plots(traj, np.arange(3), frame, t0=T0, duration_s=24.0, period_s=1.0, sigma_h_m=15,
               sigma_v_m=20, rng=rng, mode_s=np.arange(6) + 0x100000),
])
plots = plots[np.argsort(plots["time_s"], kind="stable")]
one = plots[plots["truth_id"] == 0]
for cfg in (dict(), dict(association="jpda", false_alarm_density_per_km2=0.01),
            dict(imm_enabled=False)):
    for pl in (one, plots):  # exactly one track, then several
        trk = Tracker(TrackerConfig(origin_lat_deg=35.0, origin_lon_deg=135.0, **cfg))
        for t in np.arange(T0 + 2.0, T0 + 26.0, 2.0):
            trk.process(pl[(pl["time_s"] > t - 2.0) & (pl["time_s"] <= t)])
            trk.advance(t)
            trk.snapshot(t)
after = signatures()
print(json.dumps({k: [s for s in v if s not in warm.get(k, [])] for k, v in after.items()}))
"""


@pytest.mark.slow
def test_a_run_uses_no_specialisation_the_warm_up_did_not_load():
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True, timeout=600
    )
    new = {k: v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items() if v}
    assert new == {}
