"""Configuration of the multi-sensor tracker (pydantic v2, every parameter with its unit)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.stats import chi2

from siap.errors import ConfigError

__all__ = ["TrackerConfig"]


class TrackerConfig(BaseModel):
    """Parameters of :class:`siap.tracking.Tracker`.

    Defaults suit air surveillance by long-range radars (revisit 4-12 s) and ADS-B. For fast
    radars (1 s scans) shorten the track-management times, e.g. ``tentative_max_coast_s=3``,
    ``coasting_after_s=3``, ``delete_after_s=8``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # --- frame -----------------------------------------------------------------------------
    origin_lat_deg: float = Field(
        35.0,
        ge=-90.0,
        le=90.0,
        description="Latitude of the tracking ENU frame origin (deg, WGS84).",
    )
    origin_lon_deg: float = Field(
        135.0,
        ge=-180.0,
        le=360.0,
        description="Longitude of the tracking ENU frame origin (deg, WGS84).",
    )
    origin_alt_m: float = Field(
        0.0, ge=-1000.0, le=100_000.0, description="Ellipsoidal height of the frame origin (m)."
    )

    # --- time ------------------------------------------------------------------------------
    frame_s: float = Field(
        0.5,
        gt=0.0,
        le=60.0,
        description="Length of a processing frame (s): the plots of one sensor inside one frame are associated together (a track takes at most one plot per frame).",
    )
    merge_sensors: bool = Field(
        True,
        description="Associate the plots of all sensors in one frame together, in rounds (one plot per track per round, at most one plot per sensor per track and frame), instead of sensor by sensor. Same logic, far fewer batched calls with many sensors.",
    )
    reorder_window_s: float = Field(
        2.0,
        ge=0.0,
        le=3600.0,
        description="Plots may arrive out of time order by up to this much (s); older plots are applied out of sequence (out_of_sequence) or counted as late_dropped.",
    )

    out_of_sequence: bool = Field(
        True,
        description="Plots older than what has been processed (later than reorder_window_s) are associated with the tracks and applied as out-of-sequence updates (one-step retrodiction, Bar-Shalom 2002; late_applied), or as ordinary updates to tracks whose state is older than the plot; a late plot that fits no track is dropped (late_dropped) and never starts one. False: every late plot is dropped.",
    )

    out_of_sequence_max_lag_s: float = Field(
        10.0,
        ge=0.0,
        description="Late plots older than what has been processed by more than this (s) are dropped (late_dropped) instead of applied out of sequence: the one-step retrodiction neglects the correlation of the lag's process noise with the estimate, which grows with the lag.",
    )

    # --- motion models (IMM) -----------------------------------------------------------------
    cv_process_noise_m2ps3: float = Field(
        1.0,
        gt=0.0,
        description="Power spectral density of the horizontal white-noise acceleration of the quiet (CV) model (m^2/s^3).",
    )
    manoeuvre_process_noise_m2ps3: float = Field(
        400.0,
        gt=0.0,
        description="Horizontal acceleration PSD of the manoeuvre model (m^2/s^3); about a^2*T for accelerations a over a revisit T.",
    )
    vertical_process_noise_m2ps3: float = Field(
        1.0, gt=0.0, description="Vertical acceleration PSD of the quiet model (m^2/s^3)."
    )
    vertical_manoeuvre_process_noise_m2ps3: float = Field(
        25.0, gt=0.0, description="Vertical acceleration PSD of the manoeuvre model (m^2/s^3)."
    )
    imm_enabled: bool = Field(
        True,
        description="Run the two-model IMM; if false, a single CV Kalman filter (model_prob = (1, 0)).",
    )
    cv_mean_sojourn_s: float = Field(
        300.0,
        gt=0.0,
        description="Mean time a target stays in the quiet model before manoeuvring (s); sets the IMM switching rate.",
    )
    manoeuvre_mean_sojourn_s: float = Field(
        15.0, gt=0.0, description="Mean duration of a manoeuvre (s)."
    )
    initial_manoeuvre_prob: float = Field(
        0.2, ge=0.0, le=1.0, description="Manoeuvre model probability of a new track."
    )

    # --- initiation --------------------------------------------------------------------------
    initial_velocity_std_mps: float = Field(
        300.0,
        gt=0.0,
        description="Horizontal velocity standard deviation of a single-point track initiation (m/s, per axis).",
    )
    initial_vertical_velocity_std_mps: float = Field(
        30.0, gt=0.0, description="Vertical velocity standard deviation of a new track (m/s)."
    )
    default_altitude_m: float = Field(
        5000.0,
        description="Altitude assumed when a 2D radar plot without Mode C starts a track (m).",
    )
    default_altitude_std_m: float = Field(
        4000.0, gt=0.0, description="Standard deviation of that assumed altitude (m)."
    )

    # --- association ---------------------------------------------------------------------------
    gate_probability: float = Field(
        0.9995,
        gt=0.5,
        lt=1.0,
        description="Chi-square gate probability P_G; the gate is the P_G quantile of chi2 with the measurement dimension.",
    )
    mode_s_bonus: float = Field(
        10.0,
        ge=0.0,
        description="Cost bonus (in units of squared Mahalanobis distance) when track and plot carry the same Mode S address.",
    )
    mode_s_gate_chi2: float = Field(
        60.0,
        gt=0.0,
        description="Wider gate (squared Mahalanobis distance) for pairs whose Mode S addresses match, so that an aircraft's own report is not lost to a gate miss or a manoeuvre.",
    )
    mode_3a_bonus: float = Field(
        3.0, ge=0.0, description="Cost bonus when track and plot carry the same Mode 3/A code."
    )
    association: Literal["gnn", "jpda"] = Field(
        "gnn",
        description="How ambiguous clusters are resolved. 'gnn': global nearest neighbour (one plot per track, linear_sum_assignment). 'jpda': clusters of confirmed tracks whose gates share plots of one sensor are updated with joint probabilistic data association (exact JPDA marginals, PDA update with the spread-of-innovations term); every other cluster stays GNN. Needs false_alarm_density_per_km2.",
    )
    jpda_max_hypotheses: int = Field(
        20_000,
        ge=1,
        description="A JPDA cluster whose joint association events could exceed this many is resolved by GNN instead (counted in the stats as jpda_clusters_too_large).",
    )

    # --- track management ------------------------------------------------------------------------
    confirm_hits: int = Field(
        3,
        ge=1,
        le=100,
        description="A tentative track is confirmed at this many associated plots (M of the M-of-N rule, N set by tentative_max_coast_s).",
    )
    tentative_max_coast_s: float = Field(
        12.0, gt=0.0, description="A tentative track without a plot for this long is deleted (s)."
    )
    coasting_after_s: float = Field(
        15.0,
        gt=0.0,
        description="A confirmed track without a plot for this long is reported as COASTING (s).",
    )
    delete_after_s: float = Field(
        40.0, gt=0.0, description="A confirmed track without a plot for this long is deleted (s)."
    )
    max_position_std_m: float = Field(
        10_000.0,
        gt=0.0,
        description="A track whose predicted horizontal position standard deviation (sqrt of the trace of the horizontal covariance) exceeds this is deleted (m).",
    )

    # --- identity: one aircraft, one track ------------------------------------------------------
    mode_s_reseed_after: int = Field(
        3,
        ge=1,
        le=100,
        description="A plot carrying a live track's Mode S address never starts a new track. When it falls outside that track's gate it is dropped (plots_own_address_outside_gate), and the mode_s_reseed_after-th such plot in a row re-seeds the track from itself (same track number; position from the plot, velocity kept with the initiation uncertainty; tracks_reseeded).",
    )
    merge_same_mode_s: bool = Field(
        True,
        description="Two live tracks that carry the same Mode S address become one under the older track number (tracks_merged, Tracker.merges).",
    )
    coalescence_check_s: float | None = Field(
        5.0,
        gt=0.0,
        description="Every this many seconds, pairs of live tracks are tested for coalescence (the track-to-track association test on their 6-D states, Bar-Shalom 1981); a pair that passes coalescence_checks tests in a row becomes one track under the older number. None: no such test (the Mode S rules still apply).",
    )
    coalescence_checks: int = Field(
        3,
        ge=1,
        le=100,
        description="Consecutive passed coalescence tests after which two tracks merge.",
    )
    coalescence_probability: float = Field(
        0.99,
        gt=0.5,
        lt=1.0,
        description="Gate probability of the coalescence test: the pair passes if d^2 = (x_1 - x_2)' (P_1 + P_2)^-1 (x_1 - x_2) is at most the chi2_6 quantile.",
    )
    coalescence_max_distance_m: float = Field(
        2_000.0,
        gt=0.0,
        description="Only tracks whose predicted horizontal positions are this close are tested for coalescence (m).",
    )

    # --- coverage-aware track management ----------------------------------------------------------
    coverage_management: bool = Field(
        True,
        description="End confirmed tracks by what the sensors should have seen (siap.tracking.coverage: each sensor's coverage, revisit and detection probability learned from its plots): a track whose sensors have all looked at least once since its last plot and whose missed detections are less likely than coverage_miss_probability is ended; a track predicted outside the coverage of every sensor that has seen it is ended after coverage_revisits of their longest revisit. delete_after_s still applies on top.",
    )
    coverage_miss_probability: float = Field(
        1e-3,
        gt=0.0,
        lt=1.0,
        description="A confirmed track is ended when the probability of its missed detections, prod_s (1 - P_D,s)^(missed looks of s) over the sensors that should have seen it, falls below this.",
    )
    coverage_max_detection_probability: float = Field(
        0.95,
        gt=0.0,
        lt=1.0,
        description="Upper bound on a sensor's learned detection probability in the missed-detection rule: the learned value comes from the gaps between a track's plots and does not see misses that are correlated (fades, masking), so it is taken no higher than this.",
    )
    coverage_revisits: float = Field(
        1.5,
        gt=0.0,
        description="Outside every sensor's coverage, a confirmed track is ended once this many of the longest revisit of its sensors have passed without a plot.",
    )
    coverage_range_margin: float = Field(
        1.05,
        ge=1.0,
        description="A sensor covers slant ranges up to this factor times the largest range of its plots.",
    )

    # --- sequential track score (SPRT), optional -------------------------------------------------
    false_alarm_density_per_km2: float | None = Field(
        None,
        gt=0.0,
        description="Spatial density of false plots per revisit (per km^2 of horizontal area). When set, every track carries a sequential log-likelihood-ratio score (target vs false alarms, Blackman & Popoli 1999 sec. 6.2) used by score_confirm / score_delete; None turns the score off (M-of-N only).",
    )
    detection_probability: float = Field(
        0.9,
        gt=0.0,
        lt=1.0,
        description="Detection probability per revisit used by the track score (a hit adds ln(P_D N(nu_h; 0, S_h) / lambda), a missed revisit ln(1 - P_D)).",
    )
    score_revisit_s: float = Field(
        10.0,
        gt=0.0,
        description="Expected time between detection opportunities (s): the track score charges one miss per score_revisit_s without a plot.",
    )
    score_confirm: float = Field(
        4.5,
        description="A tentative track is confirmed only once its score reaches this (and it has confirm_hits plots); SPRT upper threshold ln((1 - beta) / alpha), 4.5 for alpha = 0.01, beta = 0.1.",
    )
    score_delete: float = Field(
        -2.3,
        description="A track whose score (misses included) falls below this is deleted; SPRT lower threshold ln(beta / (1 - alpha)), -2.3 for beta = 0.1.",
    )
    score_delete_confirmed: float | None = Field(
        None,
        description="A confirmed track whose score (misses included) falls below this is deleted; None: score_delete. A confirmed track's score only grows with its plots, so a level above score_delete removes weakly confirmed tracks (most likely false) after fewer misses while established tracks stay under the time rules.",
    )
    score_report_confirmed: float | None = Field(
        None,
        description="A confirmed track whose score (misses included) is below this is left out of snapshots but kept (associated, updated and scored; deleted by the other rules), and is reported again as soon as its score is back at this level; None: no such level. The SPRT's undecided region for confirmed tracks: a weakly confirmed track that misses a few revisits is hidden rather than deleted, so a real target's next plot updates it instead of starting a new track.",
    )

    # --- plot validation -------------------------------------------------------------------------
    max_range_m: float = Field(
        1_000_000.0,
        gt=0.0,
        description="Radar plots with a larger range are rejected as impossible (m).",
    )
    min_altitude_m: float = Field(
        -1_000.0, description="Plots (ADS-B, Mode C) below this altitude are rejected (m)."
    )
    max_altitude_m: float = Field(
        100_000.0, description="Plots above this altitude are rejected (m)."
    )

    # --- output ---------------------------------------------------------------------------------
    partner: str = Field(
        "", max_length=3, description="Partner (ISO 3166 alpha-3) written in the output tracks."
    )
    label: str = Field(
        "", max_length=64, description="Confidentiality label written in the output tracks."
    )

    # --- derived thresholds (read-only; computed from the fields above) -----------------------
    def gate_chi2(self, dof: int) -> float:
        """Chi-square gate of a ``dof``-dimensional innovation: the ``gate_probability``
        quantile of the chi-square distribution with ``dof`` degrees of freedom (BLK
        sec. 3.7.1)."""
        return float(chi2.ppf(self.gate_probability, dof))

    @property
    def gate_radius_sigmas(self) -> float:
        """Search radius of the grid index, in standard deviations: sqrt of the 3D gate, 5 %
        of margin."""
        return float(np.sqrt(self.gate_chi2(3))) * 1.05

    @property
    def mode_s_gate_radius_sigmas(self) -> float:
        """As :attr:`gate_radius_sigmas` for plots and tracks with the same Mode S address (the
        wider of the 3D gate and ``mode_s_gate_chi2``)."""
        return float(np.sqrt(max(self.gate_chi2(3), self.mode_s_gate_chi2))) * 1.05

    @property
    def coalescence_chi2(self) -> float:
        """Test level of track coalescence: the ``coalescence_probability`` quantile of the
        chi-square distribution with 6 degrees of freedom (the state difference)."""
        return float(chi2.ppf(self.coalescence_probability, 6))

    @property
    def clutter_per_m2(self) -> float:
        """False-alarm density (1/m^2) of the track score and JPDA (1/km^2 field; 1e-6 when
        unset, unused then)."""
        return (self.false_alarm_density_per_km2 or 1.0) * 1e-6

    @property
    def score_hit(self) -> float:
        """Track-score increment of a detection, before its likelihood term:
        ``ln P_D - ln lambda`` (Blackman & Popoli 1999, sec. 6.2)."""
        return float(np.log(self.detection_probability) - np.log(self.clutter_per_m2))

    @property
    def score_miss(self) -> float:
        """Track-score increment of a missed detection: ``ln(1 - P_D)``."""
        return float(np.log1p(-self.detection_probability))

    @property
    def score_delete_confirmed_level(self) -> float:
        """Deletion level of confirmed tracks: ``score_delete_confirmed``, else
        ``score_delete``."""
        if self.score_delete_confirmed is None:
            return self.score_delete
        return self.score_delete_confirmed

    @property
    def score_report_level(self) -> float:
        """Snapshot level of confirmed tracks: ``score_report_confirmed`` (never below the
        deletion level), else the deletion level."""
        if self.score_report_confirmed is None:
            return self.score_delete_confirmed_level
        return max(self.score_report_confirmed, self.score_delete_confirmed_level)

    @model_validator(mode="after")
    def _check_times(self) -> TrackerConfig:
        if self.delete_after_s < self.coasting_after_s:
            raise ValueError("delete_after_s must be >= coasting_after_s")
        if self.association == "jpda" and self.false_alarm_density_per_km2 is None:
            raise ValueError(
                "association 'jpda' needs false_alarm_density_per_km2 (the clutter density)"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrackerConfig:
        """Read a YAML mapping of parameters; a bad file raises a one-line ConfigError."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: (file): expected a readable UTF-8 YAML file (got {type(exc).__name__})") from None
        except RecursionError:
            raise ConfigError(f"{p}: (top level): expected a YAML document of sensible depth (nested too deep)") from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f"line {line + 1}" if line is not None else "YAML"
            raise ConfigError(f"{p}: {where}: not valid YAML") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: top level: expected a mapping of tracker parameters")
        if "tracker" in data and isinstance(data["tracker"], dict) and len(data) == 1:
            data = data["tracker"]
        try:
            return cls(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "tracker"
            raise ConfigError(f"{p}: {field}: {err['msg']}") from None
