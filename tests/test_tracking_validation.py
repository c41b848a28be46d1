"""Plot validation (compiled, siap.tracking.measurements.validate) against the earlier batched
NumPy rules, on random plots with every kind of defect."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.records import MeasurementKind, empty_plots
from siap.tracking import TrackerConfig
from siap.tracking.measurements import validate

RADAR_3D = int(MeasurementKind.RADAR_3D)
RADAR_2D = int(MeasurementKind.RADAR_2D)
ADSB = int(MeasurementKind.ADSB)

# ---- reference: the NumPy implementation the kernel replaced
_SCALAR_FIELDS = (
    "time_s",
    "sensor_lat_deg",
    "sensor_lon_deg",
    "sensor_alt_m",
    "range_m",
    "azimuth_rad",
    "elevation_rad",
    "lat_deg",
    "lon_deg",
    "alt_m",
)
_NEED = np.zeros((4, 19), bool)
_NEED[:, 0] = True  # time for every kind
_NEED[RADAR_3D, 1:7] = True
_NEED[RADAR_2D, 1:6] = True
_NEED[ADSB, 7:10] = True
_NEED[RADAR_3D, 10:] = True
_NEED[ADSB, 10:] = True
_NEED[RADAR_2D, 10 + np.array([0, 1, 3, 4])] = True  # the (range, azimuth) block


def _numpy_validate(plots: np.ndarray, cfg) -> tuple[np.ndarray, dict[str, int]]:
    """Boolean mask of usable plots and the count of rejected plots per reason.

    Reasons: ``unknown_kind``, ``nan``, ``inf`` (a required field is NaN / infinite),
    ``negative_range``, ``impossible_range`` (zero or beyond ``max_range_m``),
    ``impossible_angle`` (|elevation| > 90 deg), ``impossible_position`` (latitude beyond 90 deg,
    altitude outside [min_altitude_m, max_altitude_m]), ``bad_covariance`` (the covariance
    block in use is not symmetric positive definite).
    """
    n = len(plots)
    kind = plots["kind"].astype(np.int64)
    is3 = kind == RADAR_3D
    is2 = kind == RADAR_2D
    isa = kind == ADSB
    radar = is3 | is2
    reasons: dict[str, np.ndarray] = {}
    bad = np.zeros(n, bool)

    def flag(name: str, mask: np.ndarray) -> None:
        nonlocal bad
        new = mask & ~bad
        if new.any():
            reasons[name] = new
            bad |= new

    flag("unknown_kind", ~(radar | isa))
    cov = plots["cov"]
    # Required fields per kind: rows of _NEED (RADAR_3D, RADAR_2D, ADSB, unknown) over
    # (time, sensor lat/lon/alt, range, azimuth, elevation, lat, lon, alt, cov[0..8]).
    kidx = np.where(radar | isa, kind, 3).astype(np.intp)
    need = _NEED[kidx]
    vals = np.column_stack(
        [plots[f] for f in _SCALAR_FIELDS] + [np.asarray(cov, float).reshape(n, 9)]
    )
    any_nan = (np.isnan(vals) & need).any(axis=1)
    any_inf = (np.isinf(vals) & need).any(axis=1)
    flag("nan", any_nan)
    flag("inf", any_inf)
    with np.errstate(invalid="ignore"):
        rng = plots["range_m"]
        flag("negative_range", radar & (rng < 0))
        flag("impossible_range", radar & ((rng == 0) | (rng > cfg.max_range_m)))
        flag("impossible_angle", is3 & (np.abs(plots["elevation_rad"]) > np.pi / 2))
        lat_bad = (isa & (np.abs(plots["lat_deg"]) > 90)) | (
            radar & (np.abs(plots["sensor_lat_deg"]) > 90)
        )
        alt = plots["alt_m"]
        has_modec = is2 & np.isfinite(alt) & np.isfinite(cov[:, 2, 2])
        alt_used = isa | has_modec
        alt_bad = alt_used & ((alt < cfg.min_altitude_m) | (alt > cfg.max_altitude_m))
        lon_bad = (isa & (np.abs(plots["lon_deg"]) > 180)) | (radar & (np.abs(plots["sensor_lon_deg"]) > 180))
        salt = plots["sensor_alt_m"]
        site_bad = radar & ((salt < cfg.min_altitude_m) | (salt > cfg.max_altitude_m))
        flag("impossible_position", lat_bad | alt_bad | lon_bad | site_bad)
        # Positive definiteness by Sylvester's criterion on the block in use, plus symmetry.
        c = np.where(np.isfinite(cov), cov, 0.0)
        m1 = c[:, 0, 0]
        m2 = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] * c[:, 1, 0]
        m3 = np.linalg.det(c)
        three = is3 | isa | has_modec
        asym = np.abs(c - np.swapaxes(c, 1, 2)).max(axis=(1, 2)) > 1e-9 * np.abs(c).max(axis=(1, 2))
        cov_bad = (m1 <= 0) | (m2 <= 0) | (three & (m3 <= 0)) | asym
        flag("bad_covariance", cov_bad & ~bad)
    counts = {k: int(v.sum()) for k, v in reasons.items()}
    return ~bad, counts


def _random_plots(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pl = empty_plots(n)
    pl["plot_id"] = np.arange(n)
    pl["time_s"] = 1.7e9 + rng.uniform(0, 100, n)
    pl["kind"] = rng.choice([0, 1, 2, 7], n, p=[0.35, 0.3, 0.3, 0.05])
    pl["sensor_lat_deg"] = rng.uniform(-95, 95, n)
    pl["sensor_lon_deg"] = rng.uniform(-190, 190, n)
    pl["sensor_alt_m"] = rng.choice([0.0, 450.0, 12_000.0, -5000.0, 1e300], n, p=[0.3, 0.3, 0.3, 0.05, 0.05])
    pl["range_m"] = rng.choice([-5.0, 0.0, 1e4, 2e5, 2e6], n)
    pl["azimuth_rad"] = rng.uniform(0, 7, n)
    pl["elevation_rad"] = rng.uniform(-1.7, 1.7, n)
    pl["lat_deg"] = rng.uniform(-95, 95, n)
    pl["lon_deg"] = rng.uniform(-190, 190, n)
    pl["alt_m"] = rng.choice([-5000.0, 3000.0, 2e5, np.nan], n)
    A = rng.normal(size=(n, 3, 3))
    cov = A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(3)
    pick = rng.random(n)
    cov[pick < 0.1] = -cov[pick < 0.1]  # not positive definite
    cov[(pick >= 0.1) & (pick < 0.15), 0, 1] += 1.0  # asymmetric
    cov[(pick >= 0.15) & (pick < 0.2), 2, 2] = np.inf  # no Mode C / bad
    pl["cov"] = cov
    fields = [
        "time_s",
        "sensor_lat_deg",
        "range_m",
        "azimuth_rad",
        "elevation_rad",
        "lat_deg",
        "alt_m",
    ]
    for f in fields:
        m = rng.random(n) < 0.03
        pl[f][m] = np.nan
        m = rng.random(n) < 0.03
        pl[f][m] = np.inf
    m = rng.random(n) < 0.03
    pl["cov"][m, 1, 1] = np.nan
    return pl


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 300))
def test_validate_equals_numpy_rules(seed, n):
    cfg = TrackerConfig(max_range_m=1e6)
    pl = _random_plots(seed, n)
    ok, counts = validate(pl, cfg)
    ok_ref, counts_ref = _numpy_validate(pl, cfg)
    np.testing.assert_array_equal(ok, ok_ref)
    assert counts == counts_ref


def test_absurd_sensor_fields_are_rejected_not_tracked():
    """Finite but impossible radar sites (longitude 1e300, altitude 1e300) are dropped and
    counted; they used to reach the frame conversion and overflow."""
    from siap.tracking import Tracker

    pl = empty_plots(3)
    pl["plot_id"] = [1, 2, 3]
    pl["time_s"] = 1.7e9
    pl["kind"] = RADAR_3D
    pl["sensor_id"] = "R"
    pl["sensor_lat_deg"], pl["sensor_lon_deg"], pl["sensor_alt_m"] = 35.0, 135.0, 50.0
    pl["sensor_lon_deg"][0] = 1e300
    pl["sensor_alt_m"][1] = 1e300
    pl["range_m"], pl["azimuth_rad"], pl["elevation_rad"] = 1e4, 0.5, 0.05
    pl["cov"] = np.diag([100.0, 1e-6, 1e-6])
    ok, counts = validate(pl, TrackerConfig())
    assert ok.tolist() == [False, False, True] and counts == {"impossible_position": 2}
    tracker = Tracker(TrackerConfig(origin_lat_deg=35.0, origin_lon_deg=135.0))
    with np.errstate(all="raise"):  # no overflow anywhere on the way
        tracker.process(pl)
    assert tracker.stats["rejected_impossible_position"] == 2


def test_config_derived_thresholds_known_answers():
    """The thresholds the tracker derives from its configuration, against known values:
    chi-square quantiles (0.99: 9.2103 for 2 dof, 11.3449 for 3), the score increments
    ln P_D - ln lambda and ln(1 - P_D), and the confirmed tracks' deletion/report levels."""
    import math

    from siap.tracking import TrackerConfig

    c = TrackerConfig(gate_probability=0.99, false_alarm_density_per_km2=0.5,
                      detection_probability=0.9, score_delete=-5.0,
                      score_delete_confirmed=None, score_report_confirmed=None)
    assert abs(c.gate_chi2(2) - 9.2103) < 1e-4
    assert abs(c.gate_chi2(3) - 11.3449) < 1e-4
    assert abs(c.gate_radius_sigmas - 1.05 * math.sqrt(11.3449)) < 1e-4
    assert c.clutter_per_m2 == 0.5e-6
    assert abs(c.score_hit - (math.log(0.9) - math.log(0.5e-6))) < 1e-12
    assert abs(c.score_miss - math.log(0.1)) < 1e-12
    assert c.score_delete_confirmed_level == -5.0 and c.score_report_level == -5.0
    c2 = c.model_copy(update=dict(score_delete_confirmed=-8.0, score_report_confirmed=-9.0))
    assert c2.score_delete_confirmed_level == -8.0
    assert c2.score_report_level == -8.0  # never below the deletion level
