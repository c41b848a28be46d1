"""Out-of-sequence plots: a plot later than the reorder window is applied as an
out-of-sequence update (one-step retrodiction) and recovers what the in-sequence update would
have given; without it the plot is dropped."""

from __future__ import annotations

import numpy as np

from siap.geo import LocalFrame
from siap.tracking import Tracker, TrackerConfig
from siap.tracking.synthetic import adsb_plots, cv_targets

FRAME = LocalFrame(35.0, 135.0, 0.0)
T0 = 1_700_000_000.0
CV = dict(origin_lat_deg=35.0, origin_lon_deg=135.0, imm_enabled=False, reorder_window_s=0.0)


def _case(seed):
    """ADS-B reports of one aircraft every 2 s (40 m), and one extra report 1.2 s before the
    last one that arrives after the last one has been processed."""
    rng = np.random.default_rng(seed)
    traj = cv_targets(1, rng, half_width_m=10_000.0, t0=T0)
    pl = adsb_plots(traj, np.array([0]), FRAME, t0=T0, duration_s=24.0, period_s=2.0,
                    sigma_h_m=40.0, sigma_v_m=40.0, rng=rng, mode_s=np.array([0xABCDEF]))  # fmt: skip
    tau = float(pl["time_s"].max()) - 1.2
    late = adsb_plots(traj, np.array([0]), FRAME, t0=tau, duration_s=1.0, period_s=1.0,
                      sigma_h_m=40.0, sigma_v_m=40.0, rng=rng, mode_s=np.array([0xABCDEF]),
                      plot_id_start=99)  # fmt: skip
    return traj, pl, late


def _estimate(pl, late, mode, t_end):
    """Position (ECEF) and its covariance at ``t_end``: ``mode`` 'in' (all plots in time
    order), 'oosm' (the late plot after the others), 'drop' (the same, OOSM off)."""
    cfg = TrackerConfig(**CV, out_of_sequence=(mode != "drop"))
    trk = Tracker(cfg)
    if mode == "in":
        both = np.concatenate([pl, late])
        trk.process(both[np.argsort(both["time_s"], kind="stable")])
        trk.flush()
    else:
        trk.process(pl)
        trk.flush()
        trk.process(late)
    s = trk.snapshot(t_end)
    assert len(s) == 1
    return s["pos_ecef_m"][0], s["cov_ecef"][0][:3, :3], trk.stats


def test_late_plot_is_applied_and_recovers_the_in_sequence_estimate():
    traj, pl, late = _case(1)
    t_end = float(pl["time_s"].max())
    x_in, P_in, _ = _estimate(pl, late, "in", t_end)
    x_oo, P_oo, st = _estimate(pl, late, "oosm", t_end)
    x_dr, P_dr, st_dr = _estimate(pl, late, "drop", t_end)
    assert st["late_applied"] == 1 and st["late_dropped"] == 0
    assert st_dr["late_applied"] == 0 and st_dr["late_dropped"] == 1
    # information: the out-of-sequence update recovers nearly all of the in-sequence gain
    gain_in = np.trace(P_dr) - np.trace(P_in)
    gain_oo = np.trace(P_dr) - np.trace(P_oo)
    assert gain_in > 0
    assert 0.8 * gain_in <= gain_oo <= 1.05 * gain_in
    # and the estimate moves to within a small part of the in-sequence one
    assert np.linalg.norm(x_oo - x_in) < 0.25 * np.linalg.norm(x_dr - x_in) + 1.0


def test_out_of_sequence_update_lowers_the_error_as_theory_says_monte_carlo():
    """Over 150 runs: the mean squared position error with the OOSM update is below the one
    with the plot dropped and within 10 % of the in-sequence one, and its NEES stays
    consistent (3-D position, mean within the 99 % interval of the chi2_3 mean)."""
    err = {"in": [], "oosm": [], "drop": []}
    nees = []
    for seed in range(150):
        traj, pl, late = _case(seed)
        t_end = float(pl["time_s"].max())
        p, _ = traj(np.array([0]), np.array([t_end]))
        truth = FRAME.enu_to_ecef(p)[0]
        for mode in err:
            x, P, _ = _estimate(pl, late, mode, t_end)
            e = x - truth
            err[mode].append(float(e @ e))
            if mode == "oosm":
                nees.append(float(e @ np.linalg.solve(P, e)))
    mse = {k: float(np.mean(v)) for k, v in err.items()}
    assert mse["oosm"] < mse["drop"]
    assert mse["oosm"] <= 1.10 * mse["in"]
    # mean of 150 chi2_3 draws: 3 +- 2.58 sqrt(6 / 150)
    assert abs(np.mean(nees) - 3.0) < 2.58 * np.sqrt(6.0 / 150)
